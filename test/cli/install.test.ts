// The published package as a user installs it: `npm pack` gives a tarball with the compiled dist/
// (no TypeScript, no prepare step at install time), `npm install -g` of it in a scratch prefix gives
// a working `kiln` command that builds the bundled example, and the library imports as "kiln-build".
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/kiln.js";

const exec = promisify(execFile);
let scratch: string | undefined;
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("the npm package", () => {
  it("packs dist/ without sources or tests, installs globally without a build step, and builds", async () => {
    scratch = await mkdtemp(join(tmpdir(), "kiln-install-"));
    const npmEnv = { ...process.env, npm_config_update_notifier: "false" };
    // --ignore-scripts: the suite has compiled dist/ already; a user's `npm pack` runs prepack (tsc)
    const packed = await exec("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch], { cwd: REPO_ROOT, env: npmEnv, maxBuffer: 64 << 20 });
    const info = (JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[])[0]!;
    expect(info.filename).toMatch(/^kiln-build-\d+\.\d+\.\d+\.tgz$/);
    const paths = info.files.map((f) => f.path);
    expect(paths).toContain("dist/cli/main.js");
    expect(paths).toContain("dist/index.d.ts");
    expect(paths).toContain("bin/kiln");
    // kiln run's start-time bundle (scripts/bundle-cli.mjs)
    expect(paths).toContain("dist/bundle/run/main.js");
    expect(paths.filter((p) => p.startsWith("src/") || p.startsWith("test/") || p.endsWith(".ts") && !p.endsWith(".d.ts"))).toEqual([]);

    const prefix = join(scratch, "prefix");
    await exec("npm", ["install", "-g", "--prefer-offline", "--no-audit", "--no-fund", "--prefix", prefix, join(scratch, info.filename)], { env: npmEnv, maxBuffer: 64 << 20 });
    const installed = join(prefix, "lib", "node_modules", "kiln-build");
    // no TypeScript compiler was needed or installed
    expect(await readdir(join(installed, "node_modules")).catch(() => [])).not.toContain("typescript");

    const bin = join(prefix, "bin", "kiln");
    const version = await exec(bin, ["--version"]);
    expect(version.stdout.trim()).toMatch(/^kiln \d+\.\d+\.\d+/);
    // the bundle finds its dependencies in the installed package's node_modules
    const runHelp = await exec(bin, ["run", "--help"]);
    expect(runHelp.stdout).toMatch(/^Usage: kiln run \[OPTIONS\] IMAGE/m);

    const out = join(scratch, "out");
    const example = join(REPO_ROOT, "testdata", "examples", "hello");
    const built = await exec(bin, ["build", "--progress", "plain", "--cache-dir", join(scratch, "cache"), "-f", join(example, "Dockerfile"), "-t", "hello:1", "--output", `type=oci,dest=${out}`, example]);
    expect(built.stderr).toMatch(/sha256:[0-9a-f]{64}/);
    const verified = await exec(bin, ["verify", out]);
    expect(verified.stdout + verified.stderr).toMatch(/ok|verified/i);

    // resolved by its name from the prefix's node_modules, as `import ... from "kiln-build"` is
    const lib = await exec(process.execPath, ["--input-type=module", "-e", `const k = await import("kiln-build"); console.log(typeof k.build, typeof k.pullImage, k.VERSION);`], { cwd: join(prefix, "lib") });
    expect(lib.stdout.trim()).toMatch(/^function function \d+\.\d+\.\d+/);
  }, 180_000);
});
