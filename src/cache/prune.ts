// `kiln du` and `kiln prune` as library functions: how much the store holds, and freeing it.
// Prune removes cache records (least recently used first; with `until`, only those unused for
// that long), then the blobs no record references any more — never a blob a remaining record
// names. With `keepStorage` it stops once the blobs fit. Unreferenced blobs younger than a grace
// period (base images a running build just pulled) are kept; stale temp files, the stat caches of
// build contexts that no longer exist and kept git states that no longer match (vcs/) are
// cleared. Layers extracted for the overlay snapshotter go when unused for the grace period (or
// `until`) and no live build stacks them; git checkouts (src/context/git.ts) go when unused as
// long.
// Blobs a local image name reaches (its manifest or index, their configs and layers) are kept
// whatever their age: `kiln rmi` removes the name, the next prune its blobs.
import { lstat, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { isDigest, type Digest } from "../store/digest.js";
import type { BlobStore } from "../store/blob-store.js";
import { listExtractedLayers, removeExtractedLayers, treeBytes } from "../snapshot/layer-dirs.js";
import { listNames } from "../store/names.js";
import { pruneGitCheckouts } from "../context/git.js";
import { staleVcsEntries } from "../context/vcs-cache.js";
import { layerScanName } from "../attest/scan-cache.js";
import { imageSbomPrefix } from "../attest/sbom-cache.js";

export { parseDuration, parseSize } from "../units.js";

/** Temp files older than this are left-overs of dead processes. */
const STALE_TMP_MS = 60 * 60 * 1000;
/** Default age below which an unreferenced blob is kept (a build may be about to use it). */
export const DEFAULT_PRUNE_GRACE_MS = 5 * 60 * 1000;

export interface DiskUsage {
  blobs: number;
  bytes: number;
  cacheRecords: number;
  /** Bytes `prune(store)` (no limits) would free from blobs. */
  reclaimable: number;
  /** Layers extracted for the overlay snapshotter, and their bytes. */
  extractedLayers: number;
  extractedBytes: number;
}

export interface PruneOptions {
  /** Stop once the blobs take at most this many bytes. */
  keepStorage?: number;
  /** Only remove records (and unreferenced blobs) unused for at least this many ms. */
  until?: number;
  /** Unreferenced blobs younger than this are kept (default 5 minutes). */
  graceMs?: number;
  /** "now" for age computations (tests). */
  now?: number;
}

export interface PruneResult {
  removed: number;
  freed: number;
}

interface BlobFile {
  digest: Digest;
  size: number;
  mtime: number;
}

interface RecordFile {
  path: string;
  lastUsed: number;
  layer?: Digest;
}

async function listBlobs(store: BlobStore): Promise<Map<string, BlobFile>> {
  const out = new Map<string, BlobFile>();
  let names: string[];
  try {
    names = await readdir(store.blobDir);
  } catch {
    return out;
  }
  for (const name of names) {
    const digest = `sha256:${name}`;
    if (!isDigest(digest)) continue;
    const st = await lstat(join(store.blobDir, name)).catch(() => undefined);
    if (!st || !st.isFile()) continue;
    out.set(digest, { digest, size: st.size, mtime: st.mtimeMs });
  }
  return out;
}

async function listRecords(store: BlobStore): Promise<RecordFile[]> {
  const dir = join(store.root, "cache");
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: RecordFile[] = [];
  for (const name of names) {
    if (!/^[0-9a-f]{64}\.json$/.test(name)) continue;
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st) continue;
    const rec: RecordFile = { path, lastUsed: st.mtimeMs };
    try {
      const doc = JSON.parse(await readFile(path, "utf8")) as { layer?: { descriptor?: { digest?: unknown } } };
      const d = doc?.layer?.descriptor?.digest;
      if (typeof d === "string" && isDigest(d)) rec.layer = d;
    } catch {
      // unreadable record: it references nothing and is removed first
      rec.lastUsed = 0;
    }
    out.push(rec);
  }
  return out;
}

interface Plan {
  records: RecordFile[];
  blobs: BlobFile[];
  freed: number;
}

/** Decide what prune removes (no file system changes). */
async function planPrune(store: BlobStore, options: PruneOptions): Promise<{ plan: Plan; total: number }> {
  const now = options.now ?? Date.now();
  const grace = options.graceMs ?? DEFAULT_PRUNE_GRACE_MS;
  const blobs = await listBlobs(store);
  const records = await listRecords(store);
  let total = 0;
  for (const b of blobs.values()) total += b.size;

  const refs = new Map<string, number>();
  for (const r of records) if (r.layer) refs.set(r.layer, (refs.get(r.layer) ?? 0) + 1);
  const named = await namedBlobs(store);

  const oldEnough = (t: number, minAge: number): boolean => now - t >= minAge;
  const candidates = records
    .filter((r) => options.until === undefined || oldEnough(r.lastUsed, options.until))
    .sort((a, b) => a.lastUsed - b.lastUsed);
  const blobMinAge = Math.max(grace, options.until ?? 0);

  const plan: Plan = { records: [], blobs: [], freed: 0 };
  let remaining = total;
  const fits = (): boolean => options.keepStorage !== undefined && remaining <= options.keepStorage;
  const dropBlob = (b: BlobFile): void => {
    plan.blobs.push(b);
    plan.freed += b.size;
    remaining -= b.size;
    blobs.delete(b.digest);
  };

  // 1. Blobs no record references (oldest first), past the grace period.
  const unreferenced = [...blobs.values()].filter((b) => !refs.has(b.digest) && !named.has(b.digest) && oldEnough(b.mtime, blobMinAge)).sort((a, b) => a.mtime - b.mtime);
  for (const b of unreferenced) {
    if (fits()) break;
    dropBlob(b);
  }
  // 2. Records, least recently used first; a blob goes when its last record goes.
  for (const r of candidates) {
    if (fits()) break;
    plan.records.push(r);
    if (!r.layer) continue;
    const n = (refs.get(r.layer) ?? 1) - 1;
    refs.set(r.layer, n);
    const b = blobs.get(r.layer);
    if (n === 0 && b && !named.has(b.digest)) dropBlob(b);
  }
  return { plan, total };
}

