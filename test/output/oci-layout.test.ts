// Tests for OCI layout output (dir and tar) and docker-archive, checked with skopeo and umoci.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { writeLayer } from "../../src/layer/write-layer.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { materialize } from "../../src/image/materialize.js";
import { storeImage } from "../../src/image/source.js";
import { writeOciLayout, parseTag, tagsFrom } from "../../src/output/oci-layout.js";
import { writeDockerArchive } from "../../src/output/docker-archive.js";
import { verifyLayout } from "../../src/output/verify.js";
import { OciLayout } from "../../src/image/layout.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import type { ImageConfig, ImageFormat, Index } from "../../src/image/oci.js";
import type { MaterializedImage } from "../../src/image/image.js";
import { KilnError } from "../../src/errors.js";

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0 };
const file = (path: string, content: string, extra: Partial<LayerEntry> = {}): LayerEntry => {
  const b = Buffer.from(content);
  return { ...base, path, type: "file", size: b.length, open: () => Readable.from([b]), ...extra };
};

async function makeImage(store: BlobStore, format: ImageFormat = "oci", marker = "1"): Promise<MaterializedImage> {
  const l1 = await writeLayer([
    { ...base, path: "etc", type: "dir", mode: 0o755 },
    file("etc/motd", `welcome ${marker}\n`),
    { ...base, path: "bin", type: "dir", mode: 0o755 },
    file("bin/tool", "#!/bin/sh\necho tool\n", { mode: 0o750 }),
  ], store);
  const l2 = await writeLayer([file("etc/.wh.motd", ""), file("etc/added", "second layer\n", { mode: 0o600 })], store);
  const config: ImageConfig = {
    created: "2024-01-01T00:00:00Z",
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/bin:/bin", "MARK=" + marker], Cmd: ["/bin/tool"], WorkingDir: "/etc", Labels: { "org.example.b": "2", "org.example.a": "1" } },
    rootfs: { type: "layers", diff_ids: [l1.diffID, l2.diffID] },
    history: [{ created_by: "COPY a" }, { created_by: "ENV x", empty_layer: true }, { created_by: "RUN b" }],
  };
  return materialize({ config, layers: [l1, l2].map((l) => ({ descriptor: l.descriptor, diffID: l.diffID })) }, store, format);
}

let tmp: string;
let store: BlobStore;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), "kiln-out-"));
  store = new BlobStore(join(tmp, "store"));
});
afterEach(() => { rmSync(tmp, { recursive: true, force: true }); });

const skopeoInspect = (ref: string): Record<string, unknown> =>
  JSON.parse(execFileSync("skopeo", ["inspect", ref], { encoding: "utf8" })) as Record<string, unknown>;
const skopeoConfig = (ref: string): ImageConfig =>
  JSON.parse(execFileSync("skopeo", ["inspect", "--config", ref], { encoding: "utf8" })) as ImageConfig;

describe("parseTag", () => {
  it("normalizes names like docker", () => {
    expect(parseTag("hello")).toMatchObject({ full: "docker.io/library/hello:latest", familiar: "hello:latest", tag: "latest" });
    expect(parseTag("me/app:v1")).toMatchObject({ full: "docker.io/me/app:v1", familiar: "me/app:v1", tag: "v1" });
    expect(parseTag("localhost:5000/x/y:2")).toMatchObject({ full: "localhost:5000/x/y:2", familiar: "localhost:5000/x/y:2", tag: "2" });
    expect(() => parseTag("Bad/Name")).toThrow(KilnError);
    expect(() => parseTag("x@sha256:abc")).toThrow(KilnError);
    const d = `sha256:${"a".repeat(64)}`;
    expect(tagsFrom([`x@${d}`, `y:2@${d}`, "z"]).map((t) => t.familiar)).toEqual(["y:2", "z:latest"]);
  });
});

