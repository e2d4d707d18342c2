// Push and pull against a fault-injecting in-process registry: throttling, 5xx bursts, dropped
// connections, Location forms, ECR-style 201 PATCH, chunked uploads with 416 recovery,
// cross-host redirects (Authorization must not follow), and lying registries.
import { describe, it, expect, afterEach } from "vitest";
import { readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { BlobStore } from "../../src/store/blob-store.js";
import { pullImage } from "../../src/registry/pull.js";
import { pushLayout } from "../../src/registry/push.js";
import { KilnError } from "../../src/errors.js";
import { parsePlatform } from "../../src/image/platform.js";
import type { TransferProgress } from "../../src/registry/options.js";
import { startFakeRegistry, type FakeRegistry } from "./fake-registry.js";
import { makeLayout, tempDir, type TestLayout } from "./harness.js";

const amd64 = parsePlatform("linux/amd64");
const fast = { retry: { attempts: 6, baseDelayMs: 5, maxDelayMs: 2000 } };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup(opts: Parameters<typeof startFakeRegistry>[0] = {}, layoutOpts: Parameters<typeof makeLayout>[0] = {}): Promise<{ reg: FakeRegistry; layout: TestLayout }> {
  const reg = await startFakeRegistry(opts);
  const layout = await makeLayout({ layers: 3, layerSize: 50_000, ...layoutOpts });
  cleanups.push(() => reg.close(), () => rm(layout.dir, { recursive: true, force: true }));
  return { reg, layout };
}

function store(): BlobStore {
  const d = tempDir("kiln-fstore-");
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return new BlobStore(d);
}

async function listFiles(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

function expectPushed(reg: FakeRegistry, layout: TestLayout, repo: string): void {
  for (const l of layout.images[0].layers) expect(reg.blobs.has(l.digest)).toBe(true);
  expect(reg.manifests.get(`${repo}:${layout.root.digest}`)).toBeDefined();
}

describe("fault injection", () => {
  it("waits for Retry-After on 429", async () => {
    let throttled = 0;
    const { reg, layout } = await setup({
      hook: (req, res) => {
        if (req.method === "POST" && throttled === 0) {
          throttled++;
          res.writeHead(429, { "retry-after": "1", "content-type": "application/json" });
          res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
          return true;
        }
        return false;
      },
    });
    const t0 = Date.now();
    const r = await pushLayout(layout.dir, "v1", [`${reg.host}/a/b:v1`], fast);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(r.digest).toBe(layout.root.digest);
    expect(throttled).toBe(1);
    expectPushed(reg, layout, "a/b");
  });

  it("rides out 500/503 bursts on push and pull", async () => {
    let failures = 0;
    const { reg, layout } = await setup({
      hook: (req, res, n) => {
        if (n.count % 3 === 0 && failures < 12 && req.method !== "PUT") {
          failures++;
          res.writeHead(failures % 2 ? 503 : 500);
          res.end("busy");
          return true;
        }
        return false;
      },
    });
    const r = await pushLayout(layout.dir, "v1", [`${reg.host}/a/b:v1`], fast);
    expect(r.digest).toBe(layout.root.digest);
    const pulled = await pullImage(`${reg.host}/a/b:v1`, { ...fast, store: store(), platform: amd64 });
    expect(pulled.manifestDescriptor.digest).toBe(layout.root.digest);
    expect(failures).toBeGreaterThan(3);
  });

  it("gives up after the bounded attempts with one line", async () => {
    const { reg, layout } = await setup({
      hook: (req, res) => {
        if (req.method === "POST") {
          res.writeHead(503);
          res.end("down");
          return true;
        }
        return false;
      },
    });
    const err = await pushLayout(layout.dir, "v1", [`${reg.host}/a/b:v1`], { retry: { attempts: 3, baseDelayMs: 1 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as Error).message).toMatch(/503/);
    expect((err as Error).message).not.toContain("\n");
    expect(reg.requests.filter((r) => r.method === "POST").length).toBeLessThanOrEqual(3 * 4);
  });

  it("restarts a blob from its HEAD when the connection drops mid-upload", async () => {
    let dropped = 0;
    const { reg, layout } = await setup({
      hook: (req, res) => {
        if (req.method === "PUT" && req.url?.includes("/blobs/uploads/") && dropped < 2) {
          dropped++;
          let seen = 0;
          req.on("data", (c: Buffer) => {
            seen += c.length;
            if (seen > 1000) req.socket.destroy();
          });
          return true;
        }
        return false;
      },
    }, { layerSize: 400_000 });
    const r = await pushLayout(layout.dir, "v1", [`${reg.host}/a/b:v1`], fast);
    expect(r.digest).toBe(layout.root.digest);
    expect(dropped).toBe(2);
    expectPushed(reg, layout, "a/b");
    // the retried blobs started again from HEAD
    const heads = reg.requests.filter((q) => q.method === "HEAD" && q.path.includes("/blobs/"));
    expect(heads.length).toBeGreaterThanOrEqual(4 + 2);
  });

  it("follows relative and absolute Locations, keeping their query", async () => {
    for (const location of ["relative", "absolute"] as const) {
      const { reg, layout } = await setup({ location });
      const r = await pushLayout(layout.dir, "v1", [`${reg.host}/loc/${location}:v1`], fast);
      expect(r.digest).toBe(layout.root.digest);
      expectPushed(reg, layout, `loc/${location}`);
      const puts = reg.requests.filter((q) => q.method === "PUT" && q.path.includes("/blobs/uploads/"));
      expect(puts.length).toBe(4);
      for (const p of puts) expect(p.path).toMatch(/\?_state=[0-9a-f]+&digest=sha256%3A[0-9a-f]{64}$/);
    }
  });

  it("chunked upload: honours OCI-Chunk-Min-Length and recovers from a 416", async () => {
    let forced = false;
    const { reg, layout } = await setup({
      chunkMinLength: 65536,
      hook: (req, res, n) => {
        // answer the second PATCH of the first upload with 416 once, as if it was lost
        if (req.method === "PATCH" && !forced && reg.requests.filter((q) => q.method === "PATCH").length === 2) {
          forced = true;
          req.resume();
          req.on("end", () => {
            const u = new URL(n.path, "http://x");
            res.writeHead(416, { location: u.pathname + u.search, range: "0-65535" });
            res.end();
          });
          return true;
        }
        return false;
      },
    }, { layers: 1, layerSize: 300_000 });
    const events: TransferProgress[] = [];
    const r = await pushLayout(layout.dir, "v1", [`${reg.host}/c/k:v1`], { ...fast, chunkSize: 1000, onProgress: (e) => events.push(e) });
    expect(r.digest).toBe(layout.root.digest);
    expectPushed(reg, layout, "c/k");
    const patches = reg.requests.filter((q) => q.method === "PATCH");
    expect(forced).toBe(true);
    for (const p of patches) expect(p.contentLength).toBeGreaterThan(0);
    const layerSize = layout.images[0].layers[0].size;
    // every chunk except a blob's last is at least the registry's minimum
    const full = patches.filter((p) => (p.contentLength ?? 0) < 65536);
    expect(full.length).toBeLessThanOrEqual(2); // the layer's tail and the small config
    expect(patches.some((p) => p.contentRange === "65536-131071")).toBe(true);
    expect(layerSize).toBeGreaterThan(65536 * 2);
    const done = events.filter((e) => e.state === "done");
    expect(done.length).toBe(2);
    expect(done.every((e) => e.bytes === e.total && e.rate >= 0)).toBe(true);
  });

  it("treats a 201 answer to a PATCH as a finished upload (ECR)", async () => {
    const { reg, layout } = await setup({ patch201: true }, { layers: 2, layerSize: 10_000 });
    const r = await pushLayout(layout.dir, "v1", [`${reg.host}/ecr/app:v1`], { ...fast, chunkSize: 1024 * 1024 });
    expect(r.digest).toBe(layout.root.digest);
    expectPushed(reg, layout, "ecr/app");
    expect(reg.requests.filter((q) => q.method === "PUT" && q.path.includes("/blobs/uploads/")).length).toBe(0);
  });

  it("uploads at most 4 blobs at a time", async () => {
    let active = 0;
    let most = 0;
    const { reg, layout } = await setup({
      hook: async (req) => {
        if (req.method === "PUT" && req.url?.includes("/blobs/uploads/")) {
          active++;
          most = Math.max(most, active);
          await new Promise((r) => setTimeout(r, 60));
          active--;
        }
        return false;
      },
    }, { layers: 9, layerSize: 1000 });
    const r = await pushLayout(layout.dir, "v1", [`${reg.host}/p/q:v1`], fast);
    expect(r.digest).toBe(layout.root.digest);
    expect(most).toBe(4);
  });

  it("does not send Authorization across a redirect to another host", async () => {
    const creds = { user: "u", password: "p" };
    // a "CDN" on another loopback address serving blobs and recording Authorization
    const cdnSeen: Array<string | undefined> = [];
    let regRef: FakeRegistry | undefined;
    const cdn: Server = createServer((req, res) => {
      cdnSeen.push(req.headers.authorization);
      const d = decodeURIComponent((req.url ?? "").split("/").pop() ?? "");
      const data = regRef?.blobs.get(d);
      if (!data) {
        res.writeHead(404);
        return void res.end();
      }
      res.writeHead(200, { "content-length": String(data.length) });
      res.end(data);
    });
    const cdnPort = await new Promise<number>((r) => cdn.listen(0, "127.0.0.2", () => r((cdn.address() as AddressInfo).port)));
    cleanups.push(() => new Promise<void>((r) => cdn.close(() => r())));
    let redirect = false;
    const { reg, layout } = await setup({
      basic: creds,
      hook: (req, res) => {
        const m = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? "");
        if (redirect && req.method === "GET" && m) {
          res.writeHead(307, { location: `http://127.0.0.2:${cdnPort}/cdn/${encodeURIComponent(m[1])}` });
          res.end();
          return true;
        }
        return false;
      },
    });
    regRef = reg;
    const cfg = tempDir("kiln-cfg-");
    cleanups.push(() => rm(cfg, { recursive: true, force: true }));
    await writeFile(join(cfg, "config.json"), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from("u:p").toString("base64") } } }));
    await pushLayout(layout.dir, "v1", [`${reg.host}/r/d:v1`], { ...fast, dockerConfig: cfg });
    redirect = true;
    const pulled = await pullImage(`${reg.host}/r/d:v1`, { ...fast, dockerConfig: cfg, store: store(), platform: amd64 });
    expect(pulled.manifestDescriptor.digest).toBe(layout.root.digest);
    expect(cdnSeen.length).toBe(4); // 3 layers + config fetched from the CDN
    expect(cdnSeen.every((a) => a === undefined)).toBe(true);
    // while the registry itself did get credentials
    expect(reg.requests.some((q) => q.authorization?.startsWith("Basic "))).toBe(true);
  });

  it("a lying registry (wrong blob bytes) fails in one line and leaves nothing in the store", async () => {
    let lie = false;
    const { reg, layout } = await setup({
      hook: (req, res) => {
        if (lie && req.method === "GET" && /\/blobs\/sha256:/.test(req.url ?? "")) {
          // the right length (a wrong one is refused before reading), the wrong bytes
          const size = regRef.blobs.get(decodeURIComponent((req.url ?? "").split("/").pop() ?? ""))?.length ?? 26;
          const body = Buffer.alloc(size, "not the blob you asked for");
          res.writeHead(200, { "content-length": String(body.length) });
          res.end(body);
          return true;
        }
        return false;
      },
    });
    const regRef = reg;
    await pushLayout(layout.dir, "v1", [`${reg.host}/l/i:v1`], fast);
    lie = true;
    const s = store();
    const err = await pullImage(`${reg.host}/l/i:v1`, { ...fast, store: s, platform: amd64 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as Error).message).toMatch(/mismatch/);
    expect((err as Error).message).not.toContain("\n");
    const kept = await listFiles(s.blobDir);
    // only the (verified) manifest may be kept; no blob with the liar's bytes, no temp files
    expect(kept).toEqual([layout.root.digest.slice(7)]);
    expect(await listFiles(s.tmpDir)).toEqual([]);
  });

  it("a lying Docker-Content-Digest on a manifest is refused", async () => {
    const { reg, layout } = await setup({
      hook: (req, res) => {
        if (req.method === "GET" && /\/manifests\/v1$/.test(req.url ?? "")) {
          const v = regRef.manifests.get("m/n:v1");
          res.writeHead(200, { "content-type": v!.mediaType, "docker-content-digest": `sha256:${"0".repeat(64)}` });
          res.end(v!.bytes);
          return true;
        }
        return false;
      },
    });
    const regRef = reg;
    await pushLayout(layout.dir, "v1", [`${reg.host}/m/n:v1`], fast);
    const s = store();
    const err = await pullImage(`${reg.host}/m/n:v1`, { ...fast, store: s, platform: amd64 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as Error).message).toMatch(/Docker-Content-Digest sha256:0+ does not match/);
    expect(await listFiles(s.blobDir)).toEqual([]);
  });

  it("an unknown host fails fast in one line", async () => {
    const t0 = Date.now();
    const err = await pullImage("nonexistent.invalid/a/b:1", { store: store(), platform: amd64, retry: { attempts: 3, baseDelayMs: 5 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as Error).message).toMatch(/^cannot reach registry nonexistent\.invalid: .*ENOTFOUND/);
    expect((err as Error).message).not.toContain("\n");
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("pull never with nothing local is a clear error; missing uses the local record without network", async () => {
    const { reg, layout } = await setup();
    await pushLayout(layout.dir, "v1", [`${reg.host}/n/v:v1`], fast);
    const s = store();
    const never = await pullImage(`${reg.host}/n/v:v1`, { store: s, platform: amd64, pull: "never" }).catch((e: unknown) => e);
    expect(never).toBeInstanceOf(KilnError);
    expect((never as Error).message).toBe(`image ${reg.host}/n/v:v1 is not in the local store and pull policy is "never"`);
    await pullImage(`${reg.host}/n/v:v1`, { ...fast, store: s, platform: amd64 });
    const before = reg.requests.length;
    await reg.close();
    const again = await pullImage(`${reg.host}/n/v:v1`, { store: s, platform: amd64, pull: "missing" });
    expect(again.manifestDescriptor.digest).toBe(layout.root.digest);
    expect(reg.requests.length).toBe(before);
  });

  it("bearer: refetches a token on insufficient_scope and after expiry", async () => {
    const { reg, layout } = await setup({ bearer: { ttl: 1, extraScope: "repository:meta:pull" } }, { layers: 1 });
    const r = await pushLayout(layout.dir, "v1", [`${reg.host}/b/e:v1`], fast);
    expect(r.digest).toBe(layout.root.digest);
    expect(reg.tokenRequests[0]).toEqual(["repository:b/e:pull,push"]);
    const s = store();
    // the manifest GET asks for an extra scope: the client must ask again with it added
    const pulled = await pullImage(`${reg.host}/b/e:v1`, { ...fast, store: s, platform: amd64 });
    expect(pulled.manifestDescriptor.digest).toBe(layout.root.digest);
    expect(reg.tokenRequests.some((q) => q.includes("repository:b/e:pull") && q.includes("repository:meta:pull"))).toBe(true);
    // tokens live one second (kiln refreshes early); after they expire, pushing again still works
    const before = reg.tokenRequests.length;
    await new Promise((res) => setTimeout(res, 1100));
    const again = await pushLayout(layout.dir, "v1", [`${reg.host}/b/e:v2`], fast);
    expect(again.digest).toBe(layout.root.digest);
    expect(reg.tokenRequests.length).toBeGreaterThan(before);
  });
});

describe("scheme choice on loopback", () => {
  it("tries TLS once against a plain-HTTP loopback registry, then speaks HTTP (no backing off on HTTPS)", async () => {
    const { RegistryClient } = await import("../../src/registry/client.js");
    let tlsAttempts = 0;
    let pings = 0;
    const srv: Server = createServer((req, res) => {
      if (req.url === "/v2/") pings++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
    srv.on("clientError", (_e, sock) => {
      tlsAttempts++; // a TLS ClientHello is not HTTP
      sock.destroy();
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    const client = new RegistryClient(`127.0.0.1:${(srv.address() as AddressInfo).port}`, { retry: { attempts: 5, baseDelayMs: 200, maxDelayMs: 2000 } });
    expect(String(await client.baseURL())).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(tlsAttempts).toBe(1);
    expect(pings).toBe(1);
  });
});
