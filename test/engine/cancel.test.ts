// Cancelling build() through BuildOptions.signal, in process, against a fault-injecting loopback
// registry (test/registry/fake-registry.ts): during a base-image pull that stalls mid-blob, and
// during a cache export whose upload stalls. Each time build() rejects with an AbortError (cause:
// the signal's reason) within 2 s of the abort, and nothing half-written is left: no output
// layout, no partial blob in the store, no cache manifest, no iidfile.
import { describe, it, expect, afterEach } from "vitest";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AbortError, BlobStore, build, pushLayout, verifyLayout, type BuildEvent } from "../../src/index.js";
import { startFakeRegistry, type FakeRegistry } from "../registry/fake-registry.js";
import { makeLayout, tempDir } from "../registry/harness.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function temp(prefix: string): string {
  const d = tempDir(prefix);
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

async function registry(hook: Parameters<typeof startFakeRegistry>[0] extends infer O ? (O extends { hook?: infer H } ? H : never) : never): Promise<FakeRegistry> {
  const reg = await startFakeRegistry({ hook });
  cleanups.push(() => reg.close());
  return reg;
}

/** A context with a Dockerfile and one file to COPY (no RUN: no isolation needed). */
async function context(dockerfile: string): Promise<string> {
  const dir = temp("kiln-cancel-ctx-");
  await writeFile(join(dir, "Dockerfile"), dockerfile);
  await writeFile(join(dir, "hello.txt"), "hello\n");
  return dir;
}

function storeTmp(cacheDir: string): string[] {
  const tmp = new BlobStore(cacheDir).tmpDir;
  return existsSync(tmp) ? readdirSync(tmp) : [];
}

describe("build() cancellation", () => {
  it("aborting during a base-image pull that stalls mid-blob rejects with AbortError within 2 s, leaving no output and no partial blob", async () => {
    const big = randomBytes(4 * 1024 * 1024);
    const layout = await makeLayout({ layers: 1, layerSize: 1024, shareLayers: [big] });
    cleanups.push(() => rm(layout.dir, { recursive: true, force: true }));
    const bigDigest = layout.images[0].layers[0]!.digest;
    let stalled = false;
    const ac = new AbortController();
    let abortedAt = 0;
    const reg = await registry((req, res) => {
      if (stalled || req.method !== "GET" || !req.url?.endsWith(`/blobs/${bigDigest}`)) return false;
      // the slow registry: headers and 64 KiB of the layer, then nothing more
      stalled = true;
      const bytes = reg.blobs.get(bigDigest)!;
      res.writeHead(200, { "content-length": String(bytes.length), "docker-content-digest": bigDigest });
      res.write(bytes.subarray(0, 64 * 1024));
      setTimeout(() => {
        abortedAt = Date.now();
        ac.abort(new Error("user pressed ^C"));
      }, 300);
      return true;
    });
    await pushLayout(layout.dir, "v1", [`${reg.host}/lib/base:v1`], {});
    const ctx = await context(`FROM ${reg.host}/lib/base:v1\nCOPY hello.txt /hello.txt\n`);
    const cacheDir = temp("kiln-cancel-cache-");
    const out = join(temp("kiln-cancel-out-"), "layout");
    const events: BuildEvent[] = [];
    const err = await build({
      context: ctx,
      cacheDir,
      outputs: [{ type: "oci", dest: out, tar: false }],
      iidfile: join(ctx, "iid"),
      signal: ac.signal,
      onEvent: (e) => void events.push(e),
    }).catch((e: unknown) => e);
    const took = Date.now() - abortedAt;
    expect(stalled).toBe(true);
    expect(err).toBeInstanceOf(AbortError);
    expect((err as AbortError).name).toBe("AbortError");
    expect((err as AbortError).cause).toBe(ac.signal.reason);
    expect(took).toBeLessThan(2000);
    // the pull's progress reached onEvent as structured events, never as info text
    expect(events.some((e) => e.type === "pull-progress" && e.digest === bigDigest && e.state === "progress" && e.bytes > 0 && e.bytes < e.total)).toBe(true);
    expect(events.some((e) => e.type === "info" && /pull|push/.test(e.message))).toBe(false);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(join(ctx, "iid"))).toBe(false);
    expect(await new BlobStore(cacheDir).has(bigDigest)).toBe(false);
    expect(storeTmp(cacheDir)).toEqual([]);
  }, 60_000);

  it("aborting during a cache export whose upload stalls rejects with AbortError within 2 s (even with ignore-error=true); no cache manifest, no iidfile", async () => {
    const ac = new AbortController();
    let abortedAt = 0;
    let stalled = false;
    const reg = await registry((req, res) => {
      // the cache's first upload request is answered with silence
      if (!req.url?.startsWith("/v2/lib/cache/blobs/uploads")) return false;
      if (!stalled) {
        stalled = true;
        setTimeout(() => {
          abortedAt = Date.now();
          ac.abort(new Error("user pressed ^C"));
        }, 300);
      }
      void res;
      return true;
    });
    const ctx = await context("FROM scratch\nCOPY hello.txt /hello.txt\n");
    const cacheDir = temp("kiln-cancel-cache-");
    const outDir = temp("kiln-cancel-out-");
    const out = join(outDir, "layout");
    await mkdir(outDir, { recursive: true });
    const err = await build({
      context: ctx,
      cacheDir,
      outputs: [{ type: "oci", dest: out, tar: false }],
      cacheTo: [`type=registry,ref=${reg.host}/lib/cache:1,mode=max,ignore-error=true`],
      iidfile: join(outDir, "iid"),
      signal: ac.signal,
    }).catch((e: unknown) => e);
    const took = Date.now() - abortedAt;
    expect(stalled).toBe(true);
    expect(err).toBeInstanceOf(AbortError);
    expect((err as AbortError).cause).toBe(ac.signal.reason);
    expect(took).toBeLessThan(2000);
    expect([...reg.manifests.keys()].filter((k) => k.startsWith("lib/cache"))).toEqual([]);
    expect(existsSync(join(outDir, "iid"))).toBe(false);
    // the layout output was complete before the export started: whole, never half-written
    if (existsSync(out)) await verifyLayout(out);
    expect(readdirSync(outDir).filter((n) => n !== "layout")).toEqual([]);
    expect(storeTmp(cacheDir)).toEqual([]);
  }, 60_000);

  it("a signal aborted before build() starts rejects at once with AbortError", async () => {
    const ac = new AbortController();
    ac.abort();
    const ctx = await context("FROM scratch\nCOPY hello.txt /hello.txt\n");
    const err = await build({ context: ctx, cacheDir: temp("kiln-cancel-cache-"), outputs: [{ type: "oci", dest: join(ctx, "out"), tar: false }], signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect((err as AbortError).cause).toBe(ac.signal.reason);
    expect(existsSync(join(ctx, "out"))).toBe(false);
  });
});
