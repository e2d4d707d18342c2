// Shared by the differential comparisons (compare-buildah.mjs, compare-docker.mjs): their common
// command line, child-process helpers, the case folders of testdata/conformance (Dockerfile,
// case.json, context copy with whole-second mtimes), the kiln-built busybox base, kiln's side of
// every case (build + umoci unpack), the known-difference filter and the PASS/FAIL worker pool.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { wholeSecondMtimes } from "./compare-trees.mjs";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const kilnBin = join(repo, "bin", "kiln");

/**
 * The common options: --cases a,b --cases-dir DIR --base LAYOUT --jobs N --isolation M
 * --snapshotter S --keep. Prints `usage` (a one-line summary) and exits 2 on a bad argument.
 */
export function parseCompareArgs(script, argv, usageLine) {
  const opts = { cases: null, casesDir: join(repo, "testdata", "conformance"), base: null, jobs: 3, keep: false, isolation: "auto", snapshotter: "auto" };
  const usage = (msg) => {
    if (msg) console.error(`${script}: ${msg}`);
    console.error(`usage: ${usageLine}`);
    process.exit(msg ? 2 : 0);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === "--cases") opts.cases = val().split(",").map((s) => s.trim()).filter(Boolean);
    else if (a === "--cases-dir") opts.casesDir = resolve(val());
    else if (a === "--base") opts.base = resolve(val());
    else if (a === "--jobs") opts.jobs = Math.max(1, Number(val()) || 1);
    else if (a === "--keep") opts.keep = true;
    else if (a === "--isolation") opts.isolation = val();
    else if (a === "--snapshotter") opts.snapshotter = val();
    else if (a === "-h" || a === "--help") usage(null);
    else usage(`unknown argument ${a}`);
  }
  if (!["auto", "overlay", "dir"].includes(opts.snapshotter)) usage("--snapshotter must be auto, overlay or dir");
  return opts;
}

/** Runs a command to completion: { code, stdout, stderr } (never rejects). */
export function runAsync(cmd, args, { env, cwd } = {}) {
  return new Promise((resolveRun) => {
    const child = spawn(cmd, args, { cwd: cwd ?? repo, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const out = [];
    const err = [];
    child.stdout.on("data", (b) => out.push(b));
    child.stderr.on("data", (b) => err.push(b));
    child.on("error", (e) => resolveRun({ code: 127, stdout: "", stderr: String(e.message) }));
    child.on("close", (code, signal) =>
      resolveRun({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }),
    );
  });
}

export function lastLines(s, n = 3) {
  return s.trim().split("\n").filter(Boolean).slice(-n).join(" | ");
}

/** runAsync that throws `${what} failed (exit N): last lines` on a non-zero exit. */
export async function must(cmd, args, what, env) {
  const r = await runAsync(cmd, args, { env });
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
  return r;
}

export function hasTool(tool) {
  return spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
}

/**
 * The case names to run (folders of casesDir holding a Dockerfile, not starting with "_"), or a
 * usage error via `die` for an unknown one.
 */
export function selectCases(opts, die) {
  if (!existsSync(opts.casesDir)) die(`no cases directory ${opts.casesDir}`);
  const all = readdirSync(opts.casesDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith("_") && existsSync(join(opts.casesDir, d.name, "Dockerfile")))
    .map((d) => d.name)
    .sort();
  const cases = opts.cases ?? all;
  for (const c of cases) if (!all.includes(c)) die(`unknown case ${c} (cases: ${all.join(", ")})`);
  return cases;
}

/** A case's folder, case.json (or {}) and --build-arg flags. */
export function readCase(opts, name) {
  const dir = join(opts.casesDir, name);
  const cfgPath = join(dir, "case.json");
  const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) : {};
  const buildArgs = Object.entries(cfg.buildArgs ?? {}).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]);
  return { dir, cfg, buildArgs };
}

/**
 * A copy of the case folder as build context, with whole-second mtimes: Docker truncates
 * sub-second mtimes in layer tars (BuildKit/containerd write PAX headers with the time truncated;
 * kiln does the same) while buildah's Go tar writer rounds them in USTAR headers, so any file whose
 * mtime has a fraction of .5 s or more (a fresh checkout's) would differ by a second for the
 * oracle's reason, not kiln's.
 */
