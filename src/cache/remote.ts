// Sharing the build cache through a registry or an OCI layout directory (specs: ./spec.ts,
// re-exported here). The cache travels as an ORDINARY OCI image manifest (never an index, so
// every registry accepts it): its config blob (media type and artifactType
// application/vnd.kiln.cache.config.v1+json) holds the key -> record list, its layers are the
// records' layer blobs, deduplicated. Export reuses the registry push code (HEAD before upload,
// cross-repo mounts) or the OCI layout writer; import fetches the manifest and config only, and
// each layer blob later, when a build actually needs it.
import { PassThrough, addAbortSignal, type Readable } from "node:stream";
import { KilnError, abortError, throwIfAborted } from "../errors.js";
import { OciLayout } from "../image/layout.js";
import { descriptorJSON } from "../image/materialize.js";
import { MediaType, isDigest, type Descriptor, type Digest, type Manifest } from "../image/oci.js";
import { parseReference, referenceTarget, type Reference } from "../image/reference.js";
import { writeOciLayout } from "../output/oci-layout.js";
import { imageSource, storeImage } from "../image/source.js";
import { RegistryClient } from "../registry/client.js";
import type { RegistryOptions } from "../registry/options.js";
import { fetchBlob, fetchManifest } from "../registry/pull.js";
import { pushImage, type BlobSource } from "../registry/push.js";
import { addOrigin } from "../registry/records.js";
import type { BlobStore } from "../store/blob-store.js";
import { canonicalJSON } from "./key.js";
import { isCacheRecord, type CacheRecord } from "./local.js";
import type { CacheMode, CacheSpec, LocalCacheSpec, RegistryCacheSpec } from "./spec.js";

export { DEFAULT_LOCAL_CACHE_TAG, parseCacheSpec, type CacheMode, type CacheSpec, type LocalCacheSpec, type RegistryCacheSpec } from "./spec.js";

export const CACHE_CONFIG_MEDIA_TYPE = "application/vnd.kiln.cache.config.v1+json";
const CACHE_CONFIG_VERSION = 1;
/** Upper bound on a cache config blob read into memory. */
const CONFIG_LIMIT = 64 * 1024 * 1024;

interface CacheConfigDoc {
  v: number;
  mode: CacheMode;
  records: CacheRecord[];
}

export interface RemoteCache {
  readonly spec: CacheSpec;
  /** Number of usable records. */
  readonly size: number;
  /** Why the cache is empty or partial (missing ref, ignored error), if it is. */
  readonly warning?: string;
  lookup(key: Digest): CacheRecord | undefined;
  /** Downloads that record's layer blob into the store (no-op when present or layer-less). */
  fetchLayer(rec: CacheRecord): Promise<void>;
  /** Releases connections (registry caches). */
  close(): Promise<void>;
}

export interface ExportOptions {
  store: BlobStore;
  registry?: RegistryOptions;
  /**
   * Imported caches that may supply layer blobs this store never downloaded (records reused
   * lazily). A record whose blob neither the store nor these can supply is left out.
   */
  remotes?: RemoteCache[];
  /** Told why an `ignore-error=true` export failed (the export itself then resolves). */
  onWarning?: (message: string) => void;
}

/** The manifest (and config) bytes for `records`, written to the store. */
async function writeCacheManifest(records: CacheRecord[], mode: CacheMode, store: BlobStore): Promise<{ manifest: Descriptor; config: Descriptor; layers: Descriptor[] }> {
  const sorted = [...new Map(records.map((r) => [r.key, r])).values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const doc: CacheConfigDoc = { v: CACHE_CONFIG_VERSION, mode, records: sorted };
  const cfg = await store.putBytes(canonicalJSON(doc));
  const config: Descriptor = { mediaType: CACHE_CONFIG_MEDIA_TYPE, digest: cfg.digest, size: cfg.size };
  const layers = new Map<string, Descriptor>();
  for (const r of sorted) {
    if (!r.layer) continue;
    const d = r.layer.descriptor;
    if (!layers.has(d.digest)) layers.set(d.digest, { mediaType: d.mediaType, digest: d.digest, size: d.size });
  }
  const layerList = [...layers.values()];
  const manifestDoc = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: CACHE_CONFIG_MEDIA_TYPE,
    config: descriptorJSON(config),
    layers: layerList.map(descriptorJSON),
  };
  const man = await store.putBytes(JSON.stringify(manifestDoc));
  return { manifest: { mediaType: MediaType.ociManifest, digest: man.digest, size: man.size }, config, layers: layerList };
}

/** Records whose layer blobs can be had, with a lazy supplier for those not in the store. */
async function exportable(records: CacheRecord[], options: ExportOptions): Promise<{ keep: CacheRecord[]; lazy: Map<string, { remote: RemoteCache; rec: CacheRecord }> }> {
  const keep: CacheRecord[] = [];
  const lazy = new Map<string, { remote: RemoteCache; rec: CacheRecord }>();
  for (const rec of records) {
    if (!isCacheRecord(rec)) throw new KilnError("CACHE_RECORD_INVALID", `cache export: invalid cache record ${String((rec as { key?: unknown }).key)}`);
    if (!rec.layer || (await options.store.has(rec.layer.descriptor.digest))) {
      keep.push(rec);
      continue;
    }
    const digest = rec.layer.descriptor.digest;
    const remote = options.remotes?.find((r) => r.lookup(rec.key)?.layer?.descriptor.digest === digest);
    if (!remote) continue;
    keep.push(rec);
    if (!lazy.has(digest)) lazy.set(digest, { remote, rec });
  }
  return { keep, lazy };
}