describe("writeOciLayout (directory)", () => {
  it("writes a layout skopeo, umoci and verify accept", async () => {
    const img = await makeImage(store);
    const dest = join(tmp, "layout");
    await writeOciLayout(await storeImage(store, img.manifest), { dest, tags: ["hello:v1"] });
    expect(JSON.parse(readFileSync(join(dest, "oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
    const index = JSON.parse(readFileSync(join(dest, "index.json"), "utf8")) as Index;
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.annotations).toEqual({ "io.containerd.image.name": "docker.io/library/hello:v1", "org.opencontainers.image.ref.name": "v1" });
    // hardlinked from the store (same file system)
    const layerPath = join(dest, "blobs", "sha256", img.layers[0]!.digest.slice(7));
    expect(statSync(layerPath).ino).toBe(statSync(store.path(img.layers[0]!.digest)).ino);

    const inspect = skopeoInspect(`oci:${dest}:v1`);
    expect(inspect).toMatchObject({ Architecture: "amd64", Os: "linux", Env: ["PATH=/usr/bin:/bin", "MARK=1"] });
    expect(inspect.Labels).toEqual({ "org.example.a": "1", "org.example.b": "2" });
    expect((inspect.Layers as string[])).toEqual(img.layers.map((l) => l.digest));
    const cfg = skopeoConfig(`oci:${dest}:v1`);
    expect(cfg.config).toMatchObject({ Cmd: ["/bin/tool"], WorkingDir: "/etc" });

    const bundle = join(tmp, "bundle");
    execFileSync("umoci", ["unpack", "--rootless", "--image", `${dest}:v1`, bundle], { stdio: "pipe" });
    const rootfs = join(bundle, "rootfs");
    expect(existsSync(join(rootfs, "etc/motd"))).toBe(false); // whiteout applied
    expect(readFileSync(join(rootfs, "etc/added"), "utf8")).toBe("second layer\n");
    expect(statSync(join(rootfs, "etc/added")).mode & 0o7777).toBe(0o600);
    expect(statSync(join(rootfs, "bin/tool")).mode & 0o7777).toBe(0o750);
    expect(statSync(join(rootfs, "bin")).isDirectory()).toBe(true);

    expect(await verifyLayout(dest)).toEqual({ manifests: 1, blobs: 4 });
    const layout = await OciLayout.open(dest);
    const read = await layout.readImage(await layout.resolve("v1"));
    expect(read.config.config?.Env).toContain("MARK=1");
  });

  it("adds and replaces tags, keeping other entries", async () => {
    const dest = join(tmp, "layout");
    const one = await makeImage(store, "oci", "1");
    const two = await makeImage(store, "oci", "2");
    await writeOciLayout(await storeImage(store, one.manifest), { dest, tags: ["app:a", "app:b"] });
    await writeOciLayout(await storeImage(store, two.manifest), { dest, tags: ["app:b", "app:c"] });
    const names = (): Record<string, string> => {
      const index = JSON.parse(readFileSync(join(dest, "index.json"), "utf8")) as Index;
      return Object.fromEntries(index.manifests.map((m) => [m.annotations?.["org.opencontainers.image.ref.name"] ?? "", m.digest]));
    };
    expect(names()).toEqual({ a: one.manifest.digest, b: two.manifest.digest, c: two.manifest.digest });
    expect(skopeoInspect(`oci:${dest}:a`).Env).toContain("MARK=1");
    expect(skopeoInspect(`oci:${dest}:b`).Env).toContain("MARK=2");
    // untagged write adds an entry once, replacing nothing
    await writeOciLayout(await storeImage(store, one.manifest), { dest });
    await writeOciLayout(await storeImage(store, one.manifest), { dest });
    const index = JSON.parse(readFileSync(join(dest, "index.json"), "utf8")) as Index;
    expect(index.manifests).toHaveLength(4);
    expect(index.manifests.filter((m) => !m.annotations)).toHaveLength(1);
    expect(await verifyLayout(dest)).toMatchObject({ manifests: 2 });
  });

  it("leaves nothing when a blob is missing from the store", async () => {
    const img = await makeImage(store);
    rmSync(store.path(img.layers[1]!.digest));
    const dest = join(tmp, "layout");
    await expect(writeOciLayout(await storeImage(store, img.manifest), { dest, tags: ["x:1"] })).rejects.toThrow(KilnError);
    expect(existsSync(dest)).toBe(false);
    // into an existing layout: its index and blobs are left as they were
    const good = await makeImage(new BlobStore(join(tmp, "store2")), "oci", "9");
    await writeOciLayout(await storeImage(new BlobStore(join(tmp, "store2")), good.manifest), { dest, tags: ["x:1"] });
    const before = readFileSync(join(dest, "index.json"), "utf8");
    const blobsBefore = readdirSync(join(dest, "blobs/sha256")).sort();
    await expect(writeOciLayout(await storeImage(store, img.manifest), { dest, tags: ["x:2"] })).rejects.toThrow(KilnError);
    expect(readFileSync(join(dest, "index.json"), "utf8")).toBe(before);
    expect(readdirSync(join(dest, "blobs/sha256")).sort()).toEqual(blobsBefore);
    expect(readdirSync(dest).sort()).toEqual(["blobs", "index.json", "oci-layout"]);
  });

  it("refuses to clobber a non-layout index.json", async () => {
    const img = await makeImage(store);
    const dest = join(tmp, "layout");
    mkdirSync(dest);
    writeFileSync(join(dest, "index.json"), "not json");
    await expect(writeOciLayout(await storeImage(store, img.manifest), { dest })).rejects.toThrow(/not valid JSON/);
    expect(readFileSync(join(dest, "index.json"), "utf8")).toBe("not json");
  });
});

describe("writeOciLayout (tricky layers, other file systems)", () => {
  it("umoci unpacks hardlinks, symlinks, long and non-ASCII names as written", async () => {
    const longPath = `deep/${"n".repeat(120)}/${"é".repeat(40)}.txt`;
    const layer = await writeLayer([
      { ...base, path: "deep", type: "dir", mode: 0o755 },
      { ...base, path: `deep/${"n".repeat(120)}`, type: "dir", mode: 0o700 },
      file(longPath, "long\n", { mode: 0o640 }),
      { ...base, path: "a-link", type: "hardlink", linkname: "z-file" },
      file("z-file", "shared\n", { mode: 0o604 }),
      { ...base, path: "sym", type: "symlink", linkname: longPath, mode: 0o777 },
    ], store);
    const config: ImageConfig = { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layer.diffID] } };
    const img = await materialize({ config, layers: [{ descriptor: layer.descriptor, diffID: layer.diffID }] }, store, "oci");
    const dest = join(tmp, "layout");
    await writeOciLayout(await storeImage(store, img.manifest), { dest, tags: ["t:1"] });
    const bundle = join(tmp, "bundle");
    execFileSync("umoci", ["unpack", "--rootless", "--image", `${dest}:1`, bundle], { stdio: "pipe" });
    const root = join(bundle, "rootfs");
    expect(readFileSync(join(root, longPath), "utf8")).toBe("long\n");
    expect(statSync(join(root, longPath)).mode & 0o7777).toBe(0o640);
    expect(statSync(join(root, "deep", "n".repeat(120))).mode & 0o7777).toBe(0o700);
    expect(statSync(join(root, "a-link")).ino).toBe(statSync(join(root, "z-file")).ino);
    expect(readFileSync(join(root, "z-file"), "utf8")).toBe("shared\n");
    expect(statSync(join(root, "z-file")).mode & 0o7777).toBe(0o604);
    expect(readFileSync(join(root, "sym"), "utf8")).toBe("long\n"); // relative target resolves inside
  });

  it("copies blobs when the destination is on another file system", async () => {
    if (!existsSync("/dev/shm")) return expect(existsSync("/dev/shm")).toBe(false);
    const img = await makeImage(store);
    const other = mkdtempSync(join("/dev/shm", "kiln-out-"));
    try {
      const dest = join(other, "layout");
      await writeOciLayout(await storeImage(store, img.manifest), { dest, tags: ["x:1"] });
      const a = join(dest, "blobs/sha256", img.layers[0]!.digest.slice(7));
      const sameFs = statSync(other).dev === statSync(store.root).dev;
      expect(statSync(a).ino === statSync(store.path(img.layers[0]!.digest)).ino).toBe(sameFs);
      expect(readFileSync(a).equals(readFileSync(store.path(img.layers[0]!.digest)))).toBe(true);
      expect(await verifyLayout(dest)).toEqual({ manifests: 1, blobs: 4 });
      expect(readdirSync(join(dest, "blobs/sha256")).filter((f) => f.startsWith("."))).toEqual([]);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe("writeOciLayout (tar)", () => {
  it("writes a tar of the layout, atomically", async () => {
    const img = await makeImage(store);
    const dest = join(tmp, "out", "image.tar");
    await writeOciLayout(await storeImage(store, img.manifest), { dest, tags: ["hello:latest"], tar: true });
    expect(readdirSync(join(tmp, "out"))).toEqual(["image.tar"]);
    const names = execFileSync("tar", ["-tf", dest], { encoding: "utf8" }).trim().split("\n");
    expect(names).toContain("oci-layout");
    expect(names).toContain("index.json");
    expect(names).toContain(`blobs/sha256/${img.manifest.digest.slice(7)}`);
    expect(skopeoInspect(`oci-archive:${dest}:latest`)).toMatchObject({ Architecture: "amd64" });
    const x = join(tmp, "x");
    mkdirSync(x);
    execFileSync("tar", ["-xf", dest, "-C", x]);
    expect(await verifyLayout(x)).toEqual({ manifests: 1, blobs: 4 });
    // failure leaves neither the tar nor a temp file
    const source = await storeImage(store, img.manifest);
    rmSync(store.path(img.config.digest));
    const dest2 = join(tmp, "out", "second.tar");
    await expect(writeOciLayout(source, { dest: dest2, tar: true })).rejects.toThrow(KilnError);
    expect(readdirSync(join(tmp, "out"))).toEqual(["image.tar"]);
  });
});

describe("writeDockerArchive", () => {
  it("writes an archive skopeo reads as docker-archive", async () => {
    const img = await makeImage(store, "docker");
    const dest = join(tmp, "docker.tar");
    await writeDockerArchive(await storeImage(store, img.manifest), { dest, tags: ["hello:v2", "docker.io/library/hello:v3"] });
    const inspect = skopeoInspect(`docker-archive:${dest}`);
    expect(inspect).toMatchObject({ Architecture: "amd64", Os: "linux" });
    expect(inspect.Env).toContain("MARK=1");
    const x = join(tmp, "x");
    mkdirSync(x);
    execFileSync("tar", ["-xf", dest, "-C", x]);
    const manifest = JSON.parse(readFileSync(join(x, "manifest.json"), "utf8")) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    expect(manifest).toEqual([{
      Config: `blobs/sha256/${img.config.digest.slice(7)}`,
      RepoTags: ["hello:v2", "hello:v3"],
      Layers: img.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`),
    }]);
    expect(JSON.parse(readFileSync(join(x, "repositories"), "utf8"))).toEqual({ hello: { v2: img.config.digest.slice(7), v3: img.config.digest.slice(7) } });
    expect(await verifyLayout(x)).toEqual({ manifests: 1, blobs: 4 });
    const m = JSON.parse(readFileSync(join(x, "blobs/sha256", img.manifest.digest.slice(7)), "utf8")) as { mediaType: string; layers: Array<{ mediaType: string }> };
    expect(m.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(m.layers.every((l) => l.mediaType === "application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe(true);
    // and skopeo can copy it into an OCI layout
    execFileSync("skopeo", ["copy", `docker-archive:${dest}:hello:v2`, `oci:${join(tmp, "copied")}:v2`], { stdio: "pipe" });
  });
});
