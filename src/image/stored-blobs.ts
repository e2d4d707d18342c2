// What of a stored image is in the BlobStore: a manifest is complete when it and every blob it
// lists (config, layers) are there; an index pulled for one platform holds only that platform's
// image (and its attestation manifest), so the platforms whose blobs are missing are named here
// for the messages of the commands that need them all (kiln push NAME) or one of them.
import type { BlobStore } from "../store/blob-store.js";
import { REFERENCE_DIGEST_ANNOTATION, isAttestationEntry } from "./attestation-entry.js";
import type { Descriptor, Index, Manifest } from "./oci.js";
import { formatPlatform } from "./platform.js";

/** Whether the manifest `desc` and every blob it lists are in the store (a malformed one is not). */
export async function hasManifestBlobs(store: BlobStore, desc: Descriptor): Promise<boolean> {
  if (!(await store.has(desc.digest))) return false;
  try {
    const m = await store.readJSON<Manifest>(desc.digest);
    const blobs = [m.config, ...(Array.isArray(m.layers) ? m.layers : [])];
    const present = await Promise.all(blobs.map((d) => (d && typeof d.digest === "string" ? store.has(d.digest) : false)));
    return present.every(Boolean);
  } catch {
    return false;
  }
}

/** How a message names an index entry's platform (`unknown` when the entry gives none). */
function platformName(d: Descriptor | undefined): string {
  return d?.platform ? formatPlatform(d.platform) : "unknown";
}

/**
 * The platforms of `index` whose image, or the attestation manifest attached to it, is not wholly
 * in the store, in index order without repeats (empty when the index is complete).
 */
export async function missingPlatforms(store: BlobStore, index: Index): Promise<string[]> {
  const entries = Array.isArray(index.manifests) ? index.manifests : [];
  const complete = await Promise.all(entries.map((d) => hasManifestBlobs(store, d)));
  const out: string[] = [];
  entries.forEach((d, i) => {
    if (complete[i]) return;
    const image = isAttestationEntry(d) ? entries.find((x) => x.digest === d.annotations?.[REFERENCE_DIGEST_ANNOTATION]) : d;
    const name = platformName(image);
    if (!out.includes(name)) out.push(name);
  });
  return out;
}
