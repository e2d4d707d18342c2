// Sharing the build cache: spec parsing, export/import through the real docker-registry
// (distribution) and through an OCI layout directory; a second export uploads no blob, import
// downloads the manifest and config only, and each layer only when asked for.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalCache, type CacheRecord } from "../../src/cache/local.js";
import { CACHE_CONFIG_MEDIA_TYPE, exportCache, importCache, parseCacheSpec } from "../../src/cache/remote.js";
import { KilnError, UsageError } from "../../src/errors.js";
import { OciLayout } from "../../src/image/layout.js";
import { MediaType, type Digest, type ImageConfig, type Manifest } from "../../src/image/oci.js";
import { writeLayer } from "../../src/layer/write-layer.js";
import { pushLayout } from "../../src/registry/push.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { Readable } from "node:stream";
import { makeLayout, run, startRegistry, type RunningRegistry } from "../registry/harness.js";

const temps: string[] = [];
async function temp(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
const key = (n: number): Digest => `sha256:${n.toString(16).padStart(64, "0")}`;

async function layerRecord(store: BlobStore, n: number, parent: ImageConfig | undefined, files: Record<string, string>): Promise<CacheRecord> {
  const layer = await writeLayer(
    Object.entries(files).map(([path, text]) => {
      const buf = Buffer.from(text);
      return { path, type: "file" as const, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: buf.length, open: () => Readable.from([buf]) };
    }),
    store,
  );
  const diffs = [...(parent?.rootfs.diff_ids ?? []), layer.diffID];
  return {
    key: key(n),
    layer: { descriptor: layer.descriptor, diffID: layer.diffID },
    config: { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: diffs }, history: diffs.map((_, i) => ({ created_by: `step ${i}` })) },
    createdBy: `RUN step ${n}`,
    emptyLayer: false,
    created: "2026-01-01T00:00:00Z",
  };
}

/** Four records: two layers, one layer shared by two keys (deduplicated), one metadata step. */
async function makeRecords(store: BlobStore): Promise<CacheRecord[]> {
  const r1 = await layerRecord(store, 1, undefined, { "a.txt": "alpha ".repeat(1000) });
  const r2 = await layerRecord(store, 2, r1.config, { "b.txt": "bravo ".repeat(1000) });
  const r3: CacheRecord = { ...r2, key: key(3), createdBy: "COPY b.txt /" };
  const r4: CacheRecord = { key: key(4), config: { ...r2.config, config: { Env: ["X=1"] } }, createdBy: "ENV X=1", emptyLayer: true, created: r2.created };
  return [r1, r2, r3, r4];
}

function uploads(reg: RunningRegistry, repo: string): number {
  return reg.access().filter((a) => a.method === "POST" && a.path.startsWith(`/v2/${repo}/blobs/uploads/`)).length;
}
function blobGets(reg: RunningRegistry, digest?: string): number {
  return reg.access().filter((a) => a.method === "GET" && /\/blobs\/sha256:/.test(a.path) && (digest === undefined || a.path.endsWith(digest))).length;
}

