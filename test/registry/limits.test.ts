// Registry bodies are bounded by their descriptors and every request is timed (issue #10, escape
// 6), against the fault-injecting registry: a blob whose server announces a huge Content-Length
// or sends an endless body is cut at the descriptor's size with nothing more handed to the disk;
// a server that stalls (before its headers or mid-body) fails within the idle limit with one line
// naming the registry and the blob; a config larger than the cap is refused before it is fetched.
import { describe, it, expect, afterEach } from "vitest";
import { readdir, rm } from "node:fs/promises";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { BlobStore, type BlobInfo } from "../../src/store/blob-store.js";
import { pullImage } from "../../src/registry/pull.js";
import { pushLayout } from "../../src/registry/push.js";
import { parseRegistryTimeout } from "../../src/registry/timeouts.js";
import { KilnError, UsageError } from "../../src/errors.js";
import { parsePlatform } from "../../src/image/platform.js";
import type { Digest } from "../../src/image/oci.js";
import { startFakeRegistry, type FakeRegistry } from "./fake-registry.js";
import { makeLayout, tempDir, type TestLayout } from "./harness.js";

const amd64 = parsePlatform("linux/amd64");
const fast = { retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 20 } };
const LAYER = 50_000;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A real store that also records the most bytes each blob's ingest was handed (what reaches the disk). */
class MeasuredStore extends BlobStore {
  readonly ingested = new Map<string, number>();
  override ingest(source: Readable, expected?: { digest: Digest; size?: number }): Promise<BlobInfo> {
    const key = expected?.digest ?? "?";
    const count = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.ingested.set(key, (this.ingested.get(key) ?? 0) + chunk.length);
        cb(null, chunk);
      },
    });
    pipeline(source, count).catch(() => undefined); // errors reach super.ingest through `count`
    return super.ingest(count, expected);
  }
}

function newStore(): MeasuredStore {
  const d = tempDir("kiln-limits-store-");
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return new MeasuredStore(d);
}

