// `kiln du` / `kiln prune`: usage numbers, LRU record removal down to --keep-storage, --filter
// until=, the grace period for fresh unreferenced blobs, stale temp files, and the rule that a
// blob a remaining record names is never removed. Plus the size and duration parsers.
import { describe, it, expect, afterAll } from "vitest";
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalCache, type CacheRecord } from "../../src/cache/local.js";
import { UsageError } from "../../src/errors.js";
import { MediaType, type Digest } from "../../src/image/oci.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { StatCache, hashSources } from "../../src/cache/sources.js";
import { DirContext } from "../../src/context/build-context.js";
import { selectSources } from "../../src/context/select.js";
import { diskUsage, parseDuration, parseSize, prune } from "../../src/cache/prune.js";
import { layerScanName } from "../../src/attest/scan-cache.js";
import { imageSbomPrefix } from "../../src/attest/sbom-cache.js";

const temps: string[] = [];
afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});
async function newStore(): Promise<BlobStore> {
  const d = await mkdtemp(join(tmpdir(), "kiln-prune-"));
  temps.push(d);
  return new BlobStore(d);
}
const key = (n: number): Digest => `sha256:${n.toString(16).padStart(64, "0")}`;
const HOUR = 3_600_000;
const ago = (ms: number): Date => new Date(Date.now() - ms);

/** A record whose layer is a blob of `size` bytes, last used `usedAgo` ms ago. */
async function addRecord(store: BlobStore, n: number, size: number, usedAgo: number, sharedDigest?: { digest: Digest; size: number }): Promise<CacheRecord> {
  const blob = sharedDigest ?? (await store.putBytes(Buffer.alloc(size, n)));
  const rec: CacheRecord = {
    key: key(n),
    layer: { descriptor: { mediaType: MediaType.ociLayerGzip, digest: blob.digest, size: blob.size }, diffID: key(1000 + n) },
    config: { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [key(1000 + n)] } },
    createdBy: `RUN ${n}`,
    emptyLayer: false,
    created: "2026-01-01T00:00:00Z",
  };
  const cache = new LocalCache(store);
  await cache.put(rec);
  await utimes(cache.path(rec.key), ago(usedAgo), ago(usedAgo));
  await utimes(store.path(blob.digest), ago(usedAgo), ago(usedAgo));
  return rec;
}

async function orphan(store: BlobStore, fill: number, size: number, age: number): Promise<Digest> {
  const b = await store.putBytes(Buffer.alloc(size, fill));
  await utimes(store.path(b.digest), ago(age), ago(age));
  return b.digest;
}

