// The library contract end to end against real loopback registries: pull an image by reference,
// write it as an OCI layout tar, push it to another registry, with structured per-blob progress
// events; an AbortSignal cancels a pull, a push and a tar write mid-blob, leaving nothing
// half-written where they were writing.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  AbortError,
  BlobStore,
  parsePlatform,
  pullImage,
  pushImage,
  pushLayout,
  writeOciLayout,
  type ImageSource,
  type TransferProgress,
} from "../../src/index.js";
import { startRegistry, type LocalRegistry } from "../helpers/registry.js";
import { makeLayout, tempDir, type TestLayout } from "../registry/harness.js";

let from: LocalRegistry;
let to: LocalRegistry;
let layout: TestLayout;
let work: string;

beforeAll(async () => {
  [from, to] = await Promise.all([startRegistry(), startRegistry()]);
  // one small layer and one big enough (8 MiB) to be cut in the middle of its transfer
  layout = await makeLayout({ layers: 1, layerSize: 4096, shareLayers: [randomBytes(8 * 1024 * 1024)] });
  await pushLayout(layout.dir, "v1", [`${from.host}/lib/src:v1`], {});
  work = tempDir("kiln-lib-");
}, 60_000);

afterAll(async () => {
  await Promise.all([from?.stop(), to?.stop()]);
  await rm(layout.dir, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

const bigLayer = (): string => layout.images[0].layers[0]!.digest;

/** kiln's AbortError (cause: the signal's reason), whatever was in flight when the signal fired. */
function isAbortError(err: unknown): boolean {
  return err instanceof AbortError && err.name === "AbortError" && err.code === "ABORTED";
}

async function status(registry: LocalRegistry, path: string): Promise<number> {
  const res = await fetch(`http://${registry.host}${path}`, { method: "HEAD", headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  return res.status;
}

describe("library: pull → OCI layout tar → push", () => {
  it("copies an image between registries in a dozen lines, with progress events per blob", async () => {
    // ---- the library user's code
    const events: TransferProgress[] = [];
    const onProgress = (ev: TransferProgress): void => void events.push(ev);
    const store = new BlobStore(join(work, "store"));
    const pulled = await pullImage(`${from.host}/lib/src:v1`, { store, platform: parsePlatform("linux/amd64"), onProgress });
    const tar = join(work, "out", "src.tar");
    await writeOciLayout(pulled.source, { dest: tar, tar: true, tags: ["src:v1"] });
    const pushed = await pushImage(pulled.source, [`${to.host}/lib/copy:v1`], { store, onProgress });
    // ----

    expect(pulled.source.manifest.digest).toBe(layout.root.digest);
    expect(pulled.source.format).toBe("oci");
    expect(pulled.source.layers.map((l) => l.digest)).toEqual(layout.images[0].layers.map((l) => l.digest));
    expect(pulled.source.layers.every((l) => l.diffID?.startsWith("sha256:"))).toBe(true);
    expect(pushed.digest).toBe(layout.root.digest);
    const skopeo = JSON.parse(execFileSync("skopeo", ["inspect", "--raw", `oci-archive:${tar}:v1`], { encoding: "utf8" })) as { layers: Array<{ digest: string }> };
    expect(skopeo.layers.map((l) => l.digest)).toEqual(layout.images[0].layers.map((l) => l.digest));
    expect(await status(to, `/v2/lib/copy/manifests/v1`)).toBe(200);

    for (const kind of ["pull-progress", "push-progress"] as const) {
      const mine = events.filter((e) => e.type === kind);
      for (const d of [...layout.images[0].layers, layout.images[0].config]) {
        const forBlob = mine.filter((e) => e.digest === d.digest);
        expect(forBlob.at(-1)).toMatchObject({ state: "done", bytes: d.size, total: d.size });
        expect(forBlob.every((e) => e.bytes <= e.total && e.total === d.size)).toBe(true);
      }
    }
    // the big layer is reported while it streams, not only at its end
    expect(events.some((e) => e.type === "pull-progress" && e.digest === bigLayer() && e.state === "progress" && e.bytes < e.total)).toBe(true);
    expect(events.some((e) => e.type === "push-progress" && e.digest === bigLayer() && e.state === "progress" && e.bytes < e.total)).toBe(true);
  }, 60_000);

  it("an AbortSignal cancels a pull mid-blob: AbortError, and no partial blob in the store", async () => {
    const ac = new AbortController();
    const store = new BlobStore(join(work, "store-abort"));
    let cutAt = -1;
    const onProgress = (ev: TransferProgress): void => {
      if (ev.digest === bigLayer() && ev.state === "progress" && ev.bytes < ev.total && cutAt < 0) {
        cutAt = ev.bytes;
        ac.abort();
      }
    };
    const err = await pullImage(`${from.host}/lib/src:v1`, { store, platform: parsePlatform("linux/amd64"), onProgress, signal: ac.signal }).catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(cutAt).toBeGreaterThan(0);
    expect(await store.has(bigLayer())).toBe(false);
    expect(existsSync(store.tmpDir) ? readdirSync(store.tmpDir) : []).toEqual([]);
  }, 60_000);

  it("an AbortSignal cancels a push mid-blob: AbortError, and no manifest at the destination", async () => {
    const store = new BlobStore(join(work, "store"));
    const pulled = await pullImage(`${from.host}/lib/src:v1`, { store, platform: parsePlatform("linux/amd64"), pull: "missing" });
    const ac = new AbortController();
    let cutAt = -1;
    const onProgress = (ev: TransferProgress): void => {
      if (ev.type === "push-progress" && ev.digest === bigLayer() && ev.state === "progress" && ev.bytes < ev.total && cutAt < 0) {
        cutAt = ev.bytes;
        ac.abort();
      }
    };
    const err = await pushImage(pulled.source, [`${to.host}/lib/cut:v1`], { onProgress, signal: ac.signal }).catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(cutAt).toBeGreaterThan(0);
    expect(await status(to, `/v2/lib/cut/manifests/v1`)).toBe(404);
    expect(await status(to, `/v2/lib/cut/blobs/${bigLayer()}`)).toBe(404);
  }, 60_000);

  it("an AbortSignal cancels a layout tar write mid-blob: AbortError, no tar and no temp file", async () => {
    const store = new BlobStore(join(work, "store"));
    const pulled = await pullImage(`${from.host}/lib/src:v1`, { store, platform: parsePlatform("linux/amd64"), pull: "missing" });
    const ac = new AbortController();
    const cutting: ImageSource = {
      ...pulled.source,
      open: (d) => {
        const s = pulled.source.open(d);
        if (d === bigLayer()) s.once("data", () => ac.abort());
        return s;
      },
    };
    const dir = join(work, "cut-out");
    await mkdir(dir, { recursive: true });
    const err = await writeOciLayout(cutting, { dest: join(dir, "image.tar"), tar: true, signal: ac.signal }).catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  }, 60_000);
});
