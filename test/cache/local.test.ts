// The local cache index: records round-trip, a record whose layer blob is gone is a miss, touch
// moves a record's last-use time, and two processes writing the same keys at once leave only
// whole, valid records (atomic temp + rename).
import { describe, it, expect, afterAll } from "vitest";
import { spawn } from "node:child_process";
import { readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "rolldown";
import { LocalCache, type CacheRecord } from "../../src/cache/local.js";
import { BlobStore } from "../../src/store/blob-store.js";
import type { Digest } from "../../src/image/oci.js";
import { MediaType } from "../../src/image/oci.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());
const temp = (prefix: string): Promise<string> => temps.make(prefix);
const key = (n: number): Digest => `sha256:${n.toString(16).padStart(64, "0")}`;

async function record(store: BlobStore, n: number, content = `layer ${n}`): Promise<CacheRecord> {
  const blob = await store.putBytes(content);
  const diffID: Digest = `sha256:${"d".repeat(64)}`;
  return {
    key: key(n),
    layer: { descriptor: { mediaType: MediaType.ociLayerGzip, digest: blob.digest, size: blob.size }, diffID },
    config: {
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [diffID] },
      history: [{ created_by: `RUN step ${n}`, created: "2026-01-01T00:00:00Z" }],
      config: { Env: [`N=${n}`] },
    },
    createdBy: `RUN step ${n}`,
    emptyLayer: false,
    created: "2026-01-01T00:00:00Z",
  };
}

describe("LocalCache", () => {
  it("puts and gets records under <store>/cache/<keyhex>.json", async () => {
    const store = new BlobStore(await temp("kiln-lc-"));
    const cache = new LocalCache(store);
    expect(await cache.get(key(1))).toBeUndefined();
    const rec = await record(store, 1);
    await cache.put(rec);
    expect(await cache.get(key(1))).toEqual(rec);
    expect(await readdir(join(store.root, "cache"))).toEqual([`${key(1).slice(7)}.json`]);
    const empty: CacheRecord = { key: key(2), config: rec.config, createdBy: "ENV A=1", emptyLayer: true, created: rec.created };
    await cache.put(empty);
    expect(await cache.get(key(2))).toEqual(empty);
  });

  it("misses when the layer blob is not in the store, or the record is corrupt or for another key", async () => {
    const store = new BlobStore(await temp("kiln-lc-"));
    const cache = new LocalCache(store);
    const rec = await record(store, 3);
    await cache.put(rec);
    await rm(store.path(rec.layer!.descriptor.digest));
    expect(await cache.get(key(3))).toBeUndefined();
    await writeFile(cache.path(key(4)), "{truncated");
    expect(await cache.get(key(4))).toBeUndefined();
    const other = await record(store, 5);
    await writeFile(cache.path(key(6)), JSON.stringify(other));
    expect(await cache.get(key(6))).toBeUndefined();
    await expect(cache.put({ ...other, key: "sha256:nothex" as Digest })).rejects.toThrow(/invalid cache/);
  });

  it("touch marks a record as used now", async () => {
    const store = new BlobStore(await temp("kiln-lc-"));
    const cache = new LocalCache(store);
    await cache.put(await record(store, 7));
    const old = new Date(Date.now() - 86_400_000);
    await utimes(cache.path(key(7)), old, old);
    await cache.touch(key(7));
    expect(Date.now() - (await stat(cache.path(key(7)))).mtimeMs).toBeLessThan(60_000);
    await cache.touch(key(8)); // absent: no error
  });

  it("two processes putting the same keys at once leave only valid records", async () => {
    const dir = await temp("kiln-lc-proc-");
    const store = new BlobStore(join(dir, "store"));
    // the real module, bundled for plain node (the child processes do not run through vitest)
    const bundle = join(dir, "local.mjs");
    const entry = join(dir, "entry.ts");
    const src = (p: string): string => fileURLToPath(new URL(`../../src/${p}`, import.meta.url));
    await writeFile(entry, `export { LocalCache } from ${JSON.stringify(src("cache/local.ts"))};\nexport { BlobStore } from ${JSON.stringify(src("store/blob-store.ts"))};\n`);
    await build({ input: entry, platform: "node", output: { file: bundle, format: "esm" }, logLevel: "silent" });
    const base = await record(store, 0);
    const script = join(dir, "writer.mjs");
    await writeFile(
      script,
      `import { LocalCache, BlobStore } from ${JSON.stringify(bundle)};
const [root, who, base] = process.argv.slice(2);
const cache = new LocalCache(new BlobStore(root));
const rec = JSON.parse(base);
const big = "x".repeat(200000);
for (let i = 0; i < 60; i++) {
  for (let k = 1; k <= 5; k++) {
    const key = "sha256:" + k.toString(16).padStart(64, "0");
    await cache.put({ ...rec, key, createdBy: who + " " + i + " " + big });
  }
}
`,
    );
    const runChild = (who: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const c = spawn(process.execPath, [script, store.root, who, JSON.stringify(base)], { stdio: ["ignore", "inherit", "inherit"] });
        c.on("error", reject);
        c.on("exit", (code) => resolve(code ?? 1));
      });
    const codes = await Promise.all([runChild("A"), runChild("B")]);
    expect(codes).toEqual([0, 0]);
    const cache = new LocalCache(store);
    const names = await readdir(join(store.root, "cache"));
    expect(names.sort()).toEqual([1, 2, 3, 4, 5].map((k) => `${key(k).slice(7)}.json`));
    for (let k = 1; k <= 5; k++) {
      const got = await cache.get(key(k));
      expect(got).toBeDefined();
      expect(got!.createdBy).toMatch(/^(A|B) 59 x{200000}$/);
      const raw = JSON.parse(await readFile(cache.path(key(k)), "utf8")) as CacheRecord;
      expect(raw.key).toBe(key(k));
    }
  });
});
