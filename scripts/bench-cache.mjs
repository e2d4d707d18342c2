#!/usr/bin/env node
// Benchmark for the build cache (the cache issue's benchmark): a 12-instruction Dockerfile on a
// Debian bookworm minbase base (debootstrap, imported by kiln as an OCI layout; see
// lib/debian-base.mjs) with ARG/ENV/WORKDIR, four RUNs, a COPY of a 20,000-file context, LABEL,
// USER and CMD. Measures, with wall times that include node start-up and writing the OCI layout:
//   - kiln cold build, then the warm rebuild (everything cached) N times (median, best, peak RSS;
//     `--progress plain` must show every layer step (RUN/COPY/ADD/WORKDIR) CACHED);
//   - the unchanged-context re-hash: kiln's library (dist/) loading the stat cache and hashing the
//     COPY's sources with a warm stat cache, timed in a fresh node process N times (median; as a
//     CLI build pays it), and N times in one process for comparison;
//   - `buildah bud --layers` (chroot isolation, vfs, private storage) on the same base, cold then
//     warm N times (median) in the same run;
//   - extra rows: rebuild after an mtime-only touch of every file (content keys: still cached),
//     fresh stores fed by `--cache-from` type=local and (with /usr/bin/docker-registry) a registry
//     on 127.0.0.1, and a rebuild after one file's content changed.
//   - with Debian's docker.io installed, Docker's BuildKit on a private engine
//     (lib/docker-engine.mjs; the base loaded with `docker load` beforehand), cold then warm N
//     times (median), printed beside buildah;
// Targets: kiln warm ≤ 1 s, kiln warm / buildah warm ≤ 0.25, kiln warm / Docker warm ≤ 0.4,
// re-hash ≤ 0.3 s.
//
//   node scripts/bench-cache.mjs [--files N] [--runs N] [--rootfs DIR] [--mirror URL]
//                                [--suite bookworm] [--isolation auto|oci|chroot]
//                                [--buildah-driver vfs|overlay] [--no-buildah] [--no-docker] [--no-registry] [--keep]
//
// --rootfs DIR: reuse the debootstrap tree in DIR (made there, and kept, when missing); without
// it the tree is made in the temp dir and removed. --buildah-driver: buildah's storage driver
// (default vfs, as the issue's comparison; vfs copies whole trees, so overlay is the faster
// buildah). Needs root and the compiled kiln (dist/).
// Everything else lives in one temp dir, removed at exit (buildah's storage emptied first).
// Exit status: 0 when every target is met, 1 when one is missed, 2 on a set-up or build failure.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { makeTimer } from "./lib/timed.mjs";
import { fileURLToPath } from "node:url";
import { aptMirror, countEntries, ensureDebianRootfs, importDebianBase } from "./lib/debian-base.mjs";
import { DOCKER, dockerInstalled, startDockerEngine } from "./lib/docker-engine.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const kilnBin = join(repo, "bin", "kiln");
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(name);
  if (i < 0) return def;
  if (argv[i + 1] === undefined) die(`${name} needs a value`);
  return argv[i + 1];
};
function die(msg) {
  console.error(`bench-cache: ${msg}`);
  process.exit(2);
}
const fileCount = Math.floor(Number(opt("--files", "20000")));
if (!Number.isFinite(fileCount) || fileCount < 1) die("--files needs a number >= 1");
const runs = Math.floor(Number(opt("--runs", "5")));
if (!Number.isFinite(runs) || runs < 1) die("--runs needs a number >= 1");
const suite = opt("--suite", "bookworm");
const isolation = opt("--isolation", "auto");
const buildahDriver = opt("--buildah-driver", "vfs");
if (!["vfs", "overlay"].includes(buildahDriver)) die("--buildah-driver is vfs or overlay");
const keep = argv.includes("--keep");
const useBuildah = !argv.includes("--no-buildah");
const useDocker = !argv.includes("--no-docker") && dockerInstalled();
const useRegistry = !argv.includes("--no-registry") && existsSync("/usr/bin/docker-registry");