describe("diskUsage and prune", () => {
  it("reports usage and frees everything unreferenced or cached, keeping fresh orphans", async () => {
    const store = await newStore();
    await addRecord(store, 1, 1000, 3 * HOUR);
    await addRecord(store, 2, 2000, 2 * HOUR);
    const oldOrphan = await orphan(store, 0xaa, 500, 2 * HOUR);
    const freshOrphan = await orphan(store, 0xbb, 700, 0);
    expect(await diskUsage(store)).toEqual({ blobs: 4, bytes: 4200, cacheRecords: 2, reclaimable: 3500, extractedLayers: 0, extractedBytes: 0 });
    expect(await prune(store)).toEqual({ removed: 2 + 3, freed: 3500 });
    expect(await diskUsage(store)).toEqual({ blobs: 1, bytes: 700, cacheRecords: 0, reclaimable: 0, extractedLayers: 0, extractedBytes: 0 });
    expect(await store.has(freshOrphan)).toBe(true);
    expect(await store.has(oldOrphan)).toBe(false);
    // with no grace period even that one goes
    expect(await prune(store, { graceMs: 0 })).toEqual({ removed: 1, freed: 700 });
  });

  it("removes a pruned blob's SBOM scan entry, and the image SBOMs it is the top layer of, with it; keeps those of blobs that stay", async () => {
    const store = await newStore();
    const gone = await orphan(store, 0xaa, 500, 2 * HOUR);
    const kept = await orphan(store, 0xbb, 700, 0);
    const entries = (d: Digest): string[] => [layerScanName(d.slice(7)), `${imageSbomPrefix(d.slice(7))}${"cd".repeat(32)}.txt`];
    await mkdir(join(store.root, "sbom-scan"), { recursive: true });
    for (const d of [gone, kept]) for (const name of entries(d)) await writeFile(join(store.root, "sbom-scan", name), "{}");
    await prune(store);
    expect((await readdir(join(store.root, "sbom-scan"))).sort()).toEqual(entries(kept).sort());
  });

  it("--keep-storage removes least recently used records first and stops when the store fits", async () => {
    const store = await newStore();
    const r1 = await addRecord(store, 1, 1000, 5 * HOUR);
    const r2 = await addRecord(store, 2, 1000, 4 * HOUR);
    const r3 = await addRecord(store, 3, 1000, 3 * HOUR);
    const r4 = await addRecord(store, 4, 1000, 1 * HOUR);
    const orphanBlob = await orphan(store, 0xcc, 1000, 6 * HOUR);
    await new LocalCache(store).touch(r1.key); // r1 is now the most recently used
    const res = await prune(store, { keepStorage: 2500 });
    // the orphan (1000) goes first, then r2 (oldest use), then r3: 5000 -> 2000
    expect(res).toEqual({ removed: 3 + 2, freed: 3000 });
    const cache = new LocalCache(store);
    expect(await store.has(orphanBlob)).toBe(false);
    expect(await cache.get(r2.key)).toBeUndefined();
    expect(await cache.get(r3.key)).toBeUndefined();
    expect(await cache.get(r1.key)).toEqual(r1);
    expect(await cache.get(r4.key)).toEqual(r4);
    // already small enough: nothing happens
    expect(await prune(store, { keepStorage: 2000 })).toEqual({ removed: 0, freed: 0 });
  });

  it("never removes a blob that a remaining record references", async () => {
    const store = await newStore();
    const shared = await store.putBytes(Buffer.alloc(4000, 7));
    const old = await addRecord(store, 1, 0, 10 * HOUR, shared);
    const recent = await addRecord(store, 2, 0, 0, shared);
    const res = await prune(store, { keepStorage: 0, until: HOUR });
    // only the old record qualifies; its blob is still named by the recent one
    expect(res).toEqual({ removed: 1, freed: 0 });
    const cache = new LocalCache(store);
    expect(await cache.get(old.key)).toBeUndefined();
    expect(await cache.get(recent.key)).toEqual(recent);
    expect(await store.has(shared.digest)).toBe(true);
  });

  it("--filter until= removes only records (and orphans) unused for that long", async () => {
    const store = await newStore();
    const r1 = await addRecord(store, 1, 100, 30 * HOUR);
    const r2 = await addRecord(store, 2, 100, 2 * HOUR);
    const o1 = await orphan(store, 1, 50, 30 * HOUR);
    const o2 = await orphan(store, 2, 50, 2 * HOUR);
    const res = await prune(store, { until: parseDuration("24h") });
    expect(res).toEqual({ removed: 3, freed: 150 }); // r1 record + its blob (100) + o1 (50)
    const cache = new LocalCache(store);
    expect(await cache.get(r1.key)).toBeUndefined();
    expect(await cache.get(r2.key)).toEqual(r2);
    expect(await store.has(o1)).toBe(false);
    expect(await store.has(o2)).toBe(true);
  });

  it("clears temp files older than an hour and leaves fresh ones and directories alone", async () => {
    const store = await newStore();
    await mkdir(store.tmpDir, { recursive: true });
    await mkdir(join(store.root, "cache"), { recursive: true });
    const stale = join(store.tmpDir, "123-stale");
    const fresh = join(store.tmpDir, "123-fresh");
    const staleRec = join(store.root, "cache", `.${"a".repeat(64)}.1-x.tmp`);
    const liveDir = join(store.tmpDir, "build-123");
    await writeFile(stale, "x");
    await writeFile(fresh, "x");
    await writeFile(staleRec, "x");
    await mkdir(liveDir);
    await utimes(stale, ago(2 * HOUR), ago(2 * HOUR));
    await utimes(staleRec, ago(2 * HOUR), ago(2 * HOUR));
    await utimes(liveDir, ago(2 * HOUR), ago(2 * HOUR));
    await prune(store, { keepStorage: Number.MAX_SAFE_INTEGER });
    expect((await readdir(store.tmpDir)).sort()).toEqual(["123-fresh", "build-123"]);
    expect(await readdir(join(store.root, "cache"))).toEqual([]);
  });

  it("drops the stat caches of build contexts that no longer exist", async () => {
    const store = await newStore();
    const ctxDir = await mkdtemp(join(tmpdir(), "kiln-prune-ctx-"));
    temps.push(ctxDir);
    await writeFile(join(ctxDir, "f"), "content");
    await new Promise((r) => setTimeout(r, 120));
    const goneDir = await mkdtemp(join(tmpdir(), "kiln-prune-gone-"));
    await writeFile(join(goneDir, "g"), "content");
    await new Promise((r) => setTimeout(r, 120));
    for (const root of [ctxDir, goneDir]) {
      const ctx = new DirContext(root);
      const cache = await StatCache.load(store, root);
      await hashSources(await selectSources(ctx, ["."]), { statCache: cache });
      await cache.save();
    }
    expect(await readdir(join(store.root, "statcache"))).toHaveLength(2);
    await rm(goneDir, { recursive: true, force: true });
    await prune(store, { keepStorage: Number.MAX_SAFE_INTEGER });
    const left = await readdir(join(store.root, "statcache"));
    expect(left).toHaveLength(1);
    expect((await StatCache.load(store, ctxDir)).path).toBe(join(store.root, "statcache", left[0]!));
  });

  it("works on an empty or missing store", async () => {
    const store = await newStore();
    expect(await diskUsage(store)).toEqual({ blobs: 0, bytes: 0, cacheRecords: 0, reclaimable: 0, extractedLayers: 0, extractedBytes: 0 });
    expect(await prune(store)).toEqual({ removed: 0, freed: 0 });
    const gone = new BlobStore(join(store.root, "does-not-exist"));
    expect(await prune(gone, { keepStorage: 0 })).toEqual({ removed: 0, freed: 0 });
  });
});

