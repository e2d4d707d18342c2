// Writing a layer blob: one streaming pass tar -> sha256 (diffID) -> gzip -> sha256 (digest,
// size) -> temp file in the blob store -> renamed to its digest. Memory stays flat.
import { createdWriteStream } from "../store/atomic-file.js";
import { rm } from "node:fs/promises";
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
      await createdWriteStream(tmp),
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

