// The deterministic layer tar writer: turns LayerEntry values into a tar stream whose bytes depend
// only on the entries (not their order). Content is streamed, never buffered whole. Its parts:
// entry checks and ordering (tar-order.ts), USTAR/PAX headers (tar-header.ts), the 1 MiB output
// chunks (tar-chunks.ts) and direct host file reads (tar-host-read.ts).
import { Readable } from "node:stream";
import { KilnError } from "../errors.js";
import type { LayerEntry } from "./entry.js";
import { hostPathOf } from "./file-content.js";
import { compareLayerPaths } from "./order.js";
import { CHUNK_SIZE, ChunkWriter } from "./tar-chunks.js";
import { BLOCK, TYPEFLAG, writeHeaders, type HeaderOptions } from "./tar-header.js";
import { contentError, readHostFile } from "./tar-host-read.js";
import { collectAndOrder } from "./tar-order.js";

export { compareLayerPaths };

export interface TarOptions extends HeaderOptions {
  /**
   * Where the 1 MiB output chunks come from (default: a fresh buffer each). A chunk, once
   * yielded, is never written again; a recycling consumer (writeLayer) may hand it back here.
   */
  allocChunk?: () => Buffer;
}

/** Deterministic tar of `entries` (sorted, checked), streamed. Errors surface on the stream. */
export function tarStream(
  entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>,
  options?: TarOptions,
): Readable {
  return Readable.from(generateTar(entries, options ?? {}), { objectMode: false });
}

async function* generateTar(
  entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>,
  options: TarOptions,
): AsyncGenerator<Buffer> {
  const ordered = await collectAndOrder(entries);
  // Headers and content are written straight into fixed 1 MiB chunks (a fresh buffer each, as
  // downstream keeps them): few pushes, big hash updates, blocks the parallel gzip can adopt.
  const out = new ChunkWriter(CHUNK_SIZE, options.allocChunk);
  for (const entry of ordered) {
    if (writeEntrySync(entry, options, out)) {
      if (out.hasFull()) yield* each(out.takeFull());
    } else {
      yield* writeEntry(entry, options, out);
    }
  }
  out.zeros(2 * BLOCK);
  yield* each(out.takeFull());
  const last = out.takeRest();
  if (last) yield last;
}

/**
 * Write an entry that needs no streaming (no content, or a host file of at most one chunk) in
 * one synchronous call, sparing a generator per entry; false when writeEntry must do it.
 */
function writeEntrySync(entry: LayerEntry, options: TarOptions, out: ChunkWriter): boolean {
  if (!(entry.type in TYPEFLAG)) return false;
  let hostPath: string | undefined;
  if (entry.type === "file") {
    if (entry.open === undefined) {
      if (entry.size !== 0) return false;
    } else {
      hostPath = hostPathOf(entry.open);
      if (hostPath === undefined || entry.size > CHUNK_SIZE) return false;
    }
  }
  writeHeaders(entry, options, out);
  if (hostPath !== undefined) readHostFile(entry, hostPath, out);
  const rem = entry.type === "file" ? entry.size % BLOCK : 0;
  if (rem !== 0) out.zeros(BLOCK - rem);
  return true;
}

async function* writeEntry(entry: LayerEntry, options: TarOptions, out: ChunkWriter): AsyncGenerator<Buffer> {
  if (!(entry.type in TYPEFLAG)) throw new KilnError("LAYER_ENTRY_INVALID", `layer: "${entry.path}": unknown entry type "${String(entry.type)}"`);
  writeHeaders(entry, options, out);
  if (entry.type !== "file" || entry.size === 0) {
    if (entry.type === "file" && entry.open) {
      // A zero-size file must really be empty.
      const hostPath = hostPathOf(entry.open);
      if (hostPath !== undefined) readHostFile(entry, hostPath, out);
      else {
        for await (const chunk of entry.open() as AsyncIterable<Buffer>) {
          if (chunk.length > 0) throw new KilnError("LAYER_CONTENT_MISMATCH", `layer: "${entry.path}": content is longer than its size 0`);
        }
      }
    }
    yield* each(out.takeFull());
    return;
  }
  if (!entry.open) throw new KilnError("LAYER_CONTENT_MISMATCH", `layer: "${entry.path}": file of ${entry.size} bytes has no content`);
  const hostPath = hostPathOf(entry.open);
  if (hostPath !== undefined) {
    // Read in slices so a large file never holds more than a few chunks before they are handed on.
    let done = 0;
    for (;;) {
      done = readHostFile(entry, hostPath, out, done, 4 * CHUNK_SIZE);
      yield* each(out.takeFull());
      if (done >= entry.size) break;
    }
  } else {
    let written = 0;
    try {
      for await (const chunk of entry.open() as AsyncIterable<Buffer | string>) {
        const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
        written += buf.length;
        if (written > entry.size) {
          throw new KilnError("LAYER_CONTENT_MISMATCH", `layer: "${entry.path}": content is longer than its size ${entry.size}`);
        }
        if (buf.length > 0) {
          out.write(buf);
          yield* each(out.takeFull());
        }
      }
    } catch (err) {
      throw contentError(entry, err);
    }
    if (written !== entry.size) {
      throw new KilnError("LAYER_CONTENT_MISMATCH", `layer: "${entry.path}": content is ${written} bytes, expected ${entry.size}`);
    }
  }
  const rem = entry.size % BLOCK;
  if (rem !== 0) out.zeros(BLOCK - rem);
  yield* each(out.takeFull());
}

/**
 * The chunks one by one. Not `yield* array`: when the stream reading the tar is destroyed, Node 24's
 * Readable.from calls the generator's throw(), and delegation to an array iterator (which has no
 * throw method) would replace the stream's error (an AbortError, say) with a TypeError.
 */
function* each(chunks: Buffer[]): Generator<Buffer> {
  for (const c of chunks) yield c;
}