/** Export `records` to the cache `spec` names (an OCI image manifest; see the header). */
export async function exportCache(records: CacheRecord[], spec: CacheSpec, options: ExportOptions): Promise<void> {
  const signal = options.registry?.signal;
  try {
    throwIfAborted(signal);
    await doExport(records, spec, options);
  } catch (err) {
    // cancelled: never a warning, whatever ignore-error says
    if (signal?.aborted) throw abortError(signal);
    const e = err instanceof KilnError ? err : new KilnError("CACHE_EXPORT_FAILED", `cache export to ${describeSpec(spec)}: ${(err as Error).message}`, { cause: err });
    if (!spec.ignoreError) throw e;
    options.onWarning?.(e.message);
  }
}

async function doExport(records: CacheRecord[], spec: CacheSpec, options: ExportOptions): Promise<void> {
  const { store } = options;
  const { keep, lazy } = await exportable(records, options);
  if (spec.type === "local") {
    for (const { remote, rec } of lazy.values()) await remote.fetchLayer(rec);
    const m = await writeCacheManifest(keep, spec.mode, store);
    await writeOciLayout(await storeImage(store, m.manifest), {
      dest: spec.dir,
      tags: [`kiln-cache:${spec.tag}`],
      ...(options.registry?.signal ? { signal: options.registry.signal } : {}),
    });
    return;
  }
  const ref = parseReference(spec.ref);
  // Blobs that came from a registry cache on the same registry: record where they are, so the
  // push finds them with HEAD (same repository) or mounts them (another repository) instead of
  // downloading them first.
  for (const [digest, { remote }] of lazy) {
    if (remote.spec.type !== "registry") continue;
    const from = parseReference(remote.spec.ref);
    if (from.registry === ref.registry) await addOrigin(store, digest as Digest, { registry: from.registry, repository: from.repository });
  }
  const m = await writeCacheManifest(keep, spec.mode, store);
  await pushImage(await imageSource(lazySource(store, lazy), m.manifest), [ref], { ...(options.registry ?? {}), store });
}

/** The store as a BlobSource; blobs it lacks are fetched from their remote cache only when read. */
function lazySource(store: BlobStore, lazy: Map<string, { remote: RemoteCache; rec: CacheRecord }>): BlobSource {
  return {
    open: (d: Digest): Readable => {
      const l = lazy.get(d);
      if (!l) return store.open(d);
      const out = new PassThrough();
      l.remote
        .fetchLayer(l.rec)
        .then(() => {
          const src = store.open(d);
          src.on("error", (e) => out.destroy(e));
          src.pipe(out);
        })
        .catch((e: unknown) => out.destroy(e as Error));
      return out;
    },
    size: async (d: Digest): Promise<number> => {
      const l = lazy.get(d);
      if (l?.rec.layer) return l.rec.layer.descriptor.size;
      return store.size(d);
    },
    readBytes: async (d: Digest): Promise<Buffer> => {
      try {
        return await store.readBytes(d);
      } catch {
        throw new KilnError("BLOB_MISSING", `blob ${d} is not in the store ${store.root}`);
      }
    },
  };
}

function describeSpec(spec: CacheSpec): string {
  return spec.type === "registry" ? spec.ref : `${spec.dir} (tag ${spec.tag})`;
}

/** Check a fetched manifest is a kiln cache and index its records by key. */
function readRecords(manifest: Manifest, doc: unknown, where: string): Map<string, CacheRecord> {
  const d = doc as Partial<CacheConfigDoc> | null;
  if (!d || typeof d !== "object" || d.v !== CACHE_CONFIG_VERSION || !Array.isArray(d.records)) {
    throw new KilnError("CACHE_FORMAT_INVALID", `${where}: unsupported cache format (version ${JSON.stringify(d?.v)})`);
  }
  const layerDigests = new Set(manifest.layers.map((l) => l.digest));
  const out = new Map<string, CacheRecord>();
  for (const r of d.records) {
    if (!isCacheRecord(r)) continue;
    if (r.layer && !layerDigests.has(r.layer.descriptor.digest)) continue;
    out.set(r.key, r);
  }
  return out;
}

