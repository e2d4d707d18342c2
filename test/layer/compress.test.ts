// Tests for deterministic (parallel) gzip and media-type decompression.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";
import { gunzipSync, gzipSync } from "node:zlib";
import { gzipStream, decompressStream, GZIP_BLOCK_SIZE } from "../../src/layer/compress.js";
import { KilnError } from "../../src/errors.js";

async function run(input: Buffer, opts?: Parameters<typeof gzipStream>[0], chunk = 65536): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) parts.push(input.subarray(i, i + chunk));
  const out: Buffer[] = [];
  await pipeline(Readable.from(parts), gzipStream(opts), async function* (src: AsyncIterable<Buffer>) {
    for await (const c of src) out.push(c);
  });
  return Buffer.concat(out);
}

/** Compressible but non-trivial data: text-like 4 KiB pieces, each with pseudo-random bytes mixed in. */
function sample(size: number, seed = 1): Buffer {
  const words = ["alpha", "beta", "gamma", "delta", "layer", "tar", "kiln", "image", "\n", " "];
  let x = seed;
  const next = (): number => (x = (x * 1103515245 + 12345) & 0x7fffffff);
  const piece = Buffer.alloc(4096);
  for (let i = 0; i < piece.length;) i += piece.write(words[next() % words.length]!, i);
  const buf = Buffer.alloc(size);
  for (let off = 0; off < size; off += piece.length) {
    piece.copy(buf, off);
    for (let k = 0; k < 64 && off + k * 61 < size; k++) buf[off + k * 61] = next() & 0xff;
  }
  return buf;
}
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

let tmp: string;
beforeAll(() => { tmp = mkdtempSync(join(tmpdir(), "kiln-gz-")); });
afterAll(() => { rmSync(tmp, { recursive: true, force: true }); });

describe("gzipStream", () => {
  it("writes Go-style header: mtime 0, no name, OS 255", async () => {
    const out = await run(Buffer.from("hello"));
    expect([...out.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    expect((await run(Buffer.from("x"), { level: 9 }))[8]).toBe(2);
    expect((await run(Buffer.from("x"), { level: 1 }))[8]).toBe(4);
  });

  it("parallel output over many blocks decompresses exactly and passes gzip -t", async () => {
    const input = sample(GZIP_BLOCK_SIZE * 5 + 12345);
    const out = await run(input);
    expect(gunzipSync(out).equals(input)).toBe(true);
    const p = join(tmp, "p.gz");
    writeFileSync(p, out);
    execFileSync("gzip", ["-t", p]);
    expect(sha(execFileSync("gzip", ["-dc", p], { maxBuffer: 64 << 20 }))).toBe(sha(input));
    // compresses about as well as plain gzip
    expect(out.length).toBeLessThan(gzipSync(input).length * 1.05);
  });

  it("is deterministic whatever the input chunking", async () => {
    const input = sample(GZIP_BLOCK_SIZE * 3 + 7, 42);
    const a = await run(input, undefined, 65536);
    const b = await run(input, undefined, 1_000_003);
    const c = await run(input, undefined, 4093);
    expect(sha(a)).toBe(sha(b));
    expect(sha(a)).toBe(sha(c));
  });

  it("handles empty input and exact block multiples", async () => {
    for (const input of [Buffer.alloc(0), sample(GZIP_BLOCK_SIZE), sample(GZIP_BLOCK_SIZE * 2)]) {
      const out = await run(input);
      expect(gunzipSync(out).equals(input)).toBe(true);
      const p = join(tmp, "e.gz");
      writeFileSync(p, out);
      execFileSync("gzip", ["-t", p]);
    }
  });

  it("serial mode and levels give valid, deterministic output", async () => {
    const input = sample(3_000_000, 7);
    const s1 = await run(input, { parallel: false });
    const s2 = await run(input, { parallel: false }, 12345);
    expect(sha(s1)).toBe(sha(s2));
    expect(gunzipSync(s1).equals(input)).toBe(true);
    const p = join(tmp, "s.gz");
    writeFileSync(p, s1);
    execFileSync("gzip", ["-t", p]);
    expect([...s1.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    const fast = await run(input, { level: 1 });
    const best = await run(input, { level: 9 });
    expect(gunzipSync(fast).equals(input)).toBe(true);
    expect(gunzipSync(best).equals(input)).toBe(true);
    expect(best.length).toBeLessThan(fast.length);
    expect(() => gzipStream({ level: 12 })).toThrow(KilnError);
  });
});

describe("decompressStream", () => {
  it("picks gunzip for gzip media types and passthrough for plain tar", async () => {
    const input = sample(100_000);
    const gz = gzipSync(input);
    for (const mt of ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip"]) {
      const out: Buffer[] = [];
      await pipeline(Readable.from([gz]), decompressStream(mt), async function* (src: AsyncIterable<Buffer>) { for await (const c of src) out.push(c); });
      expect(Buffer.concat(out).equals(input)).toBe(true);
    }
    const out: Buffer[] = [];
    await pipeline(Readable.from([input]), decompressStream("application/vnd.oci.image.layer.v1.tar"), async function* (src: AsyncIterable<Buffer>) { for await (const c of src) out.push(c); });
    expect(Buffer.concat(out).equals(input)).toBe(true);
  });

  it("reports unsupported types as KilnError", () => {
    expect(() => decompressStream("application/x-foo")).toThrow(KilnError);
  });

  it("decodes zstd on this runtime, whether zlib has zstd or not", async () => {
    const input = Buffer.from("zstd layer content\n".repeat(1000));
    const packed = execFileSync("zstd", ["-q", "-c"], { input });
    const out: Buffer[] = [];
    await pipeline(Readable.from([packed]), decompressStream("application/vnd.oci.image.layer.v1.tar+zstd"), async function* (src: AsyncIterable<Buffer>) { for await (const c of src) out.push(c); });
    expect(Buffer.concat(out).equals(input)).toBe(true);
  });
});
