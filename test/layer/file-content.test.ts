// Tests for the direct host-file read path (hostFileOpener) of the tar writer and for block
// recycling in writeLayer: same bytes as the stream path, exact size checks, no symlink
// following, and digests that do not depend on either fast path.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { createHash } from "node:crypto";
import { appendFileSync, createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import { DirContext } from "../../src/context/build-context.js";
import { copyEntries } from "../../src/context/copy-entries.js";
import { selectSources } from "../../src/context/select.js";
import { KilnError } from "../../src/errors.js";
import { BlockPool, GZIP_BLOCK_SIZE, gzipStream } from "../../src/layer/compress.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import { hostFileOpener, hostPathOf } from "../../src/layer/file-content.js";
import { tarStream } from "../../src/layer/tar-writer.js";
import { LayerView } from "../../src/layer/view.js";
import { writeLayer } from "../../src/layer/write-layer.js";
import { BlobStore } from "../../src/store/blob-store.js";

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 };
const sha = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/** Deterministic content that compresses somewhat (text with a counter). */
function content(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = i % 7 === 0 ? (x >>> 24) & 0xff : 97 + (i % 23);
  }
  return b;
}

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), "kiln-fc-"));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Files of awkward sizes (empty, < 512, chunk-sized, several chunks, odd) on disk. */
function makeFiles(): Array<{ path: string; abs: string; size: number }> {
  const sizes = [0, 1, 511, 512, 513, 70_000, GZIP_BLOCK_SIZE, GZIP_BLOCK_SIZE - 1, 9 * 1024 * 1024 + 3, 300, 4 * GZIP_BLOCK_SIZE + 511];
  return sizes.map((size, i) => {
    const abs = join(tmp, `f${i}`);
    writeFileSync(abs, content(size, i + 1));
    return { path: `d/f${i}`, abs, size };
  });
}

function entriesFor(files: Array<{ path: string; abs: string; size: number }>, direct: boolean): LayerEntry[] {
  return [
    { ...base, path: "d", type: "dir", mode: 0o755, size: 0 },
    ...files.map((f): LayerEntry => ({
      ...base,
      path: f.path,
      type: "file",
      size: f.size,
      open: direct ? hostFileOpener(f.abs) : () => createReadStream(f.abs),
    })),
  ];
}

describe("hostFileOpener", () => {
  it("is a working opener that carries its path; other openers carry none", async () => {
    const abs = join(tmp, "x");
    writeFileSync(abs, "hello");
    const open = hostFileOpener(abs);
    expect(hostPathOf(open)).toBe(abs);
    expect((await collect(open())).toString()).toBe("hello");
    expect(hostPathOf(() => createReadStream(abs))).toBeUndefined();
    expect(hostPathOf(undefined)).toBeUndefined();
  });

  it("gives the tar writer the same bytes as streaming the files", async () => {
    const files = makeFiles();
    const direct = await collect(tarStream(entriesFor(files, true)));
    const streamed = await collect(tarStream(entriesFor(files, false)));
    expect(direct.length).toBe(streamed.length);
    expect(sha(direct)).toBe(sha(streamed));
    // and the content really is in there: the 70,000-byte file follows its header
    const at = direct.indexOf(content(70_000, 6).subarray(0, 4096));
    expect(at).toBeGreaterThan(0);
    expect(at % 512).toBe(0);
  });

  it("fails with one clear line when a file is shorter or longer than its size", async () => {
    const abs = join(tmp, "grow");
    writeFileSync(abs, "abc");
    const entry = (size: number): LayerEntry => ({ ...base, path: "grow", type: "file", size, open: hostFileOpener(abs) });
    await expect(collect(tarStream([entry(5)]))).rejects.toThrow(/^layer: "grow": content is 3 bytes, expected 5$/);
    await expect(collect(tarStream([entry(2)]))).rejects.toThrow(/^layer: "grow": content is longer than its size 2$/);
    await expect(collect(tarStream([entry(0)]))).rejects.toThrow(/longer than its size 0/);
    // a large file that shrinks below its size (read in several slices)
    const big = join(tmp, "big");
    writeFileSync(big, content(6 * GZIP_BLOCK_SIZE, 3));
    truncateSync(big, 5 * GZIP_BLOCK_SIZE + 7);
    const bigEntry: LayerEntry = { ...base, path: "big", type: "file", size: 6 * GZIP_BLOCK_SIZE, open: hostFileOpener(big) };
    await expect(collect(tarStream([bigEntry]))).rejects.toThrow(new RegExp(`content is ${5 * GZIP_BLOCK_SIZE + 7} bytes, expected ${6 * GZIP_BLOCK_SIZE}`));
    appendFileSync(abs, "more");
    await expect(collect(tarStream([entry(3)]))).rejects.toThrow(KilnError);
  });

  it("reports a missing file and never follows a symlink at the file's place", async () => {
    const gone: LayerEntry = { ...base, path: "gone", type: "file", size: 3, open: hostFileOpener(join(tmp, "nope")) };
    await expect(collect(tarStream([gone]))).rejects.toThrow(/^layer: "gone": cannot read content: ENOENT/);
    const secret = join(tmp, "secret");
    writeFileSync(secret, "TOPSECRET");
    const link = join(tmp, "link");
    symlinkSync(secret, link);
    const swapped: LayerEntry = { ...base, path: "f", type: "file", size: 9, open: hostFileOpener(link) };
    const err = await collect(tarStream([swapped])).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KilnError);
    expect(String((err as Error).message)).toMatch(/^layer: "f": cannot read content: ELOOP/);
  });
});

