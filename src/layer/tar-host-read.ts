// Host file content for the layer tar writer: read synchronously (O_NOFOLLOW) straight into the
// output chunks, checking the file has exactly the size its entry claims; read failures become
// one-line KilnErrors naming the entry.
import { closeSync, constants as fsConstants, openSync, readSync } from "node:fs";
import { KilnError } from "../errors.js";
import type { LayerEntry } from "./entry.js";
import type { ChunkWriter } from "./tar-chunks.js";

export function contentError(entry: LayerEntry, err: unknown): Error {
  if (err instanceof KilnError) return err;
  // a cancelled read stays a cancellation, whatever entry it interrupted
  if (err instanceof Error && err.name === "AbortError") return err;
  return new KilnError("LAYER_READ_FAILED", `layer: "${entry.path}": cannot read content: ${(err as Error).message}`, { cause: err });
}

const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0);
const probe = Buffer.alloc(1);

/**
 * Reads a host file's content from byte `from` straight into the output chunks, at most `limit`
 * bytes this call (the whole file when no limit); returns the offset reached. Synchronous on
 * purpose: the files are mostly small and cached, and this keeps per-file reads off the libuv
 * thread pool, where they would queue behind the gzip blocks. The size must match exactly.
 */
export function readHostFile(entry: LayerEntry, path: string, out: ChunkWriter, from = 0, limit = Infinity): number {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw contentError(entry, err);
  }
  try {
    let pos = from;
    const end = Math.min(entry.size, from + limit);
    let atEof = false;
    while (pos < end) {
      const t = out.target();
      const want = Math.min(t.length, end - pos);
      // The last read of a file asks for one byte more when the chunk has room: a short answer
      // proves the end (a regular file), sparing the extra read that would otherwise check it.
      const ask = pos + want === entry.size && t.length > want ? want + 1 : want;
      const n = readSync(fd, t.buf, t.offset, ask, pos);
      if (n === 0) throw new KilnError("LAYER_CONTENT_MISMATCH", `layer: "${entry.path}": content is ${pos} bytes, expected ${entry.size}`);
      if (n > want) throw new KilnError("LAYER_CONTENT_MISMATCH", `layer: "${entry.path}": content is longer than its size ${entry.size}`);
      out.advance(n);
      pos += n;
      if (ask > want && n === want) atEof = true;
    }
    if (pos >= entry.size && !atEof && readSync(fd, probe, 0, 1, pos) > 0) {
      throw new KilnError("LAYER_CONTENT_MISMATCH", `layer: "${entry.path}": content is longer than its size ${entry.size}`);
    }
    return pos;
  } catch (err) {
    throw contentError(entry, err);
  } finally {
    closeSync(fd);
  }
}