export function prepareContext(dir, ctx) {
  cpSync(dir, ctx, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  wholeSecondMtimes(ctx);
}

/** The kiln snapshotter `--snapshotter` resolves to here (overlay or dir). */
export async function kilnSnapshotter(work, requested) {
  const { resolveSnapshotter } = await import(new URL(`file://${join(repo, "dist", "snapshot", "rootfs.js")}`).href);
  return (await resolveSnapshotter(join(work, "probe"), requested)).snapshotter;
}

/** Builds the busybox base (testdata/conformance/_base + the host's /bin/busybox) with kiln into work/base-layout. */
export async function buildBase(work) {
  const ctx = join(work, "base-context");
  cpSync(join(repo, "testdata", "conformance", "_base"), ctx, { recursive: true });
  copyFileSync("/bin/busybox", join(ctx, "busybox"));
  const layout = join(work, "base-layout");
  await must(process.execPath, [kilnBin, "build", "--progress", "quiet", "--cache-dir", join(work, "base-cache"), "-o", `type=oci,dest=${layout}`, "-t", "base:latest", ctx], "kiln build of the busybox base");
  return layout;
}

/** kiln's build of a case (FROM base = the base layout) into the OCI layout `layout` (`extra`: more flags, e.g. --platform). */
export function kilnBuild(opts, { name, dir, ctx, cw, layout, baseLayout, buildArgs, extra = [] }) {
  return runAsync(process.execPath, [kilnBin, "build", "--isolation", opts.isolation, "--snapshotter", opts.snapshotter, "--progress", "plain", "--cache-dir", join(cw, "kiln-cache"), "-o", `type=oci,dest=${layout}`, "-t", `case-${name}:latest`,
    "--build-context", `base=oci-layout://${baseLayout}:latest`, ...buildArgs, ...extra, "-f", join(dir, "Dockerfile"), ctx]);
}

async function readJson(path) {
  return JSON.parse(await readFile(path, "utf8"));
}

/** The "latest" image of an OCI layout: { manifest, config, layerFiles }. */
export async function manifestOf(layout) {
  const index = await readJson(join(layout, "index.json"));
  const desc = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === "latest") ?? index.manifests[0];
  const blob = (d) => join(layout, "blobs", d.replace(":", "/"));
  const manifest = await readJson(blob(desc.digest));
  const config = await readJson(blob(manifest.config.digest));
  return { manifest, config, layerFiles: manifest.layers.map((l) => blob(l.digest)) };
}

/**
 * For a case whose case.json says "expectFailure": "why": both builds must fail (kiln's error
 * must name a Dockerfile line). Returns { diffs, known: 0 }, or null for a case that expects
 * success.
 */
export function expectedFailure(cfg, kr, or, oracle) {
  if (!cfg.expectFailure) return null;
  const diffs = [];
  if (kr.code === 0) diffs.push(`kiln build succeeded; the case expects a failure (${cfg.expectFailure})`);
  else if (!/Dockerfile:\d+/.test(kr.stderr)) diffs.push(`kiln's error names no Dockerfile line: ${lastLines(kr.stderr, 2)}`);
  if (or.code === 0) diffs.push(`${oracle} build succeeded; the case expects a failure (${cfg.expectFailure})`);
  return { diffs, known: 0 };
}

/**
 * Applies a case's known differences (`entries`: [{ line, why, snapshotter? }], an entry with
 * "snapshotter" only for that kiln snapshotter) to its difference lines: { diffs, known }, where
 * diffs are the unexpected lines plus one line per known difference no longer seen.
 */
export function applyKnown(diffs, entries, snapshotter, oracle) {
  const known = (entries ?? []).filter((k) => (k.snapshotter ?? snapshotter) === snapshotter).map((k) => k.line);
  const unexpected = diffs.filter((d) => !known.includes(d));
  const gone = known.filter((k) => !diffs.includes(k)).map((k) => `known ${oracle} difference no longer seen (update case.json): ${k}`);
  return { diffs: [...unexpected, ...gone], known: diffs.length - unexpected.length };
}

/**
 * Runs `runCase(name)` for every case, `jobs` at a time, printing "PASS name (Ns)", "SKIP name
 * (why)" or "FAIL name" with up to 40 difference lines, and a final "N passed, N failed" line.
 * runCase resolves { diffs, known } or { skip: "why" }. Returns the failed case names.
 */
export async function runCases(cases, jobs, runCase, oracle) {
  const results = new Map();
  let skipped = 0;
  let nextCase = 0;
  async function worker() {
    while (nextCase < cases.length) {
      const name = cases[nextCase++];
      const t0 = Date.now();
      let r;
      try {
        r = await runCase(name);
      } catch (e) {
        r = { diffs: [`error: ${e instanceof Error ? e.message : String(e)}`], known: 0 };
      }
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      if (r.skip) {
        skipped++;
        results.set(name, []);
        console.log(`SKIP ${name} (${r.skip})`);
        continue;
      }
      const { diffs, known = 0 } = r;
      results.set(name, diffs);
      const note = known ? `, ${known} known ${oracle} difference${known > 1 ? "s" : ""}` : "";
      if (diffs.length === 0) console.log(`PASS ${name} (${secs}s${note})`);
      else {
        const shown = diffs.slice(0, 40).map((d) => `    ${d}`);
        if (diffs.length > 40) shown.push(`    ... and ${diffs.length - 40} more`);
        console.log(`FAIL ${name} (${secs}s${note})\n${shown.join("\n")}`);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(jobs, cases.length) }, worker));
  const failed = cases.filter((c) => results.get(c).length > 0);
  const skipNote = skipped ? `, ${skipped} skipped` : "";
  console.log(`${cases.length - failed.length - skipped} passed, ${failed.length} failed${skipNote}${failed.length ? ` (${failed.join(", ")})` : ""}`);
  return failed;
}