describe("writeLayer with recycled blocks", () => {
  it("writes the same blob as compressing the plain tar with fresh buffers", async () => {
    const files = makeFiles();
    // many small files between the big ones, so chunks hold several entries
    mkdirSync(join(tmp, "small"));
    for (let i = 0; i < 300; i++) {
      const abs = join(tmp, "small", `s${i}`);
      writeFileSync(abs, content(1000 + i * 37, 100 + i));
      files.push({ path: `d/s${String(i).padStart(3, "0")}`, abs, size: 1000 + i * 37 });
    }
    const store = new BlobStore(join(tmp, "store"));
    const layer = await writeLayer(entriesFor(files, true), store);
    const blob = readFileSync(store.path(layer.descriptor.digest));
    expect(sha(blob)).toBe(layer.descriptor.digest);
    const tar = await collect(tarStream(entriesFor(files, false)));
    expect(sha(gunzipSync(blob))).toBe(sha(tar));
    expect(layer.diffID).toBe(sha(tar));
    expect(layer.uncompressedSize).toBe(tar.length);
    // the reference: the tar fed to a pool-less parallel gzip in odd-sized pieces
    const g = gzipStream();
    const out = collect(g);
    for (let off = 0; off < tar.length; off += 300_007) g.write(tar.subarray(off, off + 300_007));
    g.end();
    expect(sha(await out)).toBe(layer.descriptor.digest);
  });

  it("gzip with a pool gives the bytes of gzip without one", async () => {
    const pool = new BlockPool(4);
    const data = content(5 * GZIP_BLOCK_SIZE + 1234, 9);
    const withPool = gzipStream({ pool });
    const a = collect(withPool);
    for (let off = 0; off < data.length; off += GZIP_BLOCK_SIZE) {
      const chunk = pool.acquire();
      const n = data.copy(chunk, 0, off, off + GZIP_BLOCK_SIZE);
      withPool.write(n === GZIP_BLOCK_SIZE ? chunk : chunk.subarray(0, n));
    }
    withPool.end();
    const plain = gzipStream();
    const b = collect(plain);
    plain.end(data);
    const [x, y] = await Promise.all([a, b]);
    expect(sha(x)).toBe(sha(y));
    expect(gunzipSync(x).equals(data)).toBe(true);
  });
});

describe("COPY reads context files directly", () => {
  it("copyEntries gives context files host-path openers with the right content", async () => {
    const ctxDir = join(tmp, "ctx");
    mkdirSync(join(ctxDir, "src"), { recursive: true });
    writeFileSync(join(ctxDir, "src", "a.txt"), "A");
    writeFileSync(join(ctxDir, "top.txt"), "TOP");
    const ctx = new DirContext(ctxDir);
    const sources = await selectSources(ctx, ["src", "top.txt"]);
    const entries = await copyEntries({ kind: "COPY", sources, dest: "/app/", workdir: "/", view: LayerView.empty(), timestamp: 0 });
    const files = entries.filter((e) => e.type === "file");
    expect(files.map((e) => e.path)).toEqual(["app/a.txt", "app/top.txt"]);
    for (const f of files) expect(hostPathOf(f.open)).toBeDefined();
    const tar = await collect(tarStream(entries));
    expect(tar.includes(Buffer.from("TOP"))).toBe(true);
  });
});
