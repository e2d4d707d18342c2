// bin/kiln's choice of what to load: a command with a start-time bundle (scripts/bundle-cli.mjs,
// dist/bundle/<command>/) loads from it while it is at least as new as the compiled tree, the tree
// otherwise (a tsc run after the bundle); both give the same answers. Observed with a module hook
// that records every file Node loads, in a scratch copy of the package (bin/, package.json, and
// dist/ whose bundle's time is set), so the checkout's own dist/ is never touched.
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, stat, symlink, utimes, writeFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import module from "node:module";
import { join, posix } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/kiln.js";

const exec = promisify(execFile);
let scratch: string;
let pkg: string;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "kiln-launcher-"));
  pkg = join(scratch, "pkg");
  await mkdir(join(pkg, "dist"), { recursive: true });
  await cp(join(REPO_ROOT, "bin"), join(pkg, "bin"), { recursive: true });
  await cp(join(REPO_ROOT, "package.json"), join(pkg, "package.json"));
  await symlink(join(REPO_ROOT, "node_modules"), join(pkg, "node_modules"));
  // the compiled tree as it is (its modules resolve to the checkout's files), the bundle copied
  for (const entry of await readdir(join(REPO_ROOT, "dist"))) {
    if (entry !== "bundle") await symlink(join(REPO_ROOT, "dist", entry), join(pkg, "dist", entry));
  }
  await cp(join(REPO_ROOT, "dist", "bundle"), join(pkg, "dist", "bundle"), { recursive: true });
  // records each file: URL the program loads (the hooks run on Node's loader thread)
  await writeFile(
    join(scratch, "record.mjs"),
    `import { register } from "node:module";\nregister("data:text/javascript," + encodeURIComponent(${JSON.stringify(
      `import { appendFileSync } from "node:fs";\nexport async function load(url, context, next) {\n  if (url.startsWith("file:")) appendFileSync(process.env.KILN_TEST_LOADS, url + "\\n");\n  return next(url, context);\n}\n`,
    )}));\n`,
  );
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Sets the bundle's main.js `seconds` from the compiled tree's main.js. */
async function ageBundle(seconds: number): Promise<void> {
  const tree = (await stat(join(REPO_ROOT, "dist", "cli", "main.js"))).mtime.getTime() / 1000;
  await utimes(join(pkg, "dist", "bundle", "run", "main.js"), tree + seconds, tree + seconds);
}

/** `kiln ARGS` from the scratch package: exit code, output and the files it loaded (relative to the package). */
async function kiln(args: string[], tag: string): Promise<{ code: number; out: string; loads: string[] }> {
  const log = join(scratch, `loads-${tag}.txt`);
  const env = { ...process.env, KILN_TEST_LOADS: log };
  let code = 0;
  let out = "";
  try {
    const r = await exec(process.execPath, ["--import", join(scratch, "record.mjs"), join(pkg, "bin", "kiln"), ...args], { env });
    out = r.stdout + r.stderr;
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    code = e.code;
    out = e.stdout + e.stderr;
  }
  const urls = (await readFile(log, "utf8").catch(() => "")).split("\n").filter(Boolean);
  const loads = urls.map((u) => decodeURIComponent(new URL(u).pathname)).map((p) => (p.startsWith(pkg) ? p.slice(pkg.length + 1) : p.startsWith(REPO_ROOT) ? p.slice(REPO_ROOT.length).replace(/^\/?/, "repo:") : p));
  return { code, out, loads };
}

/** `file` (relative to dist/) and the compiled modules it imports, as the recorded loads name them. */
async function treeModulesOf(file: string, seen = new Set<string>()): Promise<Set<string>> {
  const key = `repo:dist/${file}`;
  if (seen.has(key)) return seen;
  seen.add(key);
  const text = await readFile(join(REPO_ROOT, "dist", file), "utf8");
  for (const m of text.matchAll(/from\s+"(\.[^"]+)"/g)) await treeModulesOf(posix.join(posix.dirname(file), m[1]!), seen);
  return seen;
}

const RUN_MISSING = (cache: string): string[] => ["run", "--cache-dir", cache, "--pull", "never", "no-such-image:1", "true"];

describe("bin/kiln", () => {
  it("loads `kiln run` from its bundle when the bundle is as new as the compiled tree", async () => {
    await ageBundle(10);
    const r = await kiln(RUN_MISSING(join(scratch, "cache-a")), "fresh");
    expect(r.code).toBe(125);
    expect(r.out).toMatch(/^error: kiln run: .*no-such-image:1/m);
    expect(r.loads).toContain("dist/bundle/run/main.js");
    // none of the compiled tree's modules (the bundle holds them) but the compile cache's set-up (Node >= 22.1)
    const setup = await treeModulesOf("cli/compile-cache.js");
    expect(r.loads.filter((p) => p.startsWith("repo:dist/") && !setup.has(p))).toEqual([]);
    if (!("enableCompileCache" in module)) expect(r.loads.filter((p) => p.startsWith("repo:dist/"))).toEqual([]);
    expect(r.loads.filter((p) => p.startsWith("dist/bundle/run/")).length).toBeLessThan(15);
  });

  it("loads the compiled tree when the bundle is older (a tsc run after it), with the same answer", async () => {
    await ageBundle(10);
    const fresh = await kiln(RUN_MISSING(join(scratch, "cache-b")), "fresh-b");
    await ageBundle(-10);
    const stale = await kiln(RUN_MISSING(join(scratch, "cache-b")), "stale");
    expect(stale.code).toBe(fresh.code);
    expect(stale.out).toBe(fresh.out);
    expect(stale.loads.some((p) => p.startsWith("dist/bundle/"))).toBe(false);
    expect(stale.loads).toContain("repo:dist/cli/main.js");
    expect(stale.loads).toContain("repo:dist/container/run.js");
  });

  it("loads the compiled tree for commands without a bundle, and the bundle's version is the package's", async () => {
    await ageBundle(10);
    const version = await kiln(["--version"], "version");
    expect(version.loads.some((p) => p.startsWith("dist/bundle/"))).toBe(false);
    const { version: pkgVersion } = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    expect(version.out.trim()).toBe(`kiln ${pkgVersion}`);
    const help = await kiln(["run", "--help"], "run-help");
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: kiln run \[OPTIONS\] IMAGE/m);
    expect(help.loads).toContain("dist/bundle/run/main.js");
    const lint = await kiln(["lint", "--help"], "lint-help");
    expect(lint.code).toBe(0);
    expect(lint.loads.some((p) => p.startsWith("dist/bundle/"))).toBe(false);
    // the bundle carries the package's version (dist/version.js reads package.json beside dist/)
    const chunks = await readdir(join(pkg, "dist", "bundle", "run"));
    const texts = await Promise.all(chunks.map((c) => readFile(join(pkg, "dist", "bundle", "run", c), "utf8")));
    expect(texts.some((t) => t.includes(`VERSION = ${JSON.stringify(pkgVersion)}`))).toBe(true);
  });
});