/** Every blob a stored name reaches: its target, an index's manifests, each manifest's config and layers. */
async function namedBlobs(store: BlobStore): Promise<Set<string>> {
  const out = new Set<string>();
  const visit = async (digest: string, depth: number): Promise<void> => {
    if (out.has(digest) || !isDigest(digest)) return;
    out.add(digest);
    if (depth > 2) return;
    let doc: { manifests?: Array<{ digest?: unknown }>; config?: { digest?: unknown }; layers?: Array<{ digest?: unknown }> };
    try {
      doc = await store.readJSON(digest);
    } catch {
      return; // missing or not JSON: nothing below it to keep
    }
    if (!doc || typeof doc !== "object") return;
    for (const d of doc.manifests ?? []) if (typeof d?.digest === "string") await visit(d.digest, depth + 1);
    if (typeof doc.config?.digest === "string" && isDigest(doc.config.digest)) out.add(doc.config.digest);
    for (const l of doc.layers ?? []) if (typeof l?.digest === "string" && isDigest(l.digest)) out.add(l.digest);
  };
  for (const n of await listNames(store.root)) await visit(n.target.digest, 0);
  return out;
}

async function clearStaleTemp(store: BlobStore, now: number): Promise<void> {
  const dirs: Array<{ dir: string; match: (n: string) => boolean }> = [
    { dir: store.tmpDir, match: () => true },
    { dir: join(store.root, "cache"), match: (n) => n.endsWith(".tmp") },
    { dir: join(store.root, "statcache"), match: (n) => n.endsWith(".tmp") },
    { dir: join(store.root, "sbom-scan"), match: (n) => n.includes(".tmp-") },
    { dir: join(store.root, "vcs"), match: (n) => n.includes(".tmp-") },
  ];
  for (const { dir, match } of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!match(name)) continue;
      const p = join(dir, name);
      const st = await lstat(p).catch(() => undefined);
      // only plain files: a build's temp directories (RUN roots, spools) belong to live builds
      if (st && st.isFile() && now - st.mtimeMs >= STALE_TMP_MS) await rm(p, { force: true });
    }
  }
}

/** Stat caches (see src/cache/sources.ts) of build contexts that no longer exist. */
async function clearOrphanStatCaches(store: BlobStore): Promise<void> {
  const dir = join(store.root, "statcache");
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.endsWith(".json")) continue;
    const p = join(dir, name);
    let root: unknown;
    try {
      root = (JSON.parse(await readFile(p, "utf8")) as { root?: unknown }).root;
    } catch {
      root = undefined;
    }
    const exists = typeof root === "string" && (await stat(root).then(() => true, () => false));
    if (!exists) await rm(p, { force: true });
  }
}

export async function diskUsage(store: BlobStore): Promise<DiskUsage> {
  const blobs = await listBlobs(store);
  const records = await listRecords(store);
  const { plan, total } = await planPrune(store, {});
  const layers = await listExtractedLayers(store.root);
  let layerBytes = 0;
  for (const l of layers) layerBytes += await treeBytes(l.dir);
  return { blobs: blobs.size, bytes: total, cacheRecords: records.length, reclaimable: plan.freed, extractedLayers: layers.length, extractedBytes: layerBytes };
}

export async function prune(store: BlobStore, options: PruneOptions = {}): Promise<PruneResult> {
  const now = options.now ?? Date.now();
  await clearStaleTemp(store, now);
  await clearOrphanStatCaches(store);
  // kept git states (context/vcs-cache.ts) that no longer match their checkout's files
  for (const f of await staleVcsEntries(store.root)) await rm(f, { force: true });
  const { plan } = await planPrune(store, { ...options, now });
  // records first, so no remaining record ever names a removed blob
  for (const r of plan.records) await rm(r.path, { force: true });
  let freed = 0;
  const sbomEntries = plan.blobs.length > 0 ? await readdir(join(store.root, "sbom-scan")).catch(() => [] as string[]) : [];
  for (const b of plan.blobs) {
    const hex = b.digest.slice("sha256:".length);
    await rm(store.path(b.digest), { force: true });
    await rm(join(store.root, "origins", "sha256", hex), { force: true });
    await rm(join(store.root, "sbom-scan", layerScanName(hex)), { force: true }); // the layer's SBOM scan (src/attest/scan-cache.ts)
    for (const name of sbomEntries.filter((n) => n.startsWith(imageSbomPrefix(hex)))) await rm(join(store.root, "sbom-scan", name), { force: true }); // images' SBOMs with this top layer (sbom-cache.ts)
    freed += b.size;
  }
  // extracted layers are derived from blobs: any unused for the grace period (or `until`) go
  const idle = Math.max(options.until ?? 0, options.graceMs ?? DEFAULT_PRUNE_GRACE_MS);
  const layers = await removeExtractedLayers(store.root, now - idle);
  // git checkouts can be fetched again: those unused as long go too
  const git = await pruneGitCheckouts(store.root, now - idle);
  return { removed: plan.records.length + plan.blobs.length + layers.removed + git.removed, freed: freed + layers.freed };
}
