// Reads the package databases out of an image's layers without unpacking it: each layer blob is
// streamed once through its decompressor and tar-stream, and only the files a package scanner
// reads are kept (os-release, dpkg status and status.d/, apk's installed db, node_modules/*/package.json,
// package-lock.json, *.dist-info/METADATA, rpmdb.sqlite; rpm's other databases as empty markers) and, of executable ELF files, a Go binary's build info
// (go-buildinfo.ts), merged across layers with whiteouts and opaque directories applied.
// Sizes are capped, so a hostile image cannot make the scan hold much memory; an executable of any
// size is read for Go build info, a large one through a temporary file (spool.ts).
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tar from "tar-stream";
import { KilnError, throwIfAborted } from "../errors.js";
import { decompressStream } from "../layer/compress.js";
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from "../layer/entry.js";
import { goRecord, isElf, readGoBuildInfo, readGoBuildInfoFile, type GoBuildInfo } from "./go-buildinfo.js";
import { Spool, type TempPath, osTempPath } from "./spool.js";
import { isRpmMarker, isRpmSqlite } from "./rpmdb.js";

/** One layer to read: its media type and a way to open its (compressed) blob. */
export interface ScanLayer {
  mediaType: string;
  open(): Readable;
  /** The blob's digest, when its scan may be cached. */
  key?: string;
}

const MAX_DB_BYTES = 64 * 1024 * 1024;
const MAX_MANIFEST_BYTES = 1024 * 1024;
/** An executable larger than this is spooled to a temporary file to be read for Go build info (memory stays flat). */
export const MAX_HELD_EXECUTABLE_BYTES = 8 * 1024 * 1024;
const MIN_ELF_BYTES = 64;
/** All kept files together (what a hostile image of many package.json files could make the scan hold). */
export const MAX_TOTAL_BYTES = 256 * 1024 * 1024;

/** The byte cap for `path` when it is a file the scanners read, else undefined. */
export function wantedFile(path: string): number | undefined {
  if (path === "var/lib/dpkg/status" || path === "lib/apk/db/installed") return MAX_DB_BYTES;
  if (path === "etc/os-release" || path === "usr/lib/os-release") return MAX_MANIFEST_BYTES;
  if (isRpmSqlite(path)) return MAX_DB_BYTES;
  const parts = path.split("/");
  const dir = posix.dirname(path);
  if (dir === "var/lib/dpkg/status.d" && !parts[parts.length - 1]!.endsWith(".md5sums")) return MAX_MANIFEST_BYTES;
  if (parts[parts.length - 1] === "package.json") {
    const n = parts.length;
    if (n >= 3 && parts[n - 3] === "node_modules" && !parts[n - 2]!.startsWith("@") && !parts[n - 2]!.startsWith(".")) return MAX_MANIFEST_BYTES;
    if (n >= 4 && parts[n - 4] === "node_modules" && parts[n - 3]!.startsWith("@")) return MAX_MANIFEST_BYTES;
  }
  // a project's lockfile (one inside node_modules belongs to a dependency's sources, not to what is installed)
  if (parts[parts.length - 1] === "package-lock.json" && !parts.includes("node_modules")) return MAX_DB_BYTES;
  if (parts[parts.length - 1] === "METADATA" && n2(parts).endsWith(".dist-info")) return MAX_MANIFEST_BYTES;
  return undefined;
}

function n2(parts: string[]): string {
  return parts.length >= 2 ? parts[parts.length - 2]! : "";
}

function clean(name: string): string {
  return posix.normalize(`/${name}`).slice(1).replace(/\/$/, "");
}

function removeUnder(files: Map<string, Buffer>, dir: string): void {
  const prefix = dir === "" ? "" : `${dir}/`;
  for (const k of [...files.keys()]) if (k === dir || k.startsWith(prefix)) files.delete(k);
}

/** What one layer contributes: the scanner files it holds and the paths it hides below it. */
export interface LayerScan {
  added: Map<string, Buffer>;
  opaque: string[];
  whiteouts: string[];
  replaced: string[];
}

/** Where per-layer scans are kept between builds, by the layer blob's digest (a scan is a pure function of the blob's bytes). */
export interface ScanCache {
  get(key: string): Promise<LayerScan | undefined>;
  put(key: string, scan: LayerScan): Promise<void>;
}

function keptBytes(scan: LayerScan): number {
  let n = 0;
  for (const v of scan.added.values()) n += v.length;
  return n;
}

/** A tar entry's body as tar-stream gives it. */
interface EntryStream extends AsyncIterable<unknown> {
  on(event: "data" | "end", fn: (chunk?: unknown) => void): unknown;
  resume(): unknown;
}

/**
 * An executable regular file: an ELF file is spooled while it streams (its chunks, never joined,
 * up to MAX_HELD_EXECUTABLE_BYTES; a larger one goes to a temporary file read back by positioned
 * reads) and, when it is a Go binary, its build info is kept (as a record at its path); any other
 * executable replaces a Go binary of that name in the layers below.
 */
