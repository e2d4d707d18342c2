// The build's view of the cache: lookups of step keys (each step assembles its own key parts,
// src/engine/step.ts; the state chain is in state.ts) in the local cache and in imported
// `--cache-from` caches, lazy download of layers that hits point at, the records that
// `--cache-to` exports, the stat caches of context roots, and the per-step key/hit list for
// `--metadata-file`.
import { LocalCache, type CacheRecord } from "../cache/local.js";
import type { RemoteCache } from "../cache/remote.js";
import { parseCacheSpec, type CacheSpec } from "../cache/spec.js";
import { StatCache } from "../cache/sources.js";
import type { Layer } from "../image/image.js";
import type { Digest } from "../image/oci.js";
import type { RegistryOptions } from "../registry/options.js";
import type { BlobStore } from "../store/blob-store.js";
import { KilnError } from "../errors.js";
import type { BuildOptions } from "./options.js";

export interface StepCacheInfo {
  stage: string;
  step: number;
  instruction: string;
  key: Digest;
  cached: boolean;
  /** The target platform, in a build for several. */
  platform?: string;
}

/** `--no-cache` (never look up; results are still recorded), `--no-cache-filter` (lower-case stage names), `--cache-from`, `--cache-to`. */
export type CacheOptions = Pick<BuildOptions, "noCache" | "noCacheFilter" | "cacheFrom" | "cacheTo">;

export class BuildCache {
  readonly local: LocalCache;
  private remotes: RemoteCache[] = [];
  /** Layers that remote hits point at, by blob digest: fetched only when something reads them. */
  private readonly remoteLayers = new Map<Digest, { remote: RemoteCache; rec: CacheRecord }>();
  private readonly statCaches = new Map<string, Promise<StatCache>>();
  /** Records produced or reused by this build, per stage index. */
  private readonly records = new Map<number, CacheRecord[]>();
  readonly steps: StepCacheInfo[] = [];
  private readonly exports: CacheSpec[];
  private readonly imports: CacheSpec[];

  constructor(
    readonly store: BlobStore,
    private readonly options: CacheOptions,
    private readonly registry: RegistryOptions,
    private readonly warn: (message: string) => void,
  ) {
    this.local = new LocalCache(store);
    this.imports = (options.cacheFrom ?? []).map((s) => parseCacheSpec(s, "from"));
    this.exports = (options.cacheTo ?? []).map((s) => parseCacheSpec(s, "to"));
  }

  /** Fetch the `--cache-from` manifests (configs only; layers come later, when needed). */
  async open(): Promise<void> {
    if (this.imports.length === 0) return;
    const { importCache } = await import("../cache/remote.js"); // the registry client loads only when needed
    for (const spec of this.imports) {
      const remote = await importCache(spec, { store: this.store, registry: this.registry });
      if (remote.warning) this.warn(`cache import: ${remote.warning}`);
      this.remotes.push(remote);
    }
  }

  async lookup(key: Digest, stageName: string | undefined): Promise<CacheRecord | undefined> {
    if (this.options.noCache) return undefined;
    if (stageName && this.options.noCacheFilter?.includes(stageName.toLowerCase())) return undefined;
    const local = await this.local.get(key);
    if (local) {
      await this.local.touch(key).catch(() => undefined);
      return local;
    }
    for (const r of this.remotes) {
      const rec = r.lookup(key);
      if (rec) {
        if (rec.layer) this.remoteLayers.set(rec.layer.descriptor.digest, { remote: r, rec });
        return rec;
      }
    }
    return undefined;
  }

  async save(stage: number, rec: CacheRecord): Promise<void> {
    await this.local.put(rec);
    this.remember(stage, rec);
  }

  remember(stage: number, rec: CacheRecord): void {
    const list = this.records.get(stage) ?? [];
    list.push(rec);
    this.records.set(stage, list);
  }

  /** Make sure these layers' blobs are in the store (downloading what a remote hit points at). */
  async ensureLayers(layers: Layer[]): Promise<void> {
    for (const l of layers) {
      if (await this.store.has(l.descriptor.digest)) continue;
      const from = this.remoteLayers.get(l.descriptor.digest);
      if (!from) throw new KilnError("CACHE_LAYER_MISSING", `layer ${l.descriptor.digest} is neither in the store nor in an imported cache`);
      await from.remote.fetchLayer(from.rec);
    }
  }

  statCache(root: string): Promise<StatCache> {
    let p = this.statCaches.get(root);
    if (!p) {
      p = StatCache.load(this.store, root);
      this.statCaches.set(root, p);
    }
    return p;
  }

  /** Persist stat caches and export to every `--cache-to`. */
  async finish(targetStage: number): Promise<void> {
    for (const p of this.statCaches.values()) await (await p).save().catch(() => undefined);
    if (this.exports.length === 0) return;
    const { exportCache } = await import("../cache/remote.js");
    for (const spec of this.exports) {
      const recs = spec.mode === "max" ? [...this.records.values()].flat() : (this.records.get(targetStage) ?? []);
      await exportCache(recs, spec, { store: this.store, registry: this.registry, remotes: this.remotes, onWarning: this.warn });
    }
  }

  async close(): Promise<void> {
    for (const r of this.remotes) await r.close().catch(() => undefined);
  }
}
