// `kiln manifest create`: read every source (registry references and OCI layouts, images or
// indexes), merge their manifests into one index (manifest-merge.ts), then push it to each
// reference (blobs a source repository in the same registry has are mounted, the others are
// copied streamed and verified; child manifests byte-identical) or write it as an OCI layout.
// Annotations go on the index and its entries (manifest-merge.ts); --amend adds to the index
// already at the target (manifest-amend.ts).
import { KilnError, abortable } from "../errors.js";
import type { IndexSource } from "../image/image-index.js";
import type { ImageFormat } from "../image/oci.js";
import { imageSource } from "../image/source.js";
import { writeOciLayout } from "../output/oci-layout.js";
import { ClientPool } from "../registry/client.js";
import type { RegistryOptions } from "../registry/options.js";
import { pushRoot, type PushResult } from "../registry/push.js";
import type { BlobStore } from "../store/blob-store.js";
import { fetchRemoteBlobs, locateBlobs, mergedReader } from "./manifest-blobs.js";
import { amendManifests, amendTarget, existingTarget } from "./manifest-amend.js";
import { defaultFormat, mergeManifests, type IndexAnnotations, type MergedIndex } from "./manifest-merge.js";
import { resolveSource } from "./manifest-sources.js";

export interface ManifestCreateOptions extends RegistryOptions {
  store: BlobStore;
  sources: string[];
  /** References to push the index to. */
  push?: string[];
  /** An OCI layout to write it to instead (or as well); `tags` name it there. */
  layout?: { dest: string; tar: boolean; tags: string[] };
  /** Index media type (default: a Docker manifest list when every source manifest is Docker schema2, else OCI). */
  format?: ImageFormat;
  /** Annotations of the index and of its image entries. */
  annotations?: IndexAnnotations;
  /** Add to the index already at the target (the first `push` reference, else the layout's first tag), replacing same-platform entries. */
  amend?: boolean;
}

export interface ManifestCreateResult {
  index: MergedIndex;
  pushed?: PushResult;
}

export function createManifest(options: ManifestCreateOptions): Promise<ManifestCreateResult> {
  return abortable(options.signal, () => create(options));
}

async function create(options: ManifestCreateOptions): Promise<ManifestCreateResult> {
  const { store, sources } = options;
  if (sources.length === 0) throw new KilnError("OPTION_INVALID", "manifest create: no source image given");
  if ((options.push ?? []).length === 0 && !options.layout) throw new KilnError("OPTION_INVALID", "manifest create: give a reference to push to (-t) or an --output");
  const amend = options.amend ? amendTarget(options.push ?? [], options.layout) : undefined;
  const pool = new ClientPool(options);
  try {
    const ctx = { store, pool, options };
    let manifests = [];
    for (const s of sources) manifests.push(...(await resolveSource(s, ctx)).manifests);
    let annotations = options.annotations ?? {};
    if (amend) {
      const target = await existingTarget(amend, ctx);
      if (target) {
        manifests = amendManifests(target.manifests, manifests);
        annotations = { ...annotations, index: { ...target.annotations, ...annotations.index } };
      }
    }
    const index = mergeManifests(manifests, options.format ?? defaultFormat(manifests, annotations), annotations);
    const plan = await locateBlobs(index, store);
    const result: ManifestCreateResult = { index };
    if ((options.push ?? []).length > 0) {
      const reader = mergedReader(index, plan, store, pool, false);
      result.pushed = await pushRoot(reader, index.descriptor, options.push!, { ...options, store, origins: plan.origins });
    }
    if (options.layout) {
      await fetchRemoteBlobs(index, plan, store, pool, options);
      const reader = mergedReader(index, plan, store, pool, true);
      const images = await Promise.all(index.entries.map((m) => imageSource(reader, m.descriptor, `${m.source}: manifest ${m.descriptor.digest}`)));
      const img: IndexSource = { kind: "index", format: index.descriptor.mediaType.includes("docker") ? "docker" : "oci", manifest: index.descriptor, images, ...reader };
      await writeOciLayout(img, { dest: options.layout.dest, tar: options.layout.tar, tags: options.layout.tags, ...(options.signal ? { signal: options.signal } : {}) });
    }
    return result;
  } finally {
    await pool.close();
  }
}