describe("parseCacheSpec", () => {
  it("parses registry and local specs the way buildx writes them", () => {
    expect(parseCacheSpec("type=registry,ref=localhost:5000/app:cache,mode=max", "to")).toEqual({ type: "registry", ref: "localhost:5000/app:cache", mode: "max", ignoreError: false });
    expect(parseCacheSpec("ghcr.io/o/app:buildcache", "from")).toEqual({ type: "registry", ref: "ghcr.io/o/app:buildcache", mode: "min", ignoreError: false });
    expect(parseCacheSpec("ref=r.example/a:c,image-manifest=true,oci-mediatypes=true,ignore-error=true", "to")).toEqual({ type: "registry", ref: "r.example/a:c", mode: "min", ignoreError: true });
    expect(parseCacheSpec("type=local,dest=/tmp/c", "to")).toEqual({ type: "local", dir: "/tmp/c", tag: "cache", mode: "min", ignoreError: false });
    expect(parseCacheSpec("type=local,src=/tmp/c,tag=v2", "from")).toEqual({ type: "local", dir: "/tmp/c", tag: "v2", mode: "min", ignoreError: false });
  });

  it("rejects bad specs with one-line usage errors", () => {
    const bad: Array<[string, "to" | "from", RegExp]> = [
      ["", "to", /empty/],
      ["type=s3,bucket=x", "to", /--cache-to type=s3 is not supported: .*type=registry,ref=REF.*type=local,dest=DIR/],
      ["type=nfs,path=x", "to", /unsupported cache type "nfs"/],
      ["type=inline", "to", /unsupported cache type "inline"/],
      ["type=registry", "to", /needs ref=/],
      ["type=registry,ref=Bad/Name", "to", /lowercase/],
      ["type=registry,ref=a/b,mode=all", "to", /mode must be min or max/],
      ["type=local,src=/x", "to", /needs dest=DIR/],
      ["type=local,dest=/x", "from", /needs src=DIR/],
      ["type=registry,ref=a/b,compression=zstd", "to", /unknown option "compression"/],
      ["type=registry,ref=a/b,image-manifest=false", "to", /not supported/],
      ["type=registry,ref=a/b,ref=c/d", "to", /given twice/],
      ["type=registry,ref=a/b,junk", "to", /expected key=value/],
    ];
    for (const [s, dir, re] of bad) {
      let err: unknown;
      try {
        parseCacheSpec(s, dir);
      } catch (e) {
        err = e;
      }
      expect(err, s).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).not.toContain("\n");
    }
  });
});

