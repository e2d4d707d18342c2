// The library's build() under an AbortSignal: aborted during a RUN, a base image pull (mid-blob)
// or a COPY, it rejects with an AbortError (name "AbortError", the signal's reason as its cause),
// kills the step's processes, leaves no root filesystem, run directory or mount behind and writes
// no output.
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build, pushLayout, type BuildEvent } from "../../src/index.js";
import { useBusyboxBase } from "../helpers/busybox.js";
import { startRegistry, type LocalRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";
import { makeLayout, type TestLayout } from "../registry/harness.js";

const temps = new TempDirs();
const base = useBusyboxBase();
let registry: LocalRegistry;
let layout: TestLayout;

beforeAll(async () => {
  registry = await startRegistry();
  // a layer big enough (16 MiB) to be cut in the middle of its transfer
  layout = await makeLayout({ layers: 1, layerSize: 4096, shareLayers: [randomBytes(16 * 1024 * 1024)] });
  await pushLayout(layout.dir, "v1", [`${registry.host}/abort/base:v1`], {});
}, 60_000);
afterAll(async () => {
  await registry?.stop();
  await temps.cleanup();
});

async function context(dockerfile: string, files: Record<string, Buffer> = {}): Promise<string> {
  const ctx = await temps.make("kiln-abort-ctx-");
  await writeFile(join(ctx, "Dockerfile"), dockerfile);
  for (const [name, data] of Object.entries(files)) await writeFile(join(ctx, name), data);
  return ctx;
}

/** What a build leaves under its cache dir besides the store: work trees, run dirs, temp dirs, mounts. */
async function leftovers(cacheDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const kind of ["rootfs", "run"]) out.push(...(await readdir(join(cacheDir, kind)).catch(() => [] as string[])).map((n) => `${kind}/${n}`));
  out.push(...(await readdir(join(cacheDir, "tmp")).catch(() => [] as string[])).filter((n) => n.startsWith("build-")).map((n) => `tmp/${n}`));
  const mounts = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").filter((l) => l.includes(cacheDir));
  return [...out, ...mounts];
}

function processesWith(marker: string): string[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker);
      } catch {
        return false;
      }
    });
}

async function abortedBuild(ctx: string, abortWhen: (e: BuildEvent) => boolean, extra: Record<string, unknown> = {}): Promise<{ err: unknown; reason: Error; cacheDir: string; out: string; ms: number }> {
  const dir = await temps.make("kiln-abort-");
  const cacheDir = join(dir, "cache");
  const out = join(dir, "out");
  const ac = new AbortController();
  const reason = new Error("stop now");
  let abortedAt = 0;
  const err = await build({
    context: ctx,
    cacheDir,
    buildContexts: { base: base().buildContext },
    outputs: [{ type: "oci", dest: out, tar: false }],
    insecureRegistries: [registry.host],
    signal: ac.signal,
    onEvent: (e) => {
      if (!ac.signal.aborted && abortWhen(e)) {
        abortedAt = Date.now();
        ac.abort(reason);
      }
    },
    ...extra,
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { err, reason, cacheDir, out, ms: abortedAt ? Date.now() - abortedAt : -1 };
}

function expectAbortError(err: unknown, reason: Error): void {
  expect(err, "the build did not reject").toBeInstanceOf(Error);
  expect((err as Error).name, String(err)).toBe("AbortError");
  expect((err as Error).cause).toBe(reason);
}

describe("library: build() with an AbortSignal", () => {
  for (const isolation of ["chroot", "oci"] as const) {
    it(`aborted during a RUN: AbortError with the reason, the step's processes gone, nothing left (${isolation})`, async () => {
      const marker = `MARK${randomBytes(6).toString("hex")}`;
      const ctx = await context(`FROM base\nRUN echo started && sleep 600 && : ${marker}\n`);
      const r = await abortedBuild(ctx, (e) => e.type === "step-log" && e.data.toString().includes("started"), { isolation });
      expectAbortError(r.err, r.reason);
      expect(r.ms).toBeGreaterThanOrEqual(0);
      expect(r.ms).toBeLessThan(10_000);
      expect(processesWith(marker)).toEqual([]);
      expect(await leftovers(r.cacheDir)).toEqual([]);
      await expect(readdir(r.out)).rejects.toThrow();
    });
  }

  it("aborted during a base image pull, mid-blob: AbortError with the reason, no partial blob, no output", async () => {
    const big = layout.images[0]!.layers[0]!.digest;
    const ctx = await context(`FROM ${registry.host}/abort/base:v1\nENV A=1\n`);
    const r = await abortedBuild(ctx, (e) => e.type === "pull-progress" && e.digest === big && e.state === "progress" && e.bytes < e.total);
    expectAbortError(r.err, r.reason);
    expect(r.ms).toBeGreaterThanOrEqual(0);
    const blobs = await readdir(join(r.cacheDir, "blobs", "sha256")).catch(() => [] as string[]);
    expect(blobs).not.toContain(big.slice(7));
    expect(await leftovers(r.cacheDir)).toEqual([]);
    await expect(readdir(r.out)).rejects.toThrow();
  });

  it("aborted during a COPY: AbortError with the reason, no output", async () => {
    const ctx = await context("FROM base\nCOPY big /big\n", { big: randomBytes(32 * 1024 * 1024) });
    const r = await abortedBuild(ctx, (e) => e.type === "step-start" && e.text.startsWith("COPY"));
    expectAbortError(r.err, r.reason);
    expect(await leftovers(r.cacheDir)).toEqual([]);
    await expect(readdir(r.out)).rejects.toThrow();
  });

  it("a signal aborted before the build starts rejects at once", async () => {
    const ctx = await context("FROM base\nRUN true\n");
    const reason = new Error("never mind");
    const dir = await temps.make("kiln-abort-pre-");
    await mkdir(join(dir, "cache"));
    const err = await build({ context: ctx, cacheDir: join(dir, "cache"), buildContexts: { base: base().buildContext }, outputs: [], signal: AbortSignal.abort(reason) }).catch((e: unknown) => e);
    expectAbortError(err, reason);
  });
});
