// Writing a layer blob: one streaming pass tar -> sha256 (diffID) -> gzip -> sha256 (digest,
// size) -> temp file in the blob store -> renamed to its digest. Memory stays flat.
import { closeSync, openSync, writeSync } from "node:fs";
import { rm } from "node:fs/promises";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Layer } from "../image/image.js";
import { MediaType } from "../image/oci.js";
import { HashCounter, type BlobStore } from "../store/blob-store.js";
import { BlockPool, gzipStream } from "./compress.js";
import type { LayerEntry } from "./entry.js";
import { tarStream } from "./tar-writer.js";

export interface WriteLayerOptions {
  /** gzip level 0-9 (default 6). */
  level?: number;
  /** Clamp file mtimes to at most this (seconds since the epoch). */
  clampMtime?: number;
}

/** Write `entries` as a gzip layer into `store`; returns its descriptor, diffID and tar size. */
export async function writeLayer(
  entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>,
  store: BlobStore,
  options?: WriteLayerOptions,
): Promise<Layer & { uncompressedSize: number }> {
  const tmp = await store.tempPath();
  const tarHash = new HashCounter();
  const blobHash = new HashCounter();
  // The tar writer's 1 MiB chunks are compressed in place and recycled (see GzipOptions.pool);
  // the diffID hasher in between only reads them.
  const pool = new BlockPool();
  try {
    await pipeline(
      tarStream(entries, {
        allocChunk: () => pool.acquire(),
        ...(options?.clampMtime !== undefined ? { clampMtime: options.clampMtime } : {}),
      }),
      tarHash,
      gzipStream({ pool, ...(options?.level !== undefined ? { level: options.level } : {}) }),
      blobHash,
      new BlobFileWriter(tmp),
    );
    const digest = blobHash.digest();
    await store.commit(tmp, digest);
    return {
      descriptor: { mediaType: MediaType.ociLayerGzip, digest, size: blobHash.size },
      diffID: tarHash.digest(),
      uncompressedSize: tarHash.size,
    };
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Writes the compressed blob to its temp file with synchronous writes: a fs.WriteStream queues
 * each write on the libuv thread pool behind the gzip blocks being compressed there, stalling
 * the whole pipeline; the blob arrives in ~1 MiB pieces that land in the page cache at once.
 */
class BlobFileWriter extends Writable {
  private readonly path: string;
  private fd: number | undefined;

  constructor(path: string) {
    super({ highWaterMark: 4 * 1024 * 1024 });
    this.path = path;
  }

  override _construct(cb: (err?: Error | null) => void): void {
    try {
      this.fd = openSync(this.path, "w", 0o666); // as createWriteStream: umask applies
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      let off = 0;
      while (off < chunk.length) off += writeSync(this.fd!, chunk, off, chunk.length - off);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.closeFd(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.closeFd(() => cb(err));
  }

  private closeFd(cb: (err?: Error | null) => void): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return cb();
    try {
      closeSync(fd);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}
