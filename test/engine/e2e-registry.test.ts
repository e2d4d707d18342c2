// kiln build with registries end to end, against the real distribution registry: push a built
// image, use it as `FROM` in another build (pulled by reference, not from a layout), push that
// to another repository (base layers cross-repo mounted, not uploaded), push again (nothing
// uploaded), and check what skopeo sees.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expectBuilt, kiln, run } from "../helpers/kiln.js";
import { startRegistry, type LocalRegistry } from "../helpers/registry.js";
import { TempDirs, casePath } from "../helpers/temp.js";

const temps = new TempDirs();
let registry: LocalRegistry;
beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await registry.stop();
  await temps.cleanup();
});

function uploads(): number {
  return registry.access().filter((a) => (a.method === "PUT" || a.method === "PATCH") && a.path.includes("/blobs/uploads/")).length;
}

async function skopeoDigest(ref: string): Promise<string> {
  const r = await run("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${ref}`]);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout.trim();
}

describe("build, push, and build FROM the pushed image", () => {
  it("pulls a pushed base by reference, mounts its layers into another repository, and re-pushes nothing", async () => {
    const cache = await temps.make("kiln-reg-cache-");
    const baseRef = `${registry.host}/kiln/base:1`;
    const base = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--push", "--provenance=false", "-t", baseRef, casePath("metadata")]);
    const baseDigest = expectBuilt(base);
    expect(await skopeoDigest(baseRef)).toBe(baseDigest);

    // A second machine (empty cache) builds FROM the pushed image.
    const ctx = await temps.make("kiln-reg-ctx-");
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, "Dockerfile"), `FROM ${baseRef}\nCOPY extra.txt /extra.txt\nLABEL child=yes\n`);
    await writeFile(join(ctx, "extra.txt"), "child\n");
    const childRef = `${registry.host}/kiln/child:1`;
    const before = uploads();
    const child = await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-reg-cache2-"), "--push", "--provenance=false", "-t", childRef, ctx]);
    const childDigest = expectBuilt(child);
    expect(await skopeoDigest(childRef)).toBe(childDigest);
    // Only the new COPY layer (and config) was uploaded: the base layers were mounted from kiln/base.
    const mounts = registry.access().filter(
      (a) => a.method === "POST" && a.path.includes("mount=") && (a.path.includes("from=kiln%2Fbase") || a.path.includes("from=kiln/base")),
    );
    expect(mounts.length).toBeGreaterThan(0);
    const uploadedForChild = uploads() - before;
    expect(uploadedForChild).toBe(2);

    // Pushing the same image again uploads no blob.
    const again = uploads();
    const layout = join(await temps.make("kiln-reg-layout-"), "layout");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "-o", `type=oci,dest=${layout}`, "-t", "base:1", casePath("metadata")]);
    expectBuilt(r);
    const push = await kiln(["push", `${layout}:1`, baseRef, `${registry.host}/kiln/base:again`]);
    expect(push.code).toBe(0);
    expect(uploads()).toBe(again);
  });

  it("kiln pull writes the pushed image to a layout that verifies, with the same digest", async () => {
    const ref = `${registry.host}/kiln/pulled:1`;
    const pushed = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-pull-c1-"), "--push", "--provenance=false", "-t", ref, casePath("metadata")]));
    const dest = join(await temps.make("kiln-pull-out-"), "layout");
    const r = await kiln(["pull", ref, "--cache-dir", await temps.make("kiln-pull-c2-"), "--output", `type=oci,dest=${dest}`]);
    expect(r.code, r.stderr).toBe(0);
    // per-blob progress: one line per downloaded blob (config and layers), digest first
    expect(r.stderr.split("\n").filter((l) => /^sha256:[0-9a-f]{12}  pulled \S+ \S+ at /.test(l)).length, r.stderr).toBeGreaterThanOrEqual(2);
    expect(r.stdout.trim()).toBe(pushed);
    const v = await kiln(["verify", dest]);
    expect(v.code, v.stderr).toBe(0);
    const inspect = await run("skopeo", ["inspect", "--format", "{{.Digest}}", `oci:${dest}:1`]);
    expect(inspect.stdout.trim()).toBe(pushed);
  });

  it("a missing tag is one clear error line and exit 1", async () => {
    const ctx = await temps.make("kiln-reg-missing-");
    await writeFile(join(ctx, "Dockerfile"), `FROM ${registry.host}/kiln/nope:1\n`);
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-reg-c-"), "-o", `type=oci,dest=${join(ctx, "out")}`, ctx]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: Dockerfile:1: FROM: .*nope/);
  });
});
