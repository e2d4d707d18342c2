// BlobStore.putBytes: a string, a buffer and the same bytes in parts are one blob (digest and
// content), on both of its ways (small blobs written synchronously, large ones through promises);
// its directories are made when missing, and a blob it holds is not written again.
import { afterAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobStore } from "../../src/store/blob-store.js";

const roots: string[] = [];
afterAll(async () => {
  await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
});

async function newStore(): Promise<BlobStore> {
  const root = await mkdtemp(join(tmpdir(), "kiln-blob-store-"));
  roots.push(root);
  return new BlobStore(root);
}

describe("BlobStore.putBytes", () => {
  for (const [what, size] of [["a small blob", 3000], ["a blob over the synchronous size", 3 * 1024 * 1024]] as const) {
    it(`stores ${what} given whole or in parts as the same blob, making its directories`, async () => {
      const store = await newStore();
      const bytes = Buffer.alloc(size, "xyz");
      const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
      const parts = [bytes.subarray(0, 7), bytes.subarray(7, 7), bytes.subarray(7, size - 1), bytes.subarray(size - 1)];
      expect(await store.putBytes(parts)).toEqual({ digest, size });
      expect(await store.readBytes(digest as `sha256:${string}`)).toEqual(bytes);
      const before = await stat(store.path(digest as `sha256:${string}`));
      expect(await store.putBytes(bytes)).toEqual({ digest, size });
      expect(await store.putBytes(bytes.toString("latin1"))).toEqual({ digest, size });
      expect((await stat(store.path(digest as `sha256:${string}`))).ino).toBe(before.ino);
      expect(await readdir(store.tmpDir)).toEqual([]);
    });
  }
});
