// A RUN's own layer applied back onto the root filesystem it came from is recognised (header by
// header) and not extracted again; any other layer after a snapshot is applied as usual.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { chmodSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createDirRootFS, type RootFS, type RootFSLayer } from "../../src/snapshot/rootfs.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import { writeLayer } from "../../src/layer/write-layer.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { makeTar, tarLayer, tempDir } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
let rootfs: RootFS;
let store: BlobStore;
beforeEach(async () => {
  t = tempDir("kiln-rootfs-snap-");
  rootfs = await createDirRootFS(t.dir);
  store = new BlobStore(join(t.dir, "store"));
  await rootfs.applyLayer(tarLayer(makeTar([{ name: "etc/", type: "dir" }, { name: "etc/a", content: "a" }, { name: "etc/gone", content: "g" }])));
});
afterEach(async () => {
  await rootfs.dispose();
  t.cleanup();
});

async function layerOf(entries: LayerEntry[]): Promise<RootFSLayer> {
  const l = await writeLayer(entries, store);
  return { diffID: l.diffID, mediaType: l.descriptor.mediaType, open: () => store.open(l.descriptor.digest) };
}

async function runStep(): Promise<LayerEntry[]> {
  const step = await rootfs.beginStep();
  mkdirSync(join(rootfs.dir, "opt/app"), { recursive: true });
  writeFileSync(join(rootfs.dir, "opt/app/x"), "x");
  writeFileSync(join(rootfs.dir, "etc/a"), "changed");
  rmSync(join(rootfs.dir, "etc/gone"));
  return (await step.changes()) as LayerEntry[];
}

describe("directory root filesystem and its own snapshots", () => {
  it("does not extract a step's own layer again", async () => {
    const entries = await runStep();
    const before = lstatSync(join(rootfs.dir, "opt/app/x")).ino;
    await rootfs.applyLayer(await layerOf(entries));
    // the same inode: nothing was unlinked and rewritten
    expect(lstatSync(join(rootfs.dir, "opt/app/x")).ino).toBe(before);
    expect(readFileSync(join(rootfs.dir, "etc/a"), "utf8")).toBe("changed");
  });

  it("applies a different layer after a snapshot", async () => {
    const entries = await runStep();
    // same paths, one mode differs: not the step's layer
    const other = entries.map((e) => (e.path === "opt/app/x" ? { ...e, mode: 0o700 } : e));
    await rootfs.applyLayer(await layerOf(other));
    expect(lstatSync(join(rootfs.dir, "opt/app/x")).mode & 0o7777).toBe(0o700);
    // a layer with other content under the same names after the step's own was consumed
    const copyLayer = makeTar([{ name: "opt/app/x", content: "from COPY" }]);
    await rootfs.applyLayer(tarLayer(copyLayer));
    expect(readFileSync(join(rootfs.dir, "opt/app/x"), "utf8")).toBe("from COPY");
  });

  it("applies the next layer when the step changed nothing", async () => {
    const step = await rootfs.beginStep();
    expect(await step.changes()).toEqual([]);
    chmodSync(join(rootfs.dir, "etc/a"), 0o600);
    await rootfs.applyLayer(tarLayer(makeTar([{ name: "etc/a", content: "next", mode: 0o644 }])));
    expect(readFileSync(join(rootfs.dir, "etc/a"), "utf8")).toBe("next");
    expect(lstatSync(join(rootfs.dir, "etc/a")).mode & 0o7777).toBe(0o644);
  });
});