describe("registry cache", () => {
  let reg: RunningRegistry;
  let dockerConfig: string;
  beforeAll(async () => {
    reg = await startRegistry();
    dockerConfig = await temp("kiln-cache-dc-");
  });
  afterAll(async () => {
    await reg?.stop();
    await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
  });

  it("round-trips through docker-registry as a plain OCI manifest; re-export uploads nothing; layers are fetched lazily", async () => {
    const storeA = new BlobStore(await temp("kiln-cache-a-"));
    const records = await makeRecords(storeA);
    const ref = `${reg.host}/cache/app:buildcache`;
    const registry = { dockerConfig };

    await exportCache(records, parseCacheSpec(`type=registry,ref=${ref},mode=max`, "to"), { store: storeA, registry });
    expect(uploads(reg, "cache/app")).toBe(3); // two layers + the cache config
    const { stdout } = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`]);
    const manifest = JSON.parse(stdout) as Manifest;
    expect(manifest.mediaType).toBe(MediaType.ociManifest);
    expect(manifest.artifactType).toBe(CACHE_CONFIG_MEDIA_TYPE);
    expect(manifest.config.mediaType).toBe(CACHE_CONFIG_MEDIA_TYPE);
    expect(manifest.layers.map((l) => l.digest).sort()).toEqual([records[0]!.layer!.descriptor.digest, records[1]!.layer!.descriptor.digest].sort());

    await exportCache(records, parseCacheSpec(`type=registry,ref=${ref},mode=max`, "to"), { store: storeA, registry });
    expect(uploads(reg, "cache/app")).toBe(3); // nothing new uploaded

    const storeB = new BlobStore(await temp("kiln-cache-b-"));
    const getsBefore = blobGets(reg);
    const remote = await importCache(parseCacheSpec(ref, "from"), { store: storeB, registry });
    try {
      expect(remote.size).toBe(4);
      expect(blobGets(reg) - getsBefore).toBe(1); // the config only
      for (const r of records) expect(remote.lookup(r.key)).toEqual(r);
      expect(remote.lookup(key(99))).toBeUndefined();
      const [r1, r2] = records as [CacheRecord, CacheRecord];
      expect(await storeB.has(r1.layer!.descriptor.digest)).toBe(false);
      await remote.fetchLayer(remote.lookup(r1.key)!);
      expect(blobGets(reg, r1.layer!.descriptor.digest)).toBe(1);
      expect(blobGets(reg, r2.layer!.descriptor.digest)).toBe(0);
      expect(await storeB.has(r1.layer!.descriptor.digest)).toBe(true);
      expect(await storeB.has(r2.layer!.descriptor.digest)).toBe(false);
      await remote.fetchLayer(r1); // already there: no request
      expect(blobGets(reg, r1.layer!.descriptor.digest)).toBe(1);
      await remote.fetchLayer(records[3]!); // no layer: nothing to do
      // a fetched record is then a local hit
      const local = new LocalCache(storeB);
      await local.put(r1);
      expect(await local.get(r1.key)).toEqual(r1);
      await expect(remote.fetchLayer({ ...r1, key: key(42) })).rejects.toThrow(KilnError);

      // Re-export from a store that never downloaded r2's layer, to another repository of the
      // same registry: the layer is mounted across repositories, never downloaded.
      const other = `${reg.host}/cache/other:c`;
      await exportCache(records, parseCacheSpec(`type=registry,ref=${other}`, "to"), { store: storeB, registry, remotes: [remote] });
      expect(blobGets(reg, r2.layer!.descriptor.digest)).toBe(0);
      expect(reg.access().some((a) => a.method === "POST" && a.path.startsWith("/v2/cache/other/blobs/uploads/?") && a.path.includes("mount="))).toBe(true);
      const storeC = new BlobStore(await temp("kiln-cache-c-"));
      const again = await importCache(parseCacheSpec(`type=registry,ref=${other}`, "from"), { store: storeC, registry });
      expect(again.size).toBe(4);
      for (const r of records) await again.fetchLayer(again.lookup(r.key)!);
      expect(await storeC.has(r2.layer!.descriptor.digest)).toBe(true);
      await again.close();

      // Without a remote to supply it, a record whose layer the store lacks is left out.
      const partial = `${reg.host}/cache/partial:c`;
      await exportCache(records, parseCacheSpec(`type=registry,ref=${partial}`, "to"), { store: storeB, registry });
      const p = await importCache(parseCacheSpec(partial, "from"), { store: storeC, registry });
      expect(p.lookup(r1.key)).toEqual(r1);
      expect(p.lookup(r2.key)).toBeUndefined();
      expect(p.lookup(records[3]!.key)).toEqual(records[3]);
      await p.close();
    } finally {
      await remote.close();
    }
  });

  it("re-exporting to another registry downloads a lazily imported layer only when uploading it", async () => {
    const registry = { dockerConfig };
    const storeA = new BlobStore(await temp("kiln-cache-x-"));
    const records = await makeRecords(storeA);
    const src = `${reg.host}/cache/cross:c`;
    await exportCache(records, parseCacheSpec(`type=registry,ref=${src}`, "to"), { store: storeA, registry });
    const reg2 = await startRegistry();
    try {
      const storeB = new BlobStore(await temp("kiln-cache-y-"));
      const remote = await importCache(parseCacheSpec(src, "from"), { store: storeB, registry });
      const r2 = records[1]!;
      const before = blobGets(reg, r2.layer!.descriptor.digest); // earlier tests pulled it too
      const fromOther = reg.access().length;
      const dest = `${reg2.host}/mirror/cache:c`;
      await exportCache(records, parseCacheSpec(`type=registry,ref=${dest}`, "to"), { store: storeB, registry, remotes: [remote] });
      expect(blobGets(reg, r2.layer!.descriptor.digest) - before).toBe(1); // fetched once, to upload it
      expect(reg.access().slice(fromOther).filter((a) => a.method === "GET" && a.path.includes("/blobs/")).length).toBe(2); // both layers
      expect(uploads(reg2, "mirror/cache")).toBe(3);
      await remote.close();
      const storeC = new BlobStore(await temp("kiln-cache-z-"));
      const back = await importCache(parseCacheSpec(dest, "from"), { store: storeC, registry });
      for (const r of records) {
        expect(back.lookup(r.key)).toEqual(r);
        await back.fetchLayer(r);
      }
      expect(await storeC.has(r2.layer!.descriptor.digest)).toBe(true);
      await back.close();
    } finally {
      await reg2.stop();
    }
  });

  it("a cache of metadata steps only (a manifest without layers) is accepted and read back", async () => {
    const store = new BlobStore(await temp("kiln-cache-meta-"));
    const records = await makeRecords(store);
    const ref = `${reg.host}/cache/meta:c`;
    await exportCache([records[3]!], parseCacheSpec(`type=registry,ref=${ref}`, "to"), { store, registry: { dockerConfig } });
    const back = await importCache(parseCacheSpec(ref, "from"), { store: new BlobStore(await temp("kiln-cache-meta2-")), registry: { dockerConfig } });
    expect(back.size).toBe(1);
    expect(back.lookup(records[3]!.key)).toEqual(records[3]);
    await back.close();
  });

  it("a missing cache ref is an empty cache with a warning; an ordinary image is refused", async () => {
    const store = new BlobStore(await temp("kiln-cache-m-"));
    const registry = { dockerConfig };
    const missing = await importCache(parseCacheSpec(`${reg.host}/cache/none:latest`, "from"), { store, registry });
    expect(missing.size).toBe(0);
    expect(missing.warning).toMatch(/not found/);
    await missing.close();

    const layout = await makeLayout({ tag: "v1" });
    temps.push(layout.dir);
    await pushLayout(layout.dir, "v1", [`${reg.host}/plain/image:v1`], { dockerConfig });
    await expect(importCache(parseCacheSpec(`${reg.host}/plain/image:v1`, "from"), { store, registry })).rejects.toThrow(/not a kiln build cache/);
    // an export that fails (here: the registry is gone from this port) with ignore-error=true only warns
    const warnings: string[] = [];
    await exportCache([], parseCacheSpec("type=registry,ref=127.0.0.1:1/x/y:c,ignore-error=true", "to"), { store, registry: { dockerConfig, retry: { attempts: 1 } }, onWarning: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain("\n");
    await expect(exportCache([], parseCacheSpec("type=registry,ref=127.0.0.1:1/x/y:c", "to"), { store, registry: { dockerConfig, retry: { attempts: 1 } } })).rejects.toThrow(KilnError);
    const ignored = await importCache(parseCacheSpec(`type=registry,ref=${reg.host}/plain/image:v1,ignore-error=true`, "from"), { store, registry });
    expect(ignored.size).toBe(0);
    expect(ignored.warning).toMatch(/not a kiln build cache/);
  });
});

describe("local (OCI layout) cache", () => {
  afterAll(async () => {
    await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
  });

  it("round-trips through an OCI layout directory; re-export rewrites no blob; layers copied on demand", async () => {
    const storeA = new BlobStore(await temp("kiln-lcache-a-"));
    const records = await makeRecords(storeA);
    const dir = join(await temp("kiln-lcache-dir-"), "cache");
    await exportCache(records, parseCacheSpec(`type=local,dest=${dir},mode=max`, "to"), { store: storeA });
    const layout = await OciLayout.open(dir);
    const desc = await layout.resolve("cache");
    const manifest = await layout.readJSON<Manifest>(desc.digest);
    expect(manifest.config.mediaType).toBe(CACHE_CONFIG_MEDIA_TYPE);
    expect(manifest.layers).toHaveLength(2);
    // skopeo reads it as an ordinary OCI image
    const { stdout } = await run("skopeo", ["inspect", "--raw", `oci:${dir}:cache`]);
    expect(JSON.parse(stdout)).toEqual(manifest);

    const blobPath = layout.blobPath(records[0]!.layer!.descriptor.digest);
    const before = await stat(blobPath);
    await exportCache(records, parseCacheSpec(`type=local,dest=${dir}`, "to"), { store: storeA });
    const after = await stat(blobPath);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as { manifests: unknown[] };
    expect(index.manifests).toHaveLength(1);

    const storeB = new BlobStore(await temp("kiln-lcache-b-"));
    const remote = await importCache(parseCacheSpec(`type=local,src=${dir}`, "from"), { store: storeB });
    expect(remote.size).toBe(4);
    const [r1, r2] = records as [CacheRecord, CacheRecord];
    expect(remote.lookup(r2.key)).toEqual(r2);
    await remote.fetchLayer(remote.lookup(r2.key)!);
    expect(await storeB.has(r2.layer!.descriptor.digest)).toBe(true);
    expect(await storeB.has(r1.layer!.descriptor.digest)).toBe(false);

    const none = await importCache(parseCacheSpec(`type=local,src=${dir}-absent`, "from"), { store: storeB });
    expect(none.size).toBe(0);
    expect(none.warning).toMatch(/not found/);
    await expect(importCache(parseCacheSpec(`type=local,src=${dir},tag=other`, "from"), { store: storeB })).rejects.toThrow(/no image tagged "other"/);
  });
});