function readExecutable(path: string, size: number, stream: EntryStream, scan: LayerScan, next: (err?: Error) => void, tempPath: TempPath): void {
  const notGo = (): void => {
    scan.added.delete(path);
    scan.replaced.push(path);
  };
  if (size < MIN_ELF_BYTES) {
    notGo();
    stream.on("end", () => next());
    stream.resume();
    return;
  }
  const spool = new Spool(MAX_HELD_EXECUTABLE_BYTES, tempPath);
  const read = async (): Promise<GoBuildInfo | undefined> => {
    let head = Buffer.alloc(0);
    let elf: boolean | undefined;
    for await (const chunk of stream) {
      const c = chunk as Buffer;
      if (elf === false) continue; // drained, not kept
      if (elf === undefined) {
        head = Buffer.concat([head, c.subarray(0, 4 - head.length)]);
        if (head.length >= 4) elf = isElf(head);
        if (elf === false) continue;
      }
      await spool.add(c);
    }
    if (!elf) return undefined;
    const content = spool.content;
    return "chunks" in content ? readGoBuildInfo(content.chunks) : readGoBuildInfoFile(content.file, spool.size);
  };
  read()
    .finally(() => spool.dispose())
    .then((info) => {
      if (info) scan.added.set(path, goRecord(info));
      else notGo();
      next();
    }, (err: unknown) => next(err as Error)); // a spool that cannot be written: the layer scan fails
}

async function readLayer(layer: ScanLayer, signal: AbortSignal | undefined, max: number, tempPath: TempPath): Promise<LayerScan> {
  const extract = tar.extract();
  const scan: LayerScan = { added: new Map(), opaque: [], whiteouts: [], replaced: [] };
  const { added, opaque, whiteouts, replaced } = scan;
  let kept = 0;
  extract.on("entry", (h, stream, next) => {
    const path = clean(h.name);
    const base = posix.basename(path);
    const dir = posix.dirname(path) === "." ? "" : posix.dirname(path);
    if (base === OPAQUE_MARKER) opaque.push(dir);
    else if (base.startsWith(WHITEOUT_PREFIX)) whiteouts.push(posix.join(dir, base.slice(WHITEOUT_PREFIX.length)));
    else if (h.type !== "file" && h.type !== "contiguous-file" && h.type !== "directory") replaced.push(path); // a link replaces a file of that name
    const regular = h.type === "file" || h.type === "contiguous-file";
    if (regular && isRpmMarker(path)) {
      // present and not empty: an empty marker; an empty file (a WAL after its checkpoint) hides a lower one
      if ((h.size ?? 0) > 0) added.set(path, Buffer.alloc(0));
      else {
        added.delete(path);
        replaced.push(path);
      }
      stream.on("end", next);
      stream.resume();
      return;
    }
    const cap = regular ? wantedFile(path) : undefined;
    if (regular && cap === undefined && ((h.mode ?? 0) & 0o111) !== 0) {
      readExecutable(path, h.size ?? 0, stream, scan, next, tempPath);
      return;
    }
    if (cap === undefined || (h.size ?? 0) > cap) {
      if (cap !== undefined) {
        // An over-size database replaces the lower layers' copy, and is not read (an rpm one leaves an empty marker, to warn).
        added.delete(path);
        replaced.push(path);
        if (isRpmSqlite(path)) added.set(path, Buffer.alloc(0));
      }
      stream.on("end", next);
      stream.resume();
      return;
    }
    kept += h.size ?? 0;
    if (kept > max) {
      // Over the cap: keep nothing more; the scan fails once the layer is read.
      stream.on("end", next);
      stream.resume();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on("data", (c: unknown) => chunks.push(c as Buffer));
    stream.on("end", () => {
      added.set(path, Buffer.concat(chunks));
      next();
    });
  });
  try {
    await pipeline(layer.open(), decompressStream(layer.mediaType), extract, signal ? { signal } : {});
  } catch (err) {
    if (err instanceof KilnError || (err as Error).name === "AbortError") throw err;
    throw new KilnError("LAYER_APPLY_FAILED", `SBOM scan: a layer of type ${layer.mediaType} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  if (kept > max) throw new KilnError("FEATURE_UNSUPPORTED", `SBOM scan: the image's package databases exceed the scan's limit (${max} bytes)`);
  return scan;
}

/** Lay one layer's scan over the files of the layers below it. */
function applyScan(files: Map<string, Buffer>, scan: LayerScan): void {
  // This layer's whiteouts and opaque dirs hide lower layers' files, then its own files land.
  for (const d of scan.opaque) removeUnder(files, d);
  for (const w of scan.whiteouts) removeUnder(files, w);
  for (const r of scan.replaced) files.delete(r);
  for (const [k, v] of scan.added) files.set(k, v);
}

export interface ScanOptions {
  signal?: AbortSignal;
  /** Cap on all kept files together (default MAX_TOTAL_BYTES). */
  maxTotalBytes?: number;
  /** Per-layer results of earlier scans (layers with a `key`). */
  cache?: ScanCache;
  /** Where a large executable is spooled (default: the OS temp directory). */
  tempPath?: TempPath;
}

/** The scanner files of the merged image, by path relative to "/" (no leading slash). */
export async function scanFiles(layers: ScanLayer[], options: ScanOptions = {}): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const max = options.maxTotalBytes ?? MAX_TOTAL_BYTES;
  let kept = 0;
  for (const layer of layers) {
    throwIfAborted(options.signal);
    let scan = layer.key !== undefined ? await options.cache?.get(layer.key) : undefined;
    if (!scan) {
      scan = await readLayer(layer, options.signal, max - kept, options.tempPath ?? osTempPath);
      if (layer.key !== undefined) await options.cache?.put(layer.key, scan);
    }
    kept += keptBytes(scan);
    if (kept > max) throw new KilnError("FEATURE_UNSUPPORTED", `SBOM scan: the image's package databases exceed the scan's limit (${max} bytes)`);
    applyScan(files, scan);
  }
  return files;
}
