// The build cache of multi-platform builds: a step's key includes its platform (the same COPY of
// the same file for arm64 after amd64 misses, with another key, and each platform's rebuild then
// hits), and a registry cache exported by a `--platform linux/amd64,linux/arm64` build keeps one
// record per step per platform: an empty machine building either platform alone from it hits
// every step.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { expectBuilt, kiln, mustRun } from "../helpers/kiln.js";
import { useRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());
const registry = useRegistry();

interface Step {
  instruction: string;
  key: string;
  cached: boolean;
  platform?: string;
}

async function context(): Promise<string> {
  const ctx = await temps.make("kiln-mpc-ctx-");
  await mkdir(join(ctx, "files"));
  await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nARG TARGETARCH\nCOPY common.txt /common.txt\nCOPY files/${TARGETARCH}.txt /arch.txt\nENV A=$TARGETARCH\n");
  await writeFile(join(ctx, "common.txt"), "the same bytes on every platform\n");
  await writeFile(join(ctx, "files", "amd64.txt"), "x86-64\n");
  await writeFile(join(ctx, "files", "arm64.txt"), "aarch64\n");
  return ctx;
}

async function build(ctx: string, cacheDir: string, platform: string, extra: string[] = []): Promise<Step[]> {
  const out = await temps.make("kiln-mpc-out-");
  const meta = join(out, "meta.json");
  expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cacheDir, "--platform", platform, "--metadata-file", meta, "-o", `type=oci,dest=${join(out, "layout")}`, ...extra, ctx]));
  return (JSON.parse(await readFile(meta, "utf8")) as { "kiln.steps": Step[] })["kiln.steps"];
}

describe("multi-platform build cache", () => {
  it("keys each step on its platform: arm64's COPY of the same file misses after amd64's, and each rebuild hits", async () => {
    const ctx = await context();
    const cache = await temps.make("kiln-mpc-cache-");
    const amd = await build(ctx, cache, "linux/amd64");
    const arm = await build(ctx, cache, "linux/arm64");
    const common = (steps: Step[]): Step => steps.find((s) => s.instruction.startsWith("COPY common.txt"))!;
    expect(common(amd).cached).toBe(false);
    expect(common(arm).cached).toBe(false);
    expect(common(arm).key).not.toBe(common(amd).key);
    expect(arm.every((s) => !s.cached)).toBe(true);
    expect((await build(ctx, cache, "linux/amd64")).every((s) => s.cached)).toBe(true);
    expect((await build(ctx, cache, "linux/arm64")).map((s) => s.key)).toEqual(arm.map((s) => s.key));
  });

  it("a registry cache from a two-platform build has one record per step per platform; either platform alone hits it all", async () => {
    const ctx = await context();
    const ref = `${registry().host}/cache/mp:buildcache`;
    const both = await build(ctx, await temps.make("kiln-mpc-a-"), "linux/amd64,linux/arm64", ["--cache-to", `type=registry,ref=${ref},mode=max`]);
    expect(new Set(both.map((s) => s.platform))).toEqual(new Set(["linux/amd64", "linux/arm64"]));

    // the cache manifest's config lists the records: as many for arm64 as for amd64, keys distinct
    const manifest = JSON.parse((await mustRun("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${ref}`])).stdout) as { config: { digest: string } };
    const res = await fetch(`http://${registry().host}/v2/cache/mp/blobs/${manifest.config.digest}`);
    const doc = (await res.json()) as { records: Array<{ key: string; config: { architecture: string } }> };
    const perArch = (a: string): string[] => doc.records.filter((r) => r.config.architecture === a).map((r) => r.key);
    expect(perArch("amd64").length).toBe(both.filter((s) => s.platform === "linux/amd64").length);
    expect(perArch("arm64").length).toBe(perArch("amd64").length);
    expect(new Set([...perArch("amd64"), ...perArch("arm64")]).size).toBe(doc.records.length);

    for (const platform of ["linux/arm64", "linux/amd64"]) {
      const steps = await build(ctx, await temps.make("kiln-mpc-b-"), platform, ["--cache-from", `type=registry,ref=${ref}`]);
      expect(steps.length).toBeGreaterThan(0);
      expect(steps.every((s) => s.cached), platform).toBe(true);
      expect(steps.map((s) => s.key)).toEqual(both.filter((s) => s.platform === platform).map((s) => s.key));
    }
  });
});
