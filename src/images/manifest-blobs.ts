// The blobs of a merged index (`kiln manifest create`) as one BlobReader: the new index from
// memory; every child manifest, config and layer from where its source keeps it: the blob store
// (manifests and configs read from a registry are there, and any blob pulled before), an OCI
// layout, or its registry repository, streamed and verified by digest and size. Also the
// registry origins of the blobs, so a push to the same registry mounts instead of copying.
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { KilnError } from "../errors.js";
import type { Descriptor, Digest } from "../image/oci.js";
import type { BlobReader } from "../image/source.js";
import type { ClientPool } from "../registry/client.js";
import { fetchBlob } from "../registry/pull.js";
import type { BlobOrigin } from "../registry/records.js";
import { openRemoteBlob } from "../registry/remote-blob.js";
import type { RegistryOptions } from "../registry/options.js";
import type { BlobStore } from "../store/blob-store.js";
import type { MergedIndex } from "./manifest-merge.js";
import type { SourceLocation } from "./manifest-sources.js";

interface Located {
  descriptor: Descriptor;
  location: SourceLocation;
  /** Already in the blob store (checked when the plan was made). */
  inStore: boolean;
}

export interface MergedBlobs {
  /** Every blob but the index: child manifests, configs, layers, unique by digest. */
  blobs: Map<Digest, Located>;
  /** Registry repositories each blob is known to be in (for cross-repository mounts). */
  origins: Map<Digest, BlobOrigin[]>;
}

export async function locateBlobs(merged: MergedIndex, store: BlobStore): Promise<MergedBlobs> {
  const blobs = new Map<Digest, Located>();
  const origins = new Map<Digest, BlobOrigin[]>();
  for (const m of merged.entries) {
    for (const d of [m.descriptor, m.manifest.config, ...m.manifest.layers]) {
      if (m.location.kind === "registry") {
        const { registry, repository } = m.location.ref;
        const list = origins.get(d.digest) ?? [];
        if (!list.some((o) => o.registry === registry && o.repository === repository)) list.push({ registry, repository });
        origins.set(d.digest, list);
      }
      if (blobs.has(d.digest)) continue;
      blobs.set(d.digest, { descriptor: { mediaType: d.mediaType, digest: d.digest, size: d.size }, location: m.location, inStore: await store.has(d.digest) });
    }
  }
  return { blobs, origins };
}

/**
 * Fetch every blob only a registry has into the store (verified), and put the index there, so
 * the whole merged index is readable from files (what an OCI layout output needs).
 */
export async function fetchRemoteBlobs(merged: MergedIndex, plan: MergedBlobs, store: BlobStore, pool: ClientPool, options: RegistryOptions): Promise<void> {
  await store.putBytes(merged.bytes);
  for (const b of plan.blobs.values()) {
    if (b.inStore || b.location.kind !== "registry") continue;
    await fetchBlob(pool.get(b.location.ref.registry), b.location.ref, b.descriptor, store, options);
    b.inStore = true;
  }
}

/** The BlobReader over the index and its blobs; `withPaths` only once every blob is a file (after fetchRemoteBlobs). */
export function mergedReader(merged: MergedIndex, plan: MergedBlobs, store: BlobStore, pool: ClientPool, withPaths: boolean): BlobReader {
  const find = (d: Digest): Located => {
    const b = plan.blobs.get(d);
    if (!b) throw new KilnError("BLOB_MISSING", `internal: blob ${d} is not part of the merged index`);
    return b;
  };
  const open = (d: Digest): Readable => {
    if (d === merged.descriptor.digest) return Readable.from([merged.bytes]);
    const b = find(d);
    if (b.inStore) return store.open(d);
    if (b.location.kind === "layout") return b.location.layout.openBlob(d);
    return openRemoteBlob(pool.get(b.location.ref.registry), b.location.ref, b.descriptor);
  };
  const reader: BlobReader = {
    open,
    size: async (d) => (d === merged.descriptor.digest ? merged.bytes.length : find(d).descriptor.size),
    readBytes: async (d) => {
      if (d === merged.descriptor.digest) return merged.bytes;
      const b = find(d);
      if (b.inStore) return store.readBytes(d);
      if (b.location.kind === "layout") {
        const layout = b.location.layout;
        return readFile(layout.blobPath(d)).catch(() => {
          throw new KilnError("BLOB_MISSING", `${layout.dir}: blob ${d} is missing`);
        });
      }
      return buffer(open(d));
    },
  };
  if (withPaths) {
    reader.path = (d: Digest): string => {
      if (d === merged.descriptor.digest) return store.path(d);
      const b = find(d);
      return b.inStore || b.location.kind !== "layout" ? store.path(d) : b.location.layout.blobPath(d);
    };
  }
  return reader;
}