async function files(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

type Hook = NonNullable<Parameters<typeof startFakeRegistry>[0]>["hook"];

/** A registry holding a pushed 1-layer image; `hook` starts answering once the push is done. */
async function pushed(hook: Hook): Promise<{ reg: FakeRegistry; layout: TestLayout; layer: string }> {
  let armed = false;
  const reg = await startFakeRegistry({ hook: (req, res, n) => (armed ? hook!(req, res, n) : false) });
  const layout = await makeLayout({ layers: 1, layerSize: LAYER });
  cleanups.push(() => reg.close(), () => rm(layout.dir, { recursive: true, force: true }));
  await pushLayout(layout.dir, "v1", [`${reg.host}/b/lim:v1`], fast);
  armed = true;
  return { reg, layout, layer: layout.images[0]!.layers[0]!.digest };
}

const isLayerGet = (url: string | undefined, layer: string): boolean => (url ?? "").endsWith(`/blobs/${layer}`);

describe("registry bodies are bounded by the descriptor", () => {
  it("a huge announced Content-Length is refused before anything is written", async () => {
    const { reg, layer, layout } = await pushed((req, res) => {
      if (!isLayerGet(req.url, layer)) return false;
      res.writeHead(200, { "content-length": String(100 * 1024 ** 3) });
      res.write(Buffer.alloc(64 * 1024, 7));
      return true; // and never end
    });
    const s = newStore();
    const err = await pullImage(`${reg.host}/b/lim:v1`, { ...fast, store: s, platform: amd64 }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(KilnError);
    const size = layout.images[0]!.layers[0]!.size;
    expect(err.message).toBe(`registry ${reg.host}: blob ${layer} of b/lim: the server announces ${100 * 1024 ** 3} bytes, the descriptor gives ${size}`);
    expect(await files(s.tmpDir)).toEqual([]);
    expect(s.ingested.get(layer) ?? 0).toBe(0);
  });

  it("an endless body is cut at the descriptor size: no more than that reaches the disk", async () => {
    let sent = 0;
    const { reg, layer, layout } = await pushed((req, res) => {
      if (!isLayerGet(req.url, layer)) return false;
      res.writeHead(200, { "content-type": "application/octet-stream" }); // chunked, no length
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (!res.destroyed && sent < 1024 ** 3) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
      };
      res.on("close", () => (sent = Infinity));
      pump();
      return true;
    });
    const size = layout.images[0]!.layers[0]!.size;
    const s = newStore();
    const t0 = Date.now();
    const err = await pullImage(`${reg.host}/b/lim:v1`, { ...fast, store: s, platform: amd64 }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(KilnError);
    expect(err.message).toBe(`registry ${reg.host}: blob ${layer} of b/lim: the server sent more than the ${size} bytes the descriptor gives`);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(s.ingested.get(layer) ?? 0).toBeLessThanOrEqual(size);
    expect(await files(s.tmpDir)).toEqual([]);
    expect(await s.has(layer as Digest)).toBe(false);
  });

  it("a body shorter than the descriptor is refused", async () => {
    const { reg, layer } = await pushed((req, res) => {
      if (!isLayerGet(req.url, layer)) return false;
      res.writeHead(200, {}); // chunked
      res.end(Buffer.alloc(100));
      return true;
    });
    const s = newStore();
    const err = await pullImage(`${reg.host}/b/lim:v1`, { ...fast, store: s, platform: amd64 }).catch((e: unknown) => e as Error);
    expect(err.message).toMatch(new RegExp(`^registry ${reg.host}: blob ${layer} of b/lim: the server sent 100 of the \\d+ bytes the descriptor gives$`));
  });
});

describe("registry requests are timed", () => {
  it("a server that stalls mid-body fails within the idle limit, naming the registry and the blob", async () => {
    const { reg, layer } = await pushed((req, res) => {
      if (!isLayerGet(req.url, layer)) return false;
      res.writeHead(200, {});
      res.write(Buffer.alloc(1000, 2)); // then silence
      return true;
    });
    const s = newStore();
    const t0 = Date.now();
    const err = await pullImage(`${reg.host}/b/lim:v1`, { retry: { attempts: 1 }, timeouts: { idleMs: 300 }, store: s, platform: amd64 }).catch((e: unknown) => e as Error);
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(KilnError);
    expect(err.message).toBe(`registry ${reg.host}: GET blob ${layer} of b/lim: no data for 0.3 s (idle timeout)`);
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(3000);
    expect(await files(s.tmpDir)).toEqual([]);
  });

  it("a server that never answers fails within the idle limit (retried attempts each bounded)", async () => {
    const { reg, layer } = await pushed((req) => isLayerGet(req.url, layer)); // no headers, ever
    const s = newStore();
    const t0 = Date.now();
    const err = await pullImage(`${reg.host}/b/lim:v1`, { retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 }, timeouts: { idleMs: 300 }, store: s, platform: amd64 }).catch((e: unknown) => e as Error);
    const took = Date.now() - t0;
    expect(err.message).toBe(`registry ${reg.host}: GET /v2/b/lim/blobs/${layer}: no response within 0.3 s (idle timeout)`);
    expect(took).toBeGreaterThanOrEqual(550);
    expect(took).toBeLessThan(4000);
  });

  it("a body that trickles forever hits the total limit", async () => {
    const { reg, layer } = await pushed((req, res) => {
      if (!isLayerGet(req.url, layer)) return false;
      res.writeHead(200, {});
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(Buffer.alloc(1, 3))), 50);
      res.on("close", () => clearInterval(t));
      return true;
    });
    const s = newStore();
    const t0 = Date.now();
    const err = await pullImage(`${reg.host}/b/lim:v1`, { retry: { attempts: 3, baseDelayMs: 5 }, timeouts: { idleMs: 300, totalMs: 700 }, store: s, platform: amd64 }).catch((e: unknown) => e as Error);
    expect(err.message).toBe(`registry ${reg.host}: GET /v2/b/lim/blobs/${layer}: not finished within 0.7 s (total timeout)`);
    expect(Date.now() - t0).toBeLessThan(3000); // the total limit is not retried
  });

  it("--registry-timeout syntax", () => {
    expect(parseRegistryTimeout("45s")).toEqual({ idleMs: 45_000 });
    expect(parseRegistryTimeout("connect=5s,idle=1m,total=2h")).toEqual({ connectMs: 5000, idleMs: 60_000, totalMs: 7_200_000 });
    expect(() => parseRegistryTimeout("read=5s")).toThrow(UsageError);
    expect(() => parseRegistryTimeout("soon")).toThrow(UsageError);
  });
});
