// A layer's claimed diff_id is checked while it is extracted (issue #10, escape 5): a layer whose
// content does not hash to its diffID fails with one line naming it, leaves no extraction under
// that diffID (overlay snapshotter) and no view index, and the legitimate layer with that diffID
// later extracts with its own content.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { listExtractedLayers } from "../../src/snapshot/layer-dirs.js";
import { createRootFS, type RootFSLayer } from "../../src/snapshot/rootfs.js";
import { LayerView } from "../../src/layer/view.js";
import { BlobStore } from "../../src/store/blob-store.js";
import type { Digest } from "../../src/image/oci.js";
import { makeTar, tempDir } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir("kiln-diffid-");
});
afterEach(() => t.cleanup());

const sha = (b: Buffer): Digest => `sha256:${createHash("sha256").update(b).digest("hex")}`;

function layer(content: string, claim?: Digest): RootFSLayer {
  const gz = gzipSync(makeTar([{ name: "etc/", type: "dir" }, { name: "etc/app.conf", content }]));
  return { diffID: claim ?? sha(makeTar([{ name: "etc/", type: "dir" }, { name: "etc/app.conf", content }])), digest: sha(gz), origin: "image test", mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", open: () => Readable.from([gz]) };
}

describe("diff_id verification during extraction", () => {
  for (const snapshotter of ["overlay", "dir"] as const) {
    it(`${snapshotter}: a layer claiming another's diffID is refused and poisons nothing`, async () => {
      const good = layer("legitimate\n");
      const evil = layer("poisoned\n", good.diffID);
      const bad = await createRootFS(t.dir, { snapshotter });
      const err = await bad.applyLayers([evil]).catch((e: unknown) => e as Error);
      await bad.dispose();
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toBe(
        `layer ${evil.digest} of image test: content does not match its diff_id (claimed ${good.diffID}, got ${sha(makeTar([{ name: "etc/", type: "dir" }, { name: "etc/app.conf", content: "poisoned\n" }]))})`,
      );
      expect(await listExtractedLayers(t.dir)).toEqual([]);
      const fresh = await createRootFS(t.dir, { snapshotter });
      try {
        await fresh.applyLayers([good]);
        expect(readFileSync(join(fresh.dir, "etc/app.conf"), "utf8")).toBe("legitimate\n");
      } finally {
        await fresh.dispose();
      }
      expect((await listExtractedLayers(t.dir)).map((l) => l.diffID)).toEqual(snapshotter === "overlay" ? [good.diffID] : []);
    });
  }

  it("a gzip bomb with a made-up diffID is refused", async () => {
    const tar = makeTar([{ name: "zeros", content: Buffer.alloc(32 * 1024 * 1024) }]);
    const gz = gzipSync(tar, { level: 9 });
    const made = `sha256:${"ab".repeat(32)}` as Digest;
    const rootfs = await createRootFS(t.dir, { snapshotter: "overlay" });
    const err = await rootfs
      .applyLayers([{ diffID: made, digest: sha(gz), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", open: () => Readable.from([gz]) }])
      .catch((e: unknown) => e as Error);
    await rootfs.dispose();
    expect((err as Error).message).toMatch(/content does not match its diff_id \(claimed sha256:abab/);
    expect(await listExtractedLayers(t.dir)).toEqual([]);
    expect(readdirSync(join(t.dir, "rootfs"))).toEqual([]);
  });

  it("the layer view refuses the layer and caches no index for the claimed diffID", async () => {
    const store = new BlobStore(join(t.dir, "store"));
    const good = layer("legitimate\n");
    const evilGz = gzipSync(makeTar([{ name: "etc/", type: "dir" }, { name: "etc/passwd", content: "root:x:0:0::/:/bin/sh\n" }]));
    const evilBlob = await store.putBytes(evilGz);
    const err = await LayerView.load(store, [{ descriptor: { mediaType: good.mediaType, ...evilBlob }, diffID: good.diffID }]).catch((e: unknown) => e as Error);
    expect((err as Error).message).toMatch(new RegExp(`^layer ${evilBlob.digest}: content does not match its diff_id \\(claimed ${good.diffID}, got sha256:`));
    expect(existsSync(join(store.root, "views", `${good.diffID.slice(7)}.json`))).toBe(false);
  });
});
