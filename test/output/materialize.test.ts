// Tests for materialize: canonical config/manifest JSON, OCI vs Docker media types, history
// normalization and consistency checks.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobStore } from "../../src/store/blob-store.js";
import { materialize, normalizeHistory } from "../../src/image/materialize.js";
import { KilnError } from "../../src/errors.js";
import { MediaType, type Digest, type ImageConfig, type Manifest } from "../../src/image/oci.js";
import type { Image } from "../../src/image/image.js";

const d = (c: string): Digest => `sha256:${c.repeat(64)}`;
let tmp: string;
let store: BlobStore;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), "kiln-mat-"));
  store = new BlobStore(join(tmp, "store"));
});
afterEach(() => { rmSync(tmp, { recursive: true, force: true }); });

function image(mediaType: string = MediaType.ociLayerGzip): Image {
  return {
    config: {
      architecture: "arm64",
      os: "linux",
      variant: "v8",
      config: { Labels: { z: "1", a: "2" }, Env: ["B=1", "A=2"], Cmd: ["sh"], ExposedPorts: { "80/tcp": {}, "443/tcp": {} } },
      rootfs: { type: "layers", diff_ids: [d("a"), d("b")] },
      history: [{ created_by: "one" }, { created_by: "two" }],
    },
    layers: [
      { descriptor: { mediaType, digest: d("1"), size: 10 }, diffID: d("a") },
      { descriptor: { mediaType, digest: d("2"), size: 20 }, diffID: d("b") },
    ],
  };
}

describe("materialize", () => {
  it("writes canonical JSON whatever the key insertion order", async () => {
    const a = await materialize(image(), store, "oci");
    const img = image();
    const shuffled: ImageConfig = {
      history: img.config.history,
      rootfs: img.config.rootfs,
      config: { ExposedPorts: { "443/tcp": {}, "80/tcp": {} }, Cmd: ["sh"], Env: ["B=1", "A=2"], Labels: { a: "2", z: "1" } },
      variant: "v8",
      os: "linux",
      architecture: "arm64",
    };
    const b = await materialize({ ...img, config: shuffled }, store, "oci");
    expect(b.config.digest).toBe(a.config.digest);
    expect(b.manifest.digest).toBe(a.manifest.digest);
    const text = (await store.readBytes(a.config.digest)).toString();
    expect(text.indexOf('"architecture"')).toBeLessThan(text.indexOf('"rootfs"'));
    expect(text).toContain('"Labels":{"a":"2","z":"1"}');
    expect(text).toContain('"Env":["B=1","A=2"]'); // arrays keep their order
    const manifestText = (await store.readBytes(a.manifest.digest)).toString();
    expect(manifestText.startsWith('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":')).toBe(true);
  });

  it("uses OCI types for oci and Docker schema2 types for docker, never mixed", async () => {
    const oci = await materialize(image(MediaType.dockerLayerGzip), store, "oci", { annotations: { "org.example": "x" } });
    const om = await store.readJSON<Manifest>(oci.manifest.digest);
    expect(om.mediaType).toBe(MediaType.ociManifest);
    expect(om.config.mediaType).toBe(MediaType.ociConfig);
    expect(om.layers.map((l) => l.mediaType)).toEqual([MediaType.ociLayerGzip, MediaType.ociLayerGzip]);
    expect(om.annotations).toEqual({ "org.example": "x" });
    const docker = await materialize(image(), store, "docker", { annotations: { "org.example": "x" } });
    const dm = await store.readJSON<Manifest>(docker.manifest.digest);
    expect(docker.manifest.mediaType).toBe(MediaType.dockerManifest);
    expect(dm.mediaType).toBe(MediaType.dockerManifest);
    expect(dm.config.mediaType).toBe(MediaType.dockerConfig);
    expect(dm.layers.map((l) => l.mediaType)).toEqual([MediaType.dockerLayerGzip, MediaType.dockerLayerGzip]);
    expect(dm.annotations).toBeUndefined();
    expect(docker.layers).toEqual(dm.layers);
    await expect(materialize(image(MediaType.ociLayerZstd), store, "docker")).rejects.toThrow(/cannot express layer media type .*zstd in docker format/);
  });

  it("rejects layers that disagree with the config", async () => {
    const img = image();
    img.layers[1]!.diffID = d("c");
    await expect(materialize(img, store, "oci")).rejects.toThrow(KilnError);
    const img2 = image();
    img2.layers.pop();
    await expect(materialize(img2, store, "oci")).rejects.toThrow(/1 layers but its config lists 2 diff_ids/);
  });

  it("normalizes history to the layer count", async () => {
    const cfg = image().config;
    expect(normalizeHistory({ ...cfg, history: [{ created_by: "only" }] }, 3).history).toEqual([
      { comment: "history missing for this layer" }, { comment: "history missing for this layer" }, { created_by: "only" },
    ]);
    const surplus = normalizeHistory({ ...cfg, history: [{ created_by: "a" }, { created_by: "b", empty_layer: true }, { created_by: "c" }] }, 1);
    expect(surplus.history!.filter((h) => !h.empty_layer)).toEqual([{ created_by: "c" }]);
    const img = image();
    img.config.history = [];
    const m = await materialize(img, store, "oci");
    const written = await store.readJSON<ImageConfig>(m.config.digest);
    expect(written.history).toHaveLength(2);
    expect(img.config.history).toEqual([]); // input untouched
  });
});
