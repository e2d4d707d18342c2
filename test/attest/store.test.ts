// Tests for attestation storage and the index that carries it: storeAttestations writes a
// BuildKit-style attestation manifest (in-toto layers, unknown/unknown config), attestationEntry
// turns it into an index entry, and storeIndex lists platform images and annotated entries in
// order (several unknown/unknown attestation entries allowed, a platform image twice refused).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { writeLayer } from "../../src/layer/write-layer.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { materialize } from "../../src/image/materialize.js";
import { storeImage, type ImageSource } from "../../src/image/source.js";
import { storeIndex, type PlatformImage } from "../../src/image/image-index.js";
import { attestationEntry, storeAttestations } from "../../src/attest/store.js";
import { statement } from "../../src/attest/statement.js";
import type { ImageConfig, Index, Manifest } from "../../src/image/oci.js";

let tmp: string;
let store: BlobStore;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), "kiln-attest-store-"));
  store = new BlobStore(join(tmp, "store"));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

async function platformImage(arch: string): Promise<ImageSource> {
  const content = Buffer.from(`built for ${arch}\n`);
  const layer = await writeLayer([{ path: "arch.txt", type: "file", mode: 0o644, uid: 0, gid: 0, mtime: 0, size: content.length, open: () => Readable.from([content]) }], store);
  const config: ImageConfig = { architecture: arch, os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [layer.diffID] } };
  const m = await materialize({ config, layers: [{ descriptor: layer.descriptor, diffID: layer.diffID }] }, store, "oci");
  return storeImage(store, m.manifest);
}

async function json<T>(digest: string): Promise<T> {
  return JSON.parse((await store.readBytes(digest as `sha256:${string}`)).toString("utf8")) as T;
}

describe("attestation manifests in an image index", () => {
  it("stores the statements as in-toto layers and lists each platform's attestation after the images, naming its image", async () => {
    const amd = await platformImage("amd64");
    const arm = await platformImage("arm64");
    const entries: PlatformImage[] = [{ platform: { architecture: "amd64", os: "linux" }, image: amd }, { platform: { architecture: "arm64", os: "linux" }, image: arm }];
    for (const img of [amd, arm]) {
      const s = statement([{ name: "_", digest: { sha256: img.manifest.digest.slice(7) } }], "https://slsa.dev/provenance/v1", { arch: img.manifest.digest });
      entries.push(await attestationEntry(store, await storeAttestations(store, img.manifest, [s])));
    }
    const index = await storeIndex(store, entries, "oci");
    expect(index.images).toHaveLength(4);
    const raw = await json<Index>(index.manifest.digest);
    expect(raw.manifests.map((d) => [d.platform?.architecture, d.annotations?.["vnd.docker.reference.digest"]])).toEqual([
      ["amd64", undefined],
      ["arm64", undefined],
      ["unknown", amd.manifest.digest],
      ["unknown", arm.manifest.digest],
    ]);
    for (const d of raw.manifests.slice(2)) {
      expect(d.platform).toEqual({ architecture: "unknown", os: "unknown" });
      expect(d.annotations?.["vnd.docker.reference.type"]).toBe("attestation-manifest");
      const m = await json<Manifest>(d.digest);
      expect(m.layers.map((l) => [l.mediaType, l.annotations?.["in-toto.io/predicate-type"]])).toEqual([["application/vnd.in-toto+json", "https://slsa.dev/provenance/v1"]]);
      expect(await json<{ os: string; architecture: string }>(m.config.digest)).toMatchObject({ os: "unknown", architecture: "unknown" });
      const st = await json<{ subject: Array<{ digest: { sha256: string } }> }>(m.layers[0]!.digest);
      expect(`sha256:${st.subject[0]!.digest.sha256}`).toBe(d.annotations?.["vnd.docker.reference.digest"]);
    }
  });

  it("still refuses one platform image listed twice", async () => {
    const amd = await platformImage("amd64");
    const p = { architecture: "amd64", os: "linux" };
    await expect(storeIndex(store, [{ platform: p, image: amd }, { platform: p, image: amd }], "oci")).rejects.toThrow(/listed twice/);
  });
});