describe("parseSize and parseDuration", () => {
  it("parses sizes with binary units, as docker --keep-storage", () => {
    expect(parseSize("4096")).toBe(4096);
    expect(parseSize("10GB")).toBe(10 * 1024 ** 3);
    expect(parseSize("512MiB")).toBe(512 * 1024 ** 2);
    expect(parseSize("1g")).toBe(1024 ** 3);
    expect(parseSize("1.5k")).toBe(1536);
    expect(parseSize(" 2 TB ")).toBe(2 * 1024 ** 4);
    expect(parseSize("100b")).toBe(100);
    for (const bad of ["", "ten", "10XB", "-1", "1i", "10 G B"]) expect(() => parseSize(bad), bad).toThrow(UsageError);
  });

  it("parses Go-style durations plus days and weeks", () => {
    expect(parseDuration("24h")).toBe(24 * HOUR);
    expect(parseDuration("7d")).toBe(7 * 24 * HOUR);
    expect(parseDuration("90m")).toBe(90 * 60_000);
    expect(parseDuration("1h30m")).toBe(90 * 60_000);
    expect(parseDuration("1.5h")).toBe(90 * 60_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("2w")).toBe(14 * 24 * HOUR);
    for (const bad of ["", "24", "h", "1y", "1h 30m", "-1h"]) expect(() => parseDuration(bad), bad).toThrow(UsageError);
  });
});

describe("extracted layers (overlay snapshotter)", () => {
  it("du counts them; prune removes those idle past the grace period that no live build stacks", async () => {
    const { createRootFS } = await import("../../src/snapshot/rootfs.js");
    const { extractedLayer, listExtractedLayers } = await import("../../src/snapshot/layer-dirs.js");
    const { makeTar } = await import("../snapshot/helpers.js");
    const { createHash } = await import("node:crypto");
    const { Readable } = await import("node:stream");
    const store = await newStore();
    const mk = (name: string) => {
      const tar = makeTar([{ name, content: name.repeat(100) }]);
      return { diffID: `sha256:${createHash("sha256").update(tar).digest("hex")}` as Digest, mediaType: "application/vnd.oci.image.layer.v1.tar", open: () => Readable.from([tar]) };
    };
    const [used, idle, fresh] = [mk("used"), mk("idle"), mk("fresh")];
    for (const l of [idle, fresh]) await extractedLayer(store.root, l);
    const rootfs = await createRootFS(store.root, { snapshotter: "overlay" });
    try {
      await rootfs.applyLayers([used]);
      const dirs = Object.fromEntries((await listExtractedLayers(store.root)).map((l) => [l.diffID, l.dir]));
      expect(Object.keys(dirs).length).toBe(3);
      await utimes(dirs[used.diffID]!, ago(2 * HOUR), ago(2 * HOUR)); // old, but stacked by a live build
      await utimes(dirs[idle.diffID]!, ago(2 * HOUR), ago(2 * HOUR));
      const du = await diskUsage(store);
      expect(du.extractedLayers).toBe(3);
      expect(du.extractedBytes).toBeGreaterThanOrEqual(3 * 400);
      const r = await prune(store);
      expect(r.removed).toBe(1);
      expect(r.freed).toBeGreaterThanOrEqual(400);
      expect((await listExtractedLayers(store.root)).map((l) => l.diffID).sort()).toEqual([used.diffID, fresh.diffID].sort());
      expect(await readdir(join(store.root, "rootfs"))).toHaveLength(1); // only the live build's work dir
    } finally {
      await rootfs.dispose();
    }
    // with the build gone and --filter until=1h, the old one goes too; the fresh one stays
    await prune(store, { until: HOUR });
    expect((await listExtractedLayers(store.root)).map((l) => l.diffID)).toEqual([fresh.diffID]);
  });
});
