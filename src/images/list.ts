// `kiln images`: one row per stored name — name, the digest it points at, platform(s), size (the
// compressed blobs: manifest, config and layers, as they sit in the store) and the image config's
// created time. A name whose blobs were pruned away is listed with what is still known; of an
// index, the platforms listed are those pulled (attestation manifests are sized, never listed).
import type { Descriptor, ImageConfig, Index, Manifest, Platform } from "../image/oci.js";
import { isIndexType } from "../image/oci.js";
import { isAttestationEntry } from "../image/attestation-entry.js";
import { formatPlatform } from "../image/platform.js";
import { BlobStore } from "../store/blob-store.js";
import { listNames, type NameRecord } from "../store/names.js";

export interface ImageRow {
  name: string;
  digest: string;
  platforms: string[];
  size: number;
  created?: string;
  /** False when blobs the name needs are missing from the store. */
  complete: boolean;
}

async function manifestInfo(store: BlobStore, desc: Descriptor): Promise<{ platform?: string; size: number; created?: string; complete: boolean }> {
  let size = desc.size;
  try {
    const m = await store.readJSON<Manifest>(desc.digest);
    size += m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
    let complete = true;
    for (const d of m.layers) if (!(await store.has(d.digest))) complete = false;
    const cfg = await store.readJSON<ImageConfig>(m.config.digest);
    const p: Platform = { os: cfg.os, architecture: cfg.architecture, ...(cfg.variant ? { variant: cfg.variant } : {}) };
    return { platform: formatPlatform(p), size, ...(cfg.created ? { created: cfg.created } : {}), complete };
  } catch {
    return { size, complete: false };
  }
}

async function row(store: BlobStore, rec: NameRecord): Promise<ImageRow> {
  const base = { name: rec.name, digest: rec.target.digest };
  if (!isIndexType(rec.target.mediaType)) {
    const info = await manifestInfo(store, rec.target);
    return { ...base, platforms: info.platform ? [info.platform] : [], size: info.size, ...(info.created ? { created: info.created } : {}), complete: info.complete };
  }
  try {
    const index = await store.readJSON<Index>(rec.target.digest);
    const out: ImageRow = { ...base, platforms: [], size: rec.target.size, complete: true };
    for (const d of index.manifests) {
      if (!(await store.has(d.digest))) continue; // platforms never pulled are not here
      const info = await manifestInfo(store, d);
      // an attestation manifest is counted in the size, but is no platform of the image
      if (info.platform && !isAttestationEntry(d)) out.platforms.push(info.platform);
      out.size += info.size;
      if (!info.complete) out.complete = false;
      if (info.created && (!out.created || info.created > out.created)) out.created = info.created;
    }
    return out;
  } catch {
    return { ...base, platforms: [], size: rec.target.size, complete: false };
  }
}

export async function listImages(cacheDir: string): Promise<ImageRow[]> {
  const store = new BlobStore(cacheDir);
  const out: ImageRow[] = [];
  for (const rec of await listNames(cacheDir)) out.push(await row(store, rec));
  return out;
}
