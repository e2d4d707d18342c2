// Tests for verifyLayout (`kiln verify`): a good layout passes; each kind of damage is reported.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { writeLayer } from "../../src/layer/write-layer.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { materialize } from "../../src/image/materialize.js";
import { storeImage } from "../../src/image/source.js";
import { writeOciLayout } from "../../src/output/oci-layout.js";
import { verifyLayout } from "../../src/output/verify.js";
import { KilnError } from "../../src/errors.js";
import type { Descriptor, ImageConfig, Index, Manifest } from "../../src/image/oci.js";
import type { MaterializedImage } from "../../src/image/image.js";

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 };
const sha = (b: Buffer): `sha256:${string}` => `sha256:${createHash("sha256").update(b).digest("hex")}`;

let tmp: string;
let dest: string;
let img: MaterializedImage;
beforeEach(async () => {
  tmp = mkdtempSync(join(tmpdir(), "kiln-verify-"));
  const store = new BlobStore(join(tmp, "store"));
  const layers = [];
  for (const name of ["a", "b"]) {
    const c = Buffer.from(`content ${name}\n`.repeat(100));
    layers.push(await writeLayer([{ ...base, path: name, type: "file", size: c.length, open: () => Readable.from([c]) }], store));
  }
  const config: ImageConfig = {
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
    history: [{ created_by: "a" }, { created_by: "meta", empty_layer: true }, { created_by: "b" }],
  };
  img = await materialize({ config, layers: layers.map((l) => ({ descriptor: l.descriptor, diffID: l.diffID })) }, store, "oci");
  dest = join(tmp, "layout");
  await writeOciLayout(await storeImage(store, img.manifest), { dest, tags: ["t:1"] });
});
afterEach(() => { rmSync(tmp, { recursive: true, force: true }); });

const blob = (digest: string): string => join(dest, "blobs/sha256", digest.slice(7));
/** Replace a blob's file (breaking the store hardlink). */
const overwrite = (digest: string, data: Buffer | string): void => {
  rmSync(blob(digest));
  writeFileSync(blob(digest), data);
};
/** Store a JSON document as a new blob; returns its descriptor. */
const putJSON = (value: unknown, mediaType: string): Descriptor => {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = sha(bytes);
  writeFileSync(blob(digest), bytes);
  return { mediaType, digest, size: bytes.length };
};
/** Point index.json at a (modified) manifest. */
const setManifest = (m: Manifest): void => {
  const d = putJSON(m, img.manifest.mediaType);
  writeFileSync(join(dest, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [d] }));
};
const readJSON = <T>(digest: string): T => JSON.parse(readFileSync(blob(digest), "utf8")) as T;

