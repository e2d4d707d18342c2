// Reading a layer blob for a root filesystem: the decompressor for its media type, the verified
// uncompressed stream every extraction reads (hashed against the claimed diff_id as it passes),
// and the check that a layer is exactly the snapshot a step just took (header by header, content
// not read), so a RUN's own layer is not extracted again onto the tree that produced it.
import type { Duplex, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, type ZlibOptions } from "node:zlib";
import { decompressStream } from "../layer/compress.js";
import { DiffIDCheck, type LayerOrigin } from "../layer/diffid-check.js";
import type { LayerEntry } from "../layer/entry.js";
import { scanTarHeaders, type TarHeaderInfo } from "./tar-xattrs.js";

export interface RootFSLayer extends LayerOrigin {
  mediaType: string;
  /** Opens the compressed blob. */
  open(): Readable;
  /** The entries the layer was written from, when it is a step's snapshot (lets the root filesystem recognise it without reading it). */
  snapshot?: LayerEntry[];
}

/** Output chunk of the gunzip feeding extraction: big chunks halve its per-chunk overhead. */
const GUNZIP_CHUNK = 1024 * 1024;
/** Decompressed bytes the gunzip may run ahead of extraction, so the two overlap. */
const GUNZIP_AHEAD = 8 * 1024 * 1024;

// (ZlibOptions does not declare the Transform options zlib streams pass on, such as readableHighWaterMark)
export function decompressor(mediaType: string): Duplex {
  return /[+.]gzip$/i.test(mediaType) ? createGunzip({ chunkSize: GUNZIP_CHUNK, readableHighWaterMark: GUNZIP_AHEAD } as ZlibOptions) : decompressStream(mediaType);
}

/**
 * The layer's uncompressed tar, hashed while it is read: `stream` fails at its end (a one-line
 * KilnError naming the layer) when the content does not hash to `layer.diffID`, so a consumer
 * that reads it to the end without an error has verified the layer in the same pass.
 * `done` settles when the whole chain has; `abort` stops reading the blob.
 */
export function openVerified(layer: RootFSLayer): { stream: Readable; done: Promise<void>; abort: () => void } {
  const src = layer.open();
  const check = new DiffIDCheck(layer);
  const done = pipeline(src, decompressor(layer.mediaType), check);
  done.catch(() => undefined); // its error also surfaces through whoever reads `stream`
  return { stream: check, done, abort: () => src.destroy() };
}

const TYPEFLAGS: Record<LayerEntry["type"], string> = { file: "0", hardlink: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" };

/** True when the tar headers are exactly `entries` (same order, paths, types, modes, owners, sizes, links). */
function sameEntries(headers: TarHeaderInfo[], entries: LayerEntry[]): boolean {
  if (headers.length !== entries.length) return false;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i] as TarHeaderInfo;
    const e = entries[i] as LayerEntry;
    const name = e.type === "dir" ? `${e.path}/` : e.path;
    const typeflag = h.typeflag === "7" ? "0" : h.typeflag;
    if (h.name !== name || typeflag !== TYPEFLAGS[e.type] || h.mode !== e.mode || h.uid !== e.uid || h.gid !== e.gid) return false;
    if (e.type === "file" && h.size !== e.size) return false;
    if ((e.type === "symlink" || e.type === "hardlink") && h.linkname !== e.linkname) return false;
  }
  return true;
}

/** True when `layer` is the one written from `snapshot` (the entries of the last step). */
export async function isSnapshotLayer(layer: RootFSLayer, snapshot: LayerEntry[] | null): Promise<boolean> {
  if (!snapshot) return false;
  if (layer.snapshot !== undefined) return layer.snapshot === snapshot;
  const src = layer.open();
  const dec = decompressor(layer.mediaType);
  const feeding = pipeline(src, dec);
  feeding.catch(() => undefined);
  try {
    const headers = await scanTarHeaders(dec as AsyncIterable<Buffer>);
    if (headers === null) {
      src.destroy();
      return false;
    }
    await feeding;
    return sameEntries(headers, snapshot);
  } catch {
    src.destroy();
    return false; // the full apply reports what is wrong with the blob
  }
}
