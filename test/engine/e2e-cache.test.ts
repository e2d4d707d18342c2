// The build cache end to end: which steps hit after which change (context edits, ignored files,
// mtime-only touches, build args, secrets, a changed stage behind COPY --from), full hits that
// run nothing, a cache shared through a real registry between two "machines" (two cache dirs),
// and two builds racing on one cache directory.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFile, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { useBusyboxBase } from "../helpers/busybox.js";
import { expectBuilt, kiln, verify } from "../helpers/kiln.js";
import { startRegistry, type LocalRegistry } from "../helpers/registry.js";
import { TempDirs, copyCase } from "../helpers/temp.js";

interface Step {
  stage: string;
  instruction: string;
  cached: boolean;
}

const SDE = "1700000000";
const temps = new TempDirs();
const base = useBusyboxBase();
let ctx: string;
let secret: string;

beforeAll(async () => {
  ctx = await copyCase(temps, "cache-steps");
  secret = join(await temps.make("kiln-secret-"), "tok");
  await writeFile(secret, "first secret");
});
afterAll(() => temps.cleanup());

async function build(cacheDir: string, extra: string[] = []): Promise<{ digest: string; steps: Step[] }> {
  const out = await temps.make("kiln-cache-out-");
  const meta = join(out, "meta.json");
  const r = await kiln(
    [
      "build", "--progress", "quiet", "--cache-dir", cacheDir,
      "--build-context", `base=${base().buildContext}`,
      "--secret", `id=tok,src=${secret}`,
      "--metadata-file", meta,
      "-o", `type=oci,dest=${join(out, "layout")}`,
      ...extra, ctx,
    ],
    { env: { SOURCE_DATE_EPOCH: SDE } },
  );
  const digest = expectBuilt(r);
  await verify(join(out, "layout"));
  const steps = (JSON.parse(await readFile(meta, "utf8")) as { "kiln.steps": Step[] })["kiln.steps"];
  return { digest, steps };
}

/** "hit"/"miss" per layer step, keyed by a short label. */
function pattern(steps: Step[]): string[] {
  return steps.map((s) => `${s.instruction.split(" ").slice(0, 2).join(" ")}:${s.cached ? "hit" : "miss"}`);
}

describe("build cache", () => {
  let cacheDir: string;
  let first: { digest: string; steps: Step[] };

  it("a second build hits every step, runs nothing and gives the same digest", async () => {
    cacheDir = await temps.make("kiln-cache-");
    first = await build(cacheDir);
    expect(first.steps.every((s) => !s.cached)).toBe(true);
    const second = await build(cacheDir);
    // /stamp holds a random uuid: the same digest proves that RUN did not run again.
    expect(second.digest).toBe(first.digest);
    expect(second.steps.length).toBe(first.steps.length);
    expect(second.steps.every((s) => s.cached)).toBe(true);
  });

  it("an ignored file, an mtime-only touch and a secret's content miss nothing", async () => {
    await writeFile(join(ctx, "ignored.txt"), "changed but ignored\n");
    const later = new Date(Date.now() + 60_000);
    await utimes(join(ctx, "a.txt"), later, later);
    await writeFile(secret, "another secret");
    const r = await build(cacheDir);
    expect(r.steps.every((s) => s.cached)).toBe(true);
    expect(r.digest).toBe(first.digest);
  });

  it("a build arg misses only the steps that see it; an identical result lets later steps hit", async () => {
    // "onx" | cut -c1-2 == "one" | cut -c1-2: the RUN re-runs into a byte-identical layer.
    const r = await build(cacheDir, ["--build-arg", "A=onx"]);
    expect(pattern(r.steps)).toEqual([
      "COPY a.txt:hit",
      "RUN --mount=type=secret,id=tok:hit",
      "RUN echo:miss",
      "COPY b.txt:hit",
      "COPY --from=build:hit",
    ]);
    expect(r.digest).toBe(first.digest);
    const other = await build(cacheDir, ["--build-arg", "A=zzz"]);
    expect(pattern(other.steps)).toEqual([
      "COPY a.txt:hit",
      "RUN --mount=type=secret,id=tok:hit",
      "RUN echo:miss",
      "COPY b.txt:miss",
      "COPY --from=build:miss",
    ]);
  });

  it("changing a file a COPY selects misses that COPY, what follows, and COPY --from of the stage", async () => {
    await writeFile(join(ctx, "b.txt"), "beta 2\n");
    const r = await build(cacheDir);
    expect(pattern(r.steps)).toEqual([
      "COPY a.txt:hit",
      "RUN --mount=type=secret,id=tok:hit",
      "RUN echo:hit",
      "COPY b.txt:miss",
      "COPY --from=build:miss",
    ]);
    // The final stage copies only /stamp, which did not change: the re-copied layer is identical.
    expect(r.digest).toBe(first.digest);
  });

  it("--no-cache runs everything; --no-cache-filter only the named stage", async () => {
    const all = await build(cacheDir, ["--no-cache"]);
    expect(all.steps.every((s) => !s.cached)).toBe(true);
    const filtered = await build(cacheDir, ["--no-cache-filter", "build"]);
    expect(filtered.steps.filter((s) => s.stage === "build").every((s) => !s.cached)).toBe(true);
  });

  it("two builds started at once on one cache directory both succeed, and the cache stays whole", async () => {
    const shared = await temps.make("kiln-cache-shared-");
    // Both miss and run the random /stamp step, so their digests differ; each is verified by build().
    const [a, b] = await Promise.all([build(shared), build(shared)]);
    const again = await build(shared);
    expect([a.digest, b.digest]).toContain(again.digest);
    expect(again.steps.every((s) => s.cached)).toBe(true);
  });
});

describe("a cache shared through a registry", () => {
  let registry: LocalRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(() => registry.stop());

  it("machine B, empty, hits every step that machine A exported (mode=max)", async () => {
    const ref = `${registry.host}/cache/kiln:buildcache`;
    const a = await build(await temps.make("kiln-cache-a-"), ["--cache-to", `type=registry,ref=${ref},mode=max`]);
    const b = await build(await temps.make("kiln-cache-b-"), ["--cache-from", `type=registry,ref=${ref}`]);
    expect(b.digest).toBe(a.digest);
    expect(b.steps.every((s) => s.cached)).toBe(true);
  });

  it("a type=local cache directory works the same way", async () => {
    const dir = join(await temps.make("kiln-cache-local-"), "cache");
    const a = await build(await temps.make("kiln-cache-a-"), ["--cache-to", `type=local,dest=${dir},mode=max`]);
    const b = await build(await temps.make("kiln-cache-b-"), ["--cache-from", `type=local,src=${dir}`]);
    expect(b.digest).toBe(a.digest);
    expect(b.steps.every((s) => s.cached)).toBe(true);
  });
});