function checkCacheManifest(m: Manifest, where: string): Manifest {
  if (!m || typeof m !== "object" || !m.config || !Array.isArray(m.layers)) throw new KilnError("CACHE_FORMAT_INVALID", `${where}: not an image manifest`);
  if (m.config.mediaType !== CACHE_CONFIG_MEDIA_TYPE) {
    throw new KilnError("CACHE_FORMAT_INVALID", `${where}: not a kiln build cache (config media type ${m.config.mediaType})`);
  }
  if (!isDigest(m.config.digest) || typeof m.config.size !== "number" || m.config.size > CONFIG_LIMIT) {
    throw new KilnError("CACHE_FORMAT_INVALID", `${where}: invalid cache config descriptor`);
  }
  for (const l of m.layers) if (!l || !isDigest(l.digest) || typeof l.size !== "number") throw new KilnError("CACHE_FORMAT_INVALID", `${where}: invalid layer descriptor`);
  return m;
}

function makeCache(spec: CacheSpec, records: Map<string, CacheRecord>, fetch: (d: Descriptor) => Promise<void>, close: () => Promise<void>, warning?: string): RemoteCache {
  return {
    spec,
    size: records.size,
    ...(warning !== undefined ? { warning } : {}),
    lookup: (key) => records.get(key),
    fetchLayer: async (rec) => {
      if (!rec.layer) return;
      const known = records.get(rec.key);
      if (!known?.layer || known.layer.descriptor.digest !== rec.layer.descriptor.digest) {
        throw new KilnError("CACHE_LAYER_MISSING", `cache ${describeSpec(spec)}: no layer ${rec.layer.descriptor.digest} for key ${rec.key}`);
      }
      await fetch(known.layer.descriptor);
    },
    close,
  };
}

function emptyCache(spec: CacheSpec, warning: string): RemoteCache {
  return makeCache(spec, new Map(), async () => undefined, async () => undefined, warning);
}

export interface ImportOptions {
  store: BlobStore;
  registry?: RegistryOptions;
}

/** Import the cache `spec` names: its manifest and config now, layer blobs on fetchLayer. */
export async function importCache(spec: CacheSpec, options: ImportOptions): Promise<RemoteCache> {
  const signal = options.registry?.signal;
  try {
    throwIfAborted(signal);
    return spec.type === "registry" ? await importRegistry(spec, options) : await importLocal(spec, options);
  } catch (err) {
    if (signal?.aborted) throw abortError(signal);
    const msg = err instanceof KilnError ? err.message : `cache import from ${describeSpec(spec)}: ${(err as Error).message}`;
    if (spec.ignoreError) return emptyCache(spec, msg);
    throw err instanceof KilnError ? err : new KilnError("CACHE_IMPORT_FAILED", msg);
  }
}

async function importRegistry(spec: RegistryCacheSpec, options: ImportOptions): Promise<RemoteCache> {
  const ref: Reference = parseReference(spec.ref);
  const reg = options.registry ?? {};
  const client = new RegistryClient(ref.registry, reg);
  client.useRepository(ref.repository);
  const close = (): Promise<void> => client.close();
  try {
    let fetched;
    try {
      fetched = await fetchManifest(client, ref, referenceTarget(ref), options.store);
    } catch (err) {
      if (err instanceof KilnError && err.code === "REGISTRY_MANIFEST_UNKNOWN") {
        await close();
        return emptyCache(spec, `cache ${spec.ref} not found; building without it`);
      }
      throw err;
    }
    const where = `cache ${spec.ref}`;
    const manifest = checkCacheManifest(fetched.doc as Manifest, where);
    await fetchBlob(client, ref, manifest.config, options.store, reg, CONFIG_LIMIT);
    const records = readRecords(manifest, await options.store.readJSON<unknown>(manifest.config.digest), where);
    return makeCache(spec, records, (d) => fetchBlob(client, ref, d, options.store, reg), close);
  } catch (err) {
    await close();
    throw err;
  }
}

async function importLocal(spec: LocalCacheSpec, options: ImportOptions): Promise<RemoteCache> {
  let layout: OciLayout;
  try {
    layout = await OciLayout.open(spec.dir);
  } catch (err) {
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === "ENOENT") {
      return emptyCache(spec, `cache ${spec.dir} not found; building without it`);
    }
    throw err;
  }
  const where = `cache ${spec.dir}`;
  const desc = await layout.resolve(spec.tag);
  const manifest = checkCacheManifest(await layout.readJSON<Manifest>(desc.digest), where);
  const records = readRecords(manifest, await layout.readJSON<unknown>(manifest.config.digest), where);
  const { store } = options;
  const fetch = async (d: Descriptor): Promise<void> => {
    if (await store.has(d.digest)) return;
    let stream: Readable;
    try {
      stream = layout.openBlob(d.digest);
    } catch (err) {
      throw new KilnError("CACHE_IMPORT_FAILED", `${where}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const signal = options.registry?.signal;
      await store.ingest(signal ? addAbortSignal(signal, stream) : stream, { digest: d.digest, size: d.size });
    } catch (err) {
      if (options.registry?.signal?.aborted) throw abortError(options.registry.signal);
      const code = (err as NodeJS.ErrnoException).code;
      throw new KilnError("CACHE_IMPORT_FAILED", `${where}: layer ${d.digest}: ${code === "ENOENT" ? "blob is missing" : (err as Error).message}`, { cause: err });
    }
  };
  return makeCache(spec, records, fetch, async () => undefined);
}
