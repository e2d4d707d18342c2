// Tests for the OCI layout reader: open checks, tag/digest resolution, index platform selection,
// digest verification, and importing an image's blobs into the store.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { writeLayer } from "../../src/layer/write-layer.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { materialize } from "../../src/image/materialize.js";
import { storeImage } from "../../src/image/source.js";
import { writeOciLayout } from "../../src/output/oci-layout.js";
import { OciLayout, importImage } from "../../src/image/layout.js";
import { KilnError } from "../../src/errors.js";
import { MediaType, type Descriptor, type ImageConfig, type Index } from "../../src/image/oci.js";
import type { MaterializedImage } from "../../src/image/image.js";

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 };

async function makeImage(store: BlobStore, arch = "amd64", variant?: string): Promise<MaterializedImage> {
  const content = Buffer.from(`built for ${arch}\n`);
  const layer = await writeLayer([{ ...base, path: "arch.txt", type: "file", size: content.length, open: () => Readable.from([content]) }], store);
  const config: ImageConfig = {
    architecture: arch,
    os: "linux",
    ...(variant ? { variant } : {}),
    config: { Env: [`ARCH=${arch}`] },
    rootfs: { type: "layers", diff_ids: [layer.diffID] },
    history: [{ created_by: "COPY arch.txt" }],
  };
  return materialize({ config, layers: [{ descriptor: layer.descriptor, diffID: layer.diffID }] }, store, "oci");
}

let tmp: string;
let store: BlobStore;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), "kiln-layout-"));
  store = new BlobStore(join(tmp, "store"));
});
afterEach(() => { rmSync(tmp, { recursive: true, force: true }); });