if (!existsSync(join(repo, "dist", "cli", "main.js"))) die("kiln is not compiled: run `npm run build` first");
if (process.getuid?.() !== 0) die("run as root (debootstrap, RUN isolation and buildah's chroot isolation need it)");
if (!existsSync("/usr/bin/time")) die("GNU time (/usr/bin/time) is not installed (apt-get install time)");
for (const tool of useBuildah ? ["buildah", "skopeo"] : []) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) die(`${tool} is not installed (or pass --no-buildah)`);
}

// ---------------------------------------------------------------- work dir and clean-up
const work = mkdtempSync(join(tmpdir(), "kiln-bench-cache-"));
const bRoot = join(work, "buildah", "root");
const bRunroot = join(work, "buildah", "runroot");
const bTmp = join(work, "buildah", "tmp");
const buildahStore = ["--root", bRoot, "--runroot", bRunroot, "--storage-driver", buildahDriver];
const buildahEnv = { TMPDIR: bTmp, BUILDAH_ISOLATION: "chroot" };
let registry;
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  if (registry && registry.exitCode === null) registry.kill("SIGTERM");
  if (keep) {
    console.log(`kept ${work}`);
    return;
  }
  if (existsSync(bRoot)) {
    spawnSync("buildah", [...buildahStore, "rm", "-a"], { env: { ...process.env, ...buildahEnv }, stdio: "ignore" });
    spawnSync("buildah", [...buildahStore, "rmi", "-a", "-f"], { env: { ...process.env, ...buildahEnv }, stdio: "ignore" });
  }
  // anything still mounted below the work dir (deepest first), then the tree itself
  const mounts = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((m) => m && (m === work || m.startsWith(`${work}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync("umount", ["-l", m], { stdio: "ignore" });
  spawnSync("rm", ["-rf", work]);
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

// ---------------------------------------------------------------- helpers
const timed = makeTimer({ cwd: work, scratch: work });
const lastLines = (s, n = 4) => s.trim().split("\n").slice(-n).join(" | ");
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- the base
let rootfs;
try {
  const r = ensureDebianRootfs({ dir: opt("--rootfs", join(work, "rootfs")), suite, mirror: opt("--mirror", aptMirror()), log: (m) => console.log(m) });
  rootfs = r.rootfs;
} catch (e) {
  die(e.message);
}
const baseLayout = join(work, "base-layout");
let base;
try {
  base = importDebianBase({ rootfs, layout: baseLayout, kilnBin, workDir: work });
} catch (e) {
  die(e.message);
}
console.log(`base: Debian ${suite} minbase, ${countEntries(rootfs)} entries (${rootfs}); kiln imported it in ${base.seconds.toFixed(1)} s`);
if (useBuildah) {
  mkdirSync(bTmp, { recursive: true });
  const r = await timed("skopeo", ["copy", "--quiet", `oci:${baseLayout}:${base.tag}`, `containers-storage:[${buildahDriver}@${bRoot}+${bRunroot}]localhost/base:latest`], buildahEnv);
  if (r.code !== 0) die(`skopeo copy of the base into buildah's store failed: ${lastLines(r.stderr || r.stdout)}`);
}
// Docker: a private engine with the same base loaded (untimed, as buildah's copy is).
let engine = null;
if (useDocker) {
  try {
    engine = await startDockerEngine(join(work, "docker"));
  } catch (e) {
    die(e.message);
  }
  process.prependListener("exit", engine.stopSync); // before the work dir is removed
  const archive = join(work, "base-docker.tar");
  const r = await timed("skopeo", ["copy", "--quiet", `oci:${baseLayout}:${base.tag}`, `docker-archive:${archive}:base:latest`]);
  if (r.code !== 0) die(`skopeo copy of the base to a docker-archive failed: ${lastLines(r.stderr || r.stdout)}`);
  const l = await timed(DOCKER, ["load", "-q", "-i", archive], engine.env);
  if (l.code !== 0) die(`docker load of the base failed: ${lastLines(l.stderr || l.stdout)}`);
  spawnSync("rm", ["-f", archive]);
  console.log(`docker: ${engine.version} (private engine, BuildKit, overlay2)`);
}

// ---------------------------------------------------------------- the context
const ctx = join(work, "context");
const perDir = 200;
const files = [];
for (let i = 0; i < fileCount; i++) {
  const dir = join(ctx, "src", `d${Math.floor(i / perDir)}`);
  if (i % perDir === 0) mkdirSync(dir, { recursive: true });
  const p = join(dir, `f${i}.txt`);
  writeFileSync(p, `file ${i}\n${"x".repeat(i % 97)}\n`);
  files.push(p);
}
writeFileSync(join(ctx, "VERSION"), "1.0.0\n");
// 12 instructions; layer steps: WORKDIR, 4 × RUN, COPY
const dockerfile = [
  "FROM base",
  "ARG VERSION=1.0.0",
  "ENV APP_HOME=/app LANG=C.UTF-8",
  "WORKDIR /srv",
  'RUN mkdir -p /srv/data && echo "$VERSION" > /srv/data/version',
  "RUN ls /usr/bin | wc -l > /count",
  "COPY . /app",
  "RUN find /app -type f | wc -l > /n",
  "RUN cp /app/VERSION /srv/VERSION && chmod 0644 /srv/VERSION",
  'LABEL org.example.bench="cache"',
  "USER nobody",
  'CMD ["/bin/sh", "-c", "cat /n"]',
];
writeFileSync(join(ctx, "Dockerfile"), dockerfile.join("\n") + "\n");
// let file timestamps age past the stat cache's racy window
await sleep(200);

// ---------------------------------------------------------------- kiln
const sde = { SOURCE_DATE_EPOCH: "1700000000" };
const LAYER_STEP = /^(RUN|COPY|ADD|WORKDIR)\b/i;
/** One kiln build with --progress plain; steps parsed from the plain output and the metadata file. */
async function kiln(name, store, extra = [], { output = name } = {}) {
  const slug = output.replace(/[^a-z0-9]+/gi, "-");
  const meta = join(work, `${slug}.meta.json`);
  const out = join(work, `${slug}.oci`);
  const args = [kilnBin, "build", "--progress", "plain", "--isolation", isolation, "--cache-dir", store, "-o", `type=oci,dest=${out}`, "--metadata-file", meta,
    "-t", "bench:latest", "--build-context", `base=${base.ref}`, ...extra, ctx];
  const r = await timed(process.execPath, args, sde);
  if (r.code !== 0) die(`${name}: kiln build failed (exit ${r.code}): ${lastLines(r.stderr)}`);
  const m = JSON.parse(readFileSync(meta, "utf8"));
  const steps = m["kiln.steps"] ?? [];
  // `#N [stage i/n] TEXT` then `#N CACHED ...` or `#N DONE ...`
  const heads = new Map();
  const plain = [];
  for (const line of r.stderr.split("\n")) {
    const h = line.match(/^#(\d+) \[[^\]]*\] (.*)$/);
    if (h) heads.set(h[1], h[2]);
    const d = line.match(/^#(\d+) (CACHED|DONE)\b/);
    if (d) plain.push({ text: heads.get(d[1]) ?? `#${d[1]}`, cached: d[2] === "CACHED" });
  }
  // steps that make (or reuse) a layer; FROM/ARG/ENV/LABEL/USER/CMD only edit the config and
  // always print DONE
  const layerSteps = plain.filter((p) => LAYER_STEP.test(p.text));
  return {
    name,
    seconds: r.seconds,
    rssMB: r.rssMB,
    cached: steps.filter((s) => s.cached).length,
    steps: steps.length,
    plain: layerSteps,
    uncached: layerSteps.filter((p) => !p.cached).map((p) => p.text),
    digest: m["containerimage.digest"],
  };
}

const rows = [];
const show = (row, note = "") => {
  rows.push(row);
  const plainNote = row.plain.length ? `plain: ${row.plain.filter((p) => p.cached).length}/${row.plain.length} layer steps CACHED` : "plain: no layer-step lines";
  console.log(`${row.name.padEnd(38)} ${row.seconds.toFixed(2).padStart(7)} s  ${row.rssMB.toFixed(0).padStart(4)} MB  cached ${row.cached}/${row.steps}  ${plainNote}  ${row.digest.slice(7, 19)}  ${note}`);
};

console.log(`context: ${fileCount} files; ${dockerfile.length}-instruction Dockerfile; node ${process.version}; ${runs} warm runs`);
const store = join(work, "store");
const cold = await kiln("kiln cold", store, ["--cache-to", `type=local,dest=${join(work, "cache-local")},mode=max`]);
show(cold);
const warms = [];
for (let i = 0; i < runs; i++) {
  const w = await kiln(`kiln warm rebuild ${i + 1}/${runs}`, store, [], { output: "kiln warm" });
  const bad = w.uncached.length || w.plain.length !== w.steps || w.cached !== w.steps;
  show(w, bad ? `NOT ALL CACHED: ${w.uncached.join("; ") || "(no CACHED lines)"}` : "");
  warms.push(w);
}
const warmAllCached = warms.every((w) => w.uncached.length === 0 && w.plain.length === w.steps && w.steps > 0 && w.cached === w.steps);
const kilnWarm = { median: median(warms.map((w) => w.seconds)), best: Math.min(...warms.map((w) => w.seconds)), rssMB: Math.max(...warms.map((w) => w.rssMB)) };

// ---------------------------------------------------------------- re-hash through the library
// As a build does it: the context (.dockerignore applied), the stat cache loaded from the store,
// the COPY's sources selected and hashed. Timed inside a child node process (module loading and
// node start-up excluded): once per fresh process, as every CLI build pays it with cold JIT (the
// verdict), and `runs` times in one process (JIT warm, for comparison).
const rehashScript = join(work, "rehash.mjs");
writeFileSync(rehashScript, `
import { pathToFileURL } from "node:url";
const [dist, ctx, storeDir, repeat] = process.argv.slice(2);
const lib = (p) => import(pathToFileURL(dist + "/" + p).href);
const { StatCache, hashSources } = await lib("cache/sources.js");
const { DirContext } = await lib("context/build-context.js");
const { selectSources } = await lib("context/select.js");
const { createIgnoreMatcher, readIgnoreFile } = await lib("context/dockerignore.js");
const { BlobStore } = await lib("store/blob-store.js");
const out = [];
for (let i = 0; i < Number(repeat); i++) {
  const t0 = process.hrtime.bigint();
  const dctx = new DirContext(ctx, createIgnoreMatcher(await readIgnoreFile(ctx, ctx + "/Dockerfile")));
  const cache = await StatCache.load(new BlobStore(storeDir), dctx.root);
  const digest = await hashSources(await selectSources(dctx, ["."]), { statCache: cache });
  out.push({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, hits: cache.hits, reads: cache.reads, digest });
}
console.log(JSON.stringify(out));
`);
function rehashRuns(repeat) {
  const r = spawnSync(process.execPath, [rehashScript, join(repo, "dist"), ctx, store, String(repeat)], { encoding: "utf8" });
  if (r.status !== 0) die(`re-hash through the library failed: ${lastLines(r.stderr)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop());
}
const rehashFresh = [];
for (let i = 0; i < runs; i++) rehashFresh.push(...rehashRuns(1));
const rehashWarmJit = rehashRuns(runs);
const rehash = rehashFresh.map((x) => x.seconds);
const rehashMedian = median(rehash);
const rehashWarmJitMedian = median(rehashWarmJit.map((x) => x.seconds));
const lastRehash = rehashFresh[rehashFresh.length - 1];
console.log(`unchanged-context re-hash (library, warm stat cache), fresh process each: ${rehash.map((s) => s.toFixed(3)).join(", ")} s; median ${rehashMedian.toFixed(3)} s; ` +
  `${lastRehash.hits} stat-cache hits, ${lastRehash.reads} files read`);
console.log(`  same, ${runs}× in one process (JIT warm): ${rehashWarmJit.map((x) => x.seconds.toFixed(3)).join(", ")} s; median ${rehashWarmJitMedian.toFixed(3)} s`);
if (lastRehash.reads > 0) console.log(`  WARNING: the stat cache answered ${lastRehash.hits} files but ${lastRehash.reads} were read`);

// ---------------------------------------------------------------- buildah
let buildahCold;
const buildahWarms = [];
if (useBuildah) {
  const bud = async (name) => {
    const r = await timed("buildah", [...buildahStore, "bud", "--isolation", "chroot", "--layers", "--pull=never", "-t", "localhost/bench:latest", ctx], buildahEnv);
    if (r.code !== 0) die(`${name}: buildah bud failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
    const usingCache = (r.stdout + r.stderr).split("\n").filter((l) => /Using cache/.test(l)).length;
    console.log(`${name.padEnd(38)} ${r.seconds.toFixed(2).padStart(7)} s  ${r.rssMB.toFixed(0).padStart(4)} MB  "Using cache" ×${usingCache}`);
    return { ...r, usingCache };
  };
  buildahCold = await bud("buildah cold");
  for (let i = 0; i < runs; i++) buildahWarms.push(await bud(`buildah warm rebuild ${i + 1}/${runs}`));
}
const buildahWarm = buildahWarms.length ? { median: median(buildahWarms.map((b) => b.seconds)), best: Math.min(...buildahWarms.map((b) => b.seconds)) } : undefined;

// ---------------------------------------------------------------- Docker
let dockerCold;
const dockerWarms = [];
if (engine) {
  const build = async (name) => {
    const r = await timed(DOCKER, ["build", "--network", "host", "--progress", "plain", "-t", "bench:latest", ctx], engine.env);
    if (r.code !== 0) die(`${name}: docker build failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
    const cachedSteps = (r.stdout + r.stderr).split("\n").filter((l) => /^#\d+ CACHED$/.test(l.trim())).length;
    console.log(`${name.padEnd(38)} ${r.seconds.toFixed(2).padStart(7)} s  CACHED ×${cachedSteps} (its daemon's RSS is not measured)`);
    return r;
  };
  dockerCold = await build("docker cold");
  for (let i = 0; i < runs; i++) dockerWarms.push(await build(`docker warm rebuild ${i + 1}/${runs}`));
}
const dockerWarm = dockerWarms.length ? { median: median(dockerWarms.map((b) => b.seconds)), best: Math.min(...dockerWarms.map((b) => b.seconds)) } : undefined;

// ---------------------------------------------------------------- extra kiln rows
const later = new Date(Date.now() + 60_000);
for (const f of files) utimesSync(f, later, later);
await sleep(200);
show(await kiln("after touching every file (mtime)", store), "(content unchanged: all cached expected)");
show(await kiln("warm again (stat cache refreshed)", store));
show(await kiln("fresh store, --cache-from local", join(work, "store-from-local"), ["--cache-from", `type=local,src=${join(work, "cache-local")}`]));

async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}
if (useRegistry) {
  const port = await freePort();
  const regDir = join(work, "registry");
  mkdirSync(regDir);
  const cfg = join(regDir, "config.yml");
  writeFileSync(cfg, ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:", `    rootdirectory: ${join(regDir, "data")}`, "http:", `  addr: 127.0.0.1:${port}`, ""].join("\n"));
  const fd = openSync(join(regDir, "log"), "a");
  registry = spawn("/usr/bin/docker-registry", ["serve", cfg], { stdio: ["ignore", fd, fd] });
  registry.unref(); // never what keeps this script alive (it is stopped below and at exit)
  closeSync(fd);
  for (let i = 0; i < 100; i++) {
    const listening = await new Promise((res) => {
      const s = createServer();
      s.once("error", () => res(true)); // port taken: the registry listens
      s.listen(port, "127.0.0.1", () => s.close(() => res(false)));
    });
    if (listening) break;
    await sleep(100);
  }
  const ref = `127.0.0.1:${port}/bench/cache:latest`;
  const dockerConfig = join(work, "docker-config");
  mkdirSync(dockerConfig);
  process.env.DOCKER_CONFIG = dockerConfig;
  show(await kiln("export to registry (cold store)", join(work, "store-reg-a"), ["--cache-to", `type=registry,ref=${ref},mode=max`]));
  show(await kiln("re-export to registry (warm store)", join(work, "store-reg-a"), ["--cache-to", `type=registry,ref=${ref},mode=max`]));
  show(await kiln("fresh store, --cache-from registry", join(work, "store-reg-b"), ["--cache-from", `type=registry,ref=${ref}`]));
  registry.kill("SIGTERM");
}

writeFileSync(files[Math.floor(files.length / 2)], "changed content\n");
await sleep(200);
const changed = await kiln("after changing one file", store);
show(changed, "(COPY and the later RUNs re-run)");

// ---------------------------------------------------------------- summary
const pad = (s, n) => String(s).padEnd(n);
const f2 = (s) => `${s.toFixed(2)} s`;
console.log("");
console.log(`${pad("", 40)}${pad("median", 10)}${pad("best", 10)}`);
console.log(`${pad(`kiln warm rebuild (×${runs})`, 40)}${pad(f2(kilnWarm.median), 10)}${pad(f2(kilnWarm.best), 10)}peak RSS ${kilnWarm.rssMB.toFixed(0)} MB`);
if (buildahWarm) {
  console.log(`${pad(`buildah warm --layers, ${buildahDriver} (×${runs})`, 40)}${pad(f2(buildahWarm.median), 10)}${pad(f2(buildahWarm.best), 10)}(cold ${f2(buildahCold.seconds)}; kiln cold ${f2(cold.seconds)})`);
}
if (dockerWarm) {
  console.log(`${pad(`docker warm, BuildKit (×${runs})`, 40)}${pad(f2(dockerWarm.median), 10)}${pad(f2(dockerWarm.best), 10)}(cold ${f2(dockerCold.seconds)})`);
}
console.log(`${pad(`re-hash, unchanged, fresh process (×${runs})`, 40)}${pad(`${rehashMedian.toFixed(3)} s`, 10)}${pad(`${Math.min(...rehash).toFixed(3)} s`, 10)}(JIT warm, one process: median ${rehashWarmJitMedian.toFixed(3)} s)`);
console.log("");
const verdicts = [
  ["kiln warm rebuild ≤ 1 s (median, incl. node start-up)", kilnWarm.median <= 1, f2(kilnWarm.median)],
  ["kiln warm: every layer step CACHED in --progress plain", warmAllCached, warmAllCached ? `${warms[0].plain.length}/${warms[0].plain.length} layer steps, all ${runs} runs` : "some layer step re-ran"],
];
if (buildahWarm) {
  const ratio = kilnWarm.median / buildahWarm.median;
  verdicts.push([`kiln warm / buildah (${buildahDriver}) warm ≤ 0.25 (medians)`, ratio <= 0.25, ratio.toFixed(2)]);
}
if (dockerWarm) {
  const ratio = kilnWarm.median / dockerWarm.median;
  verdicts.push(["kiln warm / Docker warm ≤ 0.4 (medians)", ratio <= 0.4, ratio.toFixed(2)]);
}
verdicts.push(["unchanged-context re-hash ≤ 0.3 s (median, fresh process each)", rehashMedian <= 0.3, `${rehashMedian.toFixed(3)} s`]);
for (const [what, ok, value] of verdicts) console.log(`${ok ? "PASS" : "FAIL"}  ${what}: ${value}`);
const expectSame = rows.filter((r) => r !== changed);
const same = expectSame.filter((r) => r.digest === cold.digest);
console.log(`\n${same.length}/${expectSame.length} builds with unchanged content produced the cold build's image digest (SOURCE_DATE_EPOCH set)` +
  (same.length < expectSame.length ? `; differing: ${expectSame.filter((r) => r.digest !== cold.digest).map((r) => r.name).join(", ")}` : ""));
console.log(`after changing one file: digest ${changed.digest === cold.digest ? "UNCHANGED (wrong)" : "changed"}; re-ran: ${changed.uncached.join("; ") || "nothing"}`);
process.exitCode = verdicts.every(([, ok]) => ok) ? 0 : 1;
if (engine) for (const p of await engine.stop()) console.error(`bench-cache: ${p}`);
