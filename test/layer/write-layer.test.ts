// Tests for writeLayer: one streaming pass into the blob store, digests, reproducibility, failure
// cleanup, and flat memory on a 1 GiB file.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, openSync, closeSync, ftruncateSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import { writeLayer } from "../../src/layer/write-layer.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { MediaType } from "../../src/image/oci.js";
import type { LayerEntry } from "../../src/layer/entry.js";

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0 };
const file = (path: string, content: string, extra: Partial<LayerEntry> = {}): LayerEntry => {
  const b = Buffer.from(content);
  return { ...base, path, type: "file", size: b.length, open: () => Readable.from([b]), ...extra };
};
const sha = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

let tmp: string;
beforeEach(() => { tmp = mkdtempSync(join(tmpdir(), "kiln-wl-")); });
afterEach(() => { rmSync(tmp, { recursive: true, force: true }); });

describe("writeLayer", () => {
  const entries = (): LayerEntry[] => [
    { ...base, path: "app", type: "dir", mode: 0o755 },
    file("app/main.js", "console.log('hi')\n"),
    file("app/data.txt", "x".repeat(100_000)),
  ];

  it("stores the gzip blob under its digest with diffID of the tar", async () => {
    const store = new BlobStore(join(tmp, "store"));
    const layer = await writeLayer(entries(), store);
    expect(layer.descriptor.mediaType).toBe(MediaType.ociLayerGzip);
    const blob = readFileSync(store.path(layer.descriptor.digest));
    expect(sha(blob)).toBe(layer.descriptor.digest);
    expect(blob.length).toBe(layer.descriptor.size);
    const tar = gunzipSync(blob);
    expect(sha(tar)).toBe(layer.diffID);
    expect(tar.length).toBe(layer.uncompressedSize);
    expect(readdirSync(store.tmpDir)).toEqual([]);
  });

  it("is reproducible across stores and input orders, and respects clampMtime", async () => {
    const a = await writeLayer(entries(), new BlobStore(join(tmp, "s1")));
    const b = await writeLayer(entries().reverse(), new BlobStore(join(tmp, "s2")));
    expect(b.descriptor.digest).toBe(a.descriptor.digest);
    expect(b.diffID).toBe(a.diffID);
    const c = await writeLayer(entries(), new BlobStore(join(tmp, "s3")), { clampMtime: 1000 });
    expect(c.diffID).not.toBe(a.diffID);
    const d = await writeLayer(entries().map((e) => ({ ...e, mtime: 5 })), new BlobStore(join(tmp, "s4")), { clampMtime: 1000 });
    const e = await writeLayer(entries().map((e) => ({ ...e, mtime: 5 })), new BlobStore(join(tmp, "s5")));
    expect(d.diffID).toBe(e.diffID);
  });

  it("gives the same digests on every run (golden values)", async () => {
    const layer = await writeLayer(entries(), new BlobStore(join(tmp, "golden")));
    expect(layer.diffID).toBe("sha256:55a6b37e36f83b34138f15291a173152faa19e442f9d10ee5a58f46a3e432c82");
    expect(layer.descriptor.digest).toBe("sha256:d390cf69b6ba5c0a6405e382fbe96520c2ef6233dfa131a8b3667fb75a546595");
  });

  it("leaves nothing behind when an entry is bad", async () => {
    const store = new BlobStore(join(tmp, "store"));
    await expect(writeLayer([...entries(), file("app/bad", "abc", { size: 10 })], store)).rejects.toThrow(/expected 10/);
    expect(readdirSync(store.tmpDir)).toEqual([]);
    let blobs: string[] = [];
    try { blobs = readdirSync(store.blobDir); } catch { /* never created */ }
    expect(blobs).toEqual([]);
  });

  it("keeps memory flat for a 1 GiB file", async () => {
    const big = join(tmp, "sparse");
    const fd = openSync(big, "w");
    ftruncateSync(fd, 1024 * 1024 * 1024);
    closeSync(fd);
    const store = new BlobStore(join(tmp, "store"));
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
    try {
      const layer = await writeLayer([{ ...base, path: "big", type: "file", size: 1024 * 1024 * 1024, open: () => createReadStream(big, { highWaterMark: 1 << 20 }) }], store, { level: 1 });
      expect(layer.uncompressedSize).toBe(1024 * 1024 * 1024 + 1024 + 512);
      peak = Math.max(peak, process.memoryUsage().rss);
    } finally {
      clearInterval(timer);
    }
    expect(peak - before).toBeLessThan(150 * 1024 * 1024);
  }, 120_000);
});