describe("OciLayout.open / resolve", () => {
  it("rejects directories that are not layouts", async () => {
    await expect(OciLayout.open(join(tmp, "nope"))).rejects.toThrow(/not an OCI layout/);
    mkdirSync(join(tmp, "half"));
    writeFileSync(join(tmp, "half", "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await expect(OciLayout.open(join(tmp, "half"))).rejects.toThrow(/index.json/);
    writeFileSync(join(tmp, "half", "oci-layout"), JSON.stringify({ imageLayoutVersion: "9" }));
    await expect(OciLayout.open(join(tmp, "half"))).rejects.toThrow(KilnError);
  });

  it("resolves by tag, name:tag, digest, or the only entry", async () => {
    const a = await makeImage(store, "amd64");
    const b = await makeImage(store, "arm64");
    const dest = join(tmp, "l");
    await writeOciLayout(await storeImage(store, a.manifest), { dest, tags: ["app:one", "app:uno"] });
    const single = await OciLayout.open(dest);
    expect((await single.resolve()).digest).toBe(a.manifest.digest);
    await writeOciLayout(await storeImage(store, b.manifest), { dest, tags: ["app:two"] });
    const layout = await OciLayout.open(dest);
    expect((await layout.resolve("one")).digest).toBe(a.manifest.digest);
    expect((await layout.resolve("app:two")).digest).toBe(b.manifest.digest);
    expect((await layout.resolve("docker.io/library/app:two")).digest).toBe(b.manifest.digest);
    expect((await layout.resolve(b.manifest.digest)).digest).toBe(b.manifest.digest);
    await expect(layout.resolve()).rejects.toThrow(/holds 2 images; name one \(available tags: one, uno, two\)/);
    await expect(layout.resolve("three")).rejects.toThrow(/no image tagged "three" \(available tags: one, uno, two\)/);
    await expect(layout.resolve(`sha256:${"0".repeat(64)}`)).rejects.toThrow(KilnError);
  });

  it("reads layouts written by skopeo", async () => {
    const a = await makeImage(store, "amd64");
    await writeOciLayout(await storeImage(store, a.manifest), { dest: join(tmp, "src"), tags: ["x:1"] });
    const copied = join(tmp, "copied");
    execFileSync("skopeo", ["copy", `oci:${join(tmp, "src")}:1`, `oci:${copied}:v9`], { stdio: "pipe" });
    const layout = await OciLayout.open(copied);
    const read = await layout.readImage(await layout.resolve("v9"));
    expect(read.config.config?.Env).toEqual(["ARCH=amd64"]);
    expect(read.manifest.layers).toHaveLength(1);
  });
});

describe("OciLayout.readImage", () => {
  it("follows an index to the requested platform", async () => {
    const amd = await makeImage(store, "amd64");
    const arm = await makeImage(store, "arm64", "v8");
    const dest = join(tmp, "l");
    await writeOciLayout(await storeImage(store, amd.manifest), { dest });
    await writeOciLayout(await storeImage(store, arm.manifest), { dest });
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { ...amd.manifest, platform: { architecture: "amd64", os: "linux" } },
        { ...arm.manifest, platform: { architecture: "arm64", os: "linux", variant: "v8" } },
      ],
    };
    const bytes = Buffer.from(JSON.stringify(index));
    const info = await store.putBytes(bytes);
    writeFileSync(join(dest, "blobs/sha256", info.digest.slice(7)), bytes);
    const indexDesc: Descriptor = { mediaType: MediaType.ociIndex, digest: info.digest, size: info.size };
    writeFileSync(join(dest, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...indexDesc, annotations: { "org.opencontainers.image.ref.name": "multi" } }] }));
    const layout = await OciLayout.open(dest);
    const desc = await layout.resolve("multi");
    const arm64 = await layout.readImage(desc, { os: "linux", architecture: "arm64" });
    expect(arm64.manifestDescriptor.digest).toBe(arm.manifest.digest);
    expect(arm64.config.architecture).toBe("arm64");
    const x86 = await layout.readImage(desc, { os: "linux", architecture: "amd64" });
    expect(x86.config.config?.Env).toEqual(["ARCH=amd64"]);
    await expect(layout.readImage(desc, { os: "linux", architecture: "s390x" })).rejects.toThrow(/no image for platform linux\/s390x \(index has: linux\/amd64, linux\/arm64\/v8\)/);
  });

  it("detects a blob whose content does not match its digest", async () => {
    const a = await makeImage(store);
    const dest = join(tmp, "l");
    await writeOciLayout(await storeImage(store, a.manifest), { dest, tags: ["x:1"] });
    const cfgPath = join(dest, "blobs/sha256", a.config.digest.slice(7));
    rmSync(cfgPath); // break the hardlink so the store keeps the good copy
    writeFileSync(cfgPath, JSON.stringify({ architecture: "evil", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
    const layout = await OciLayout.open(dest);
    await expect(layout.readImage(await layout.resolve("1"))).rejects.toThrow(/is corrupt/);
  });
});

describe("importImage", () => {
  it("links verified blobs into another store and returns the image", async () => {
    const a = await makeImage(store);
    const dest = join(tmp, "l");
    await writeOciLayout(await storeImage(new BlobStore(join(tmp, "store")), a.manifest), { dest, tags: ["x:1"] });
    const other = new BlobStore(join(tmp, "other"));
    const layout = await OciLayout.open(dest);
    const { image, manifestDescriptor } = await importImage(layout, await layout.resolve("1"), other);
    expect(manifestDescriptor.digest).toBe(a.manifest.digest);
    expect(image.layers.map((l) => l.descriptor)).toEqual(a.layers);
    expect(image.layers[0]!.diffID).toBe(image.config.rootfs.diff_ids[0]);
    for (const d of [...a.layers, a.config]) {
      expect(readFileSync(other.path(d.digest)).equals(readFileSync(layout.blobPath(d.digest)))).toBe(true);
    }
    expect(statSync(other.path(a.layers[0]!.digest)).ino).toBe(statSync(layout.blobPath(a.layers[0]!.digest)).ino);
    // re-materializing the imported image gives the same manifest
    const again = await materialize(image, other, "oci");
    expect(again.manifest.digest).toBe(a.manifest.digest);
  });

  it("refuses a corrupt layer and stores nothing for it", async () => {
    const a = await makeImage(store);
    const dest = join(tmp, "l");
    await writeOciLayout(await storeImage(store, a.manifest), { dest, tags: ["x:1"] });
    const layerPath = join(dest, "blobs/sha256", a.layers[0]!.digest.slice(7));
    const bytes = readFileSync(layerPath);
    rmSync(layerPath);
    bytes[bytes.length - 5] ^= 0xff;
    writeFileSync(layerPath, bytes);
    const other = new BlobStore(join(tmp, "other"));
    const layout = await OciLayout.open(dest);
    await expect(importImage(layout, await layout.resolve("1"), other)).rejects.toThrow(/is corrupt/);
    expect(await other.has(a.layers[0]!.digest)).toBe(false);
  });

  it("reports mismatched diff_ids and layers", async () => {
    const a = await makeImage(store);
    const dest = join(tmp, "l");
    await writeOciLayout(await storeImage(store, a.manifest), { dest, tags: ["x:1"] });
    const index = JSON.parse(readFileSync(join(dest, "index.json"), "utf8")) as Index;
    expect(index.manifests).toHaveLength(1);
    const manifest = JSON.parse(readFileSync(join(dest, "blobs/sha256", a.manifest.digest.slice(7)), "utf8")) as { layers: Descriptor[] };
    manifest.layers.push(manifest.layers[0]!);
    const bytes = Buffer.from(JSON.stringify(manifest));
    const info = await store.putBytes(bytes);
    writeFileSync(join(dest, "blobs/sha256", info.digest.slice(7)), bytes);
    const layout = await OciLayout.open(dest);
    await expect(importImage(layout, { mediaType: MediaType.ociManifest, digest: info.digest, size: info.size }, new BlobStore(join(tmp, "o")))).rejects.toThrow(/2 layers but its config lists 1 diff_ids/);
  });
});