describe("verifyLayout", () => {
  it("passes a good layout and counts what it checked", async () => {
    expect(await verifyLayout(dest)).toEqual({ manifests: 1, blobs: 4 });
  });

  it("passes layouts written by skopeo (OCI and Docker schema2 media types)", async () => {
    const copied = join(tmp, "copied");
    execFileSync("skopeo", ["copy", `oci:${dest}:1`, `oci:${copied}:a`], { stdio: "pipe" });
    execFileSync("skopeo", ["copy", "--format", "v2s2", `oci:${dest}:1`, `oci:${copied}:b`], { stdio: "pipe" });
    expect(await verifyLayout(copied)).toMatchObject({ manifests: 2 });
  });

  it("catches a corrupted layer blob", async () => {
    const bytes = readFileSync(blob(img.layers[1]!.digest));
    bytes[20] ^= 0x55;
    overwrite(img.layers[1]!.digest, bytes);
    await expect(verifyLayout(dest)).rejects.toThrow(new RegExp(`blob ${img.layers[1]!.digest} is corrupt`));
  });

  it("catches a missing blob and a wrong size", async () => {
    rmSync(blob(img.config.digest));
    await expect(verifyLayout(dest)).rejects.toThrow(/is missing/);
  });

  it("catches a descriptor with the wrong size", async () => {
    const m = readJSON<Manifest>(img.manifest.digest);
    m.layers[0] = { ...m.layers[0]!, size: m.layers[0]!.size + 1 };
    setManifest(m);
    await expect(verifyLayout(dest)).rejects.toThrow(/layers\[0\]: blob sha256:[0-9a-f]+ is \d+ bytes, its descriptor says \d+/);
  });

  it("catches a wrong diff_id", async () => {
    const m = readJSON<Manifest>(img.manifest.digest);
    const cfg = readJSON<ImageConfig>(img.config.digest);
    cfg.rootfs.diff_ids[1] = sha(Buffer.from("something else"));
    m.config = putJSON(cfg, m.config.mediaType);
    setManifest(m);
    await expect(verifyLayout(dest)).rejects.toThrow(/layers\[1\] sha256:[0-9a-f]+ decompresses to sha256:[0-9a-f]+, config diff_ids\[1\] says/);
  });

  it("catches history that does not match the layers", async () => {
    const m = readJSON<Manifest>(img.manifest.digest);
    const cfg = readJSON<ImageConfig>(img.config.digest);
    cfg.history = [{ created_by: "only one" }];
    m.config = putJSON(cfg, m.config.mediaType);
    setManifest(m);
    await expect(verifyLayout(dest)).rejects.toThrow(/1 non-empty history entries for 2 layers/);
  });

  it("catches mixed media types and layers that do not decompress", async () => {
    const m = readJSON<Manifest>(img.manifest.digest);
    m.layers[0] = { ...m.layers[0]!, mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip" };
    setManifest(m);
    await expect(verifyLayout(dest)).rejects.toThrow(/mixed into a OCI manifest/);
    const m2 = readJSON<Manifest>(img.manifest.digest);
    const notGzip = Buffer.from("plain bytes, not gzip");
    writeFileSync(blob(sha(notGzip)), notGzip);
    m2.layers[0] = { mediaType: m2.layers[0]!.mediaType, digest: sha(notGzip), size: notGzip.length };
    setManifest(m2);
    await expect(verifyLayout(dest)).rejects.toThrow(/does not decompress/);
  });

  it("catches a manifest whose mediaType disagrees with its descriptor, and bad index.json", async () => {
    const m = readJSON<Manifest>(img.manifest.digest);
    m.mediaType = "application/vnd.oci.image.index.v1+json";
    setManifest(m);
    await expect(verifyLayout(dest)).rejects.toThrow(/manifest says mediaType/);
    writeFileSync(join(dest, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "x", digest: "sha256:nothex", size: 1 }] }));
    await expect(verifyLayout(dest)).rejects.toThrow(KilnError);
    writeFileSync(join(dest, "index.json"), "{");
    await expect(verifyLayout(dest)).rejects.toThrow(/index.json missing or not valid JSON/);
  });

  it("checks layouts holding several images, including nested indexes", async () => {
    const tar = Buffer.alloc(1024);
    const gz = gzipSync(tar);
    writeFileSync(blob(sha(gz)), gz);
    const cfg = putJSON({ architecture: "arm64", os: "linux", rootfs: { type: "layers", diff_ids: [sha(tar)] } }, "application/vnd.oci.image.config.v1+json");
    const m = putJSON({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: cfg, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha(gz), size: gz.length }] }, "application/vnd.oci.image.manifest.v1+json");
    const idx = putJSON({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [{ ...m, platform: { os: "linux", architecture: "arm64" } }] }, "application/vnd.oci.image.index.v1+json");
    const index = JSON.parse(readFileSync(join(dest, "index.json"), "utf8")) as Index;
    index.manifests.push(idx);
    writeFileSync(join(dest, "index.json"), JSON.stringify(index));
    expect(await verifyLayout(dest)).toEqual({ manifests: 2, blobs: 8 });
  });
});
