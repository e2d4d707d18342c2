#!/usr/bin/env node
// RUN benchmark: a Debian bookworm minbase tree (debootstrap, ~7,000 files) imported as a base
// layout by kiln (FROM scratch + COPY rootfs/ /), then three one-RUN builds on it — (a) touch one
// file, (b) create 10,000 files, (c) create 100,000 files — each built by kiln and by
// `buildah bud --layers` (vfs, chroot, private storage) in the same run. Prints build wall times,
// kiln's RUN step time (--progress plain), the ratio kiln/buildah, peak RSS of both (GNU time),
// and kiln's snapshot time measured at the library level (beginStep + changes() of the
// snapshotter kiln uses, around the same command run with chroot, then the layer write), against
// the targets: (a) snapshot < 0.3 s; (b), (c) kiln ≤ 0.5 × buildah; kiln peak RSS < 300 MB.
// With Debian's docker.io installed, each build also runs on Docker's BuildKit (a private engine,
// scripts/lib/docker-engine.mjs; the base loaded with `docker load` beforehand, as buildah's is
// copied in) and the ratio kiln/Docker is printed beside buildah's (target (b): ≤ 0.5 × Docker).
//
// Like for like: buildah's base is unpacked into its storage before the timed builds (the untimed
// `skopeo copy` into containers-storage), so kiln's is too: an untimed `FROM base` + `RUN true`
// build into the same --cache-dir extracts the base layers (the overlay snapshotter keeps them per
// diffID). The ratio is taken on that build. The "kiln cold" column is a build with an empty
// --cache-dir, base extraction included, for reference.
//
//   node scripts/bench-run.mjs [--rootfs DIR] [--mirror URL] [--suite bookworm] [--only a,b,c]
//                              [--isolation auto|oci|chroot] [--snapshotter auto|overlay|dir]
//                              [--keep] [--scale F] [--dist DIR] [--no-docker]
//
// --rootfs DIR: reuse the debootstrap tree in DIR (made there, and kept, when DIR is missing).
// --mirror: default is the first deb.debian.org-style URI in apt's sources.
// --scale F: multiply the file counts of (b) and (c) by F (e.g. 0.2 while iterating; default 1).
// --dist DIR: run kiln compiled into DIR (a tsc outDir of src/) instead of the repo's dist/.
import { spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { makeTimer } from "./lib/timed.mjs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { aptMirror, countEntries, ensureDebianRootfs, importDebianBase } from "./lib/debian-base.mjs";
import { DOCKER, dockerInstalled, startDockerEngine } from "./lib/docker-engine.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : def;
};
const dist = resolve(opt("--dist", join(repo, "dist")));
const scale = Number(opt("--scale", "1"));
if (!(scale > 0)) {
  console.error("bench-run: --scale needs a positive number");
  process.exit(2);
}
const keep = argv.includes("--keep");
const suite = opt("--suite", "bookworm");
const only = (opt("--only", "a,b,c") ?? "a,b,c").split(",");
const isolation = opt("--isolation", "auto");
const snapshotterOpt = opt("--snapshotter", "auto");

function die(msg) {
  console.error(`bench-run: ${msg}`);
  process.exit(2);
}

for (const tool of ["buildah", "skopeo", "debootstrap", "chroot"]) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) die(`${tool} is not installed`);
}
if (!existsSync("/usr/bin/time")) die("GNU time (/usr/bin/time) is not installed (apt-get install time)");
if (!existsSync(join(dist, "cli", "main.js"))) die(`kiln is not compiled in ${dist}: run \`npx tsc -p tsconfig.json\` first`);
if (process.getuid?.() !== 0) die("run as root (debootstrap, chroot and buildah's chroot isolation need it)");

const mirror = opt("--mirror", aptMirror());

const work = mkdtempSync(join(tmpdir(), "kiln-bench-run-"));
const cleanup = () => {
  if (keep) console.log(`kept ${work}`);
  else spawnSync("rm", ["-rf", work]);
};
process.on("exit", cleanup);
process.on("SIGINT", () => process.exit(130));

// The CLI launcher (like bin/kiln, but for the chosen compiled tree).
const kilnBin = join(work, "kiln.mjs");
writeFileSync(kilnBin, `import { main } from ${JSON.stringify(pathToFileURL(join(dist, "cli", "main.js")).href)};\nprocess.exitCode = await main(process.argv.slice(2));\n`);

// ---------------------------------------------------------------- helpers
const timed = makeTimer({ cwd: repo, scratch: work });

function mustOk(r, what) {
  if (r.code !== 0) die(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split("\n").slice(-4).join(" | ")}`);
  return r;
}


// ---------------------------------------------------------------- the minbase tree
const rootfsOpt = opt("--rootfs", undefined);
let rootfs;
try {
  ({ rootfs } = ensureDebianRootfs({ dir: rootfsOpt ? resolve(rootfsOpt) : join(work, "rootfs"), suite, mirror, log: (m) => console.log(m) }));
} catch (err) {
  die(err.message);
}
const baseEntries = countEntries(rootfs);
console.log(`base: Debian ${suite} minbase, ${baseEntries} entries (${rootfs})`);

// kiln imports it: FROM scratch + COPY rootfs/ / (device nodes, /proc and /sys content left out).
const baseLayout = join(work, "base-layout");
try {
  const imported = importDebianBase({ rootfs, layout: baseLayout, kilnBin, workDir: work });
  console.log(`kiln imported the base in ${imported.seconds.toFixed(1)} s`);
} catch (err) {
  die(err.message);
}

const bRoot = join(work, "buildah", "root");
const bRunroot = join(work, "buildah", "runroot");
const bTmp = join(work, "buildah", "tmp");
mkdirSync(bTmp, { recursive: true });
const store = ["--root", bRoot, "--runroot", bRunroot, "--storage-driver", "vfs"];
mustOk(await timed("skopeo", ["copy", "--quiet", `oci:${baseLayout}:latest`, `containers-storage:[vfs@${bRoot}+${bRunroot}]localhost/base:latest`], { TMPDIR: bTmp }), "skopeo copy of the base");

// Docker: a private engine with the same base loaded (untimed, as buildah's copy is).
let engine = null;
if (!argv.includes("--no-docker") && dockerInstalled()) {
  engine = await startDockerEngine(join(work, "docker"));
  process.prependListener("exit", engine.stopSync); // before the work dir is removed
  const archive = join(work, "base-docker.tar");
  mustOk(await timed("skopeo", ["copy", "--quiet", `oci:${baseLayout}:latest`, `docker-archive:${archive}:base:latest`]), "skopeo copy of the base to a docker-archive");
  mustOk(await timed(DOCKER, ["load", "-q", "-i", archive], engine.env), "docker load of the base");
  spawnSync("rm", ["-f", archive]);
  console.log(`docker: ${engine.version} (private engine, BuildKit, overlay2)`);
} else {
  console.log(argv.includes("--no-docker") ? "docker: skipped (--no-docker)" : "docker: not installed (Debian docker.io), no comparison");
}

// ---------------------------------------------------------------- library-level snapshot timing
const lib = (p) => import(pathToFileURL(join(dist, p)).href);
const { createRootFS, resolveSnapshotter } = await lib("snapshot/rootfs.js");
const { writeLayer } = await lib("layer/write-layer.js");
const { BlobStore } = await lib("store/blob-store.js");
const snapCache = join(work, "snap-cache");
const { snapshotter } = await resolveSnapshotter(snapCache, snapshotterOpt);
console.log(`kiln snapshotter: ${snapshotter}`);

// The base image's layers, read from the layout kiln wrote.
const baseLayers = (() => {
  const index = JSON.parse(readFileSync(join(baseLayout, "index.json"), "utf8"));
  const blob = (d) => join(baseLayout, "blobs", "sha256", d.slice(7));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest), "utf8"));
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), "utf8"));
  return manifest.layers.map((l, i) => ({ diffID: config.rootfs.diff_ids[i], mediaType: l.mediaType, open: () => createReadStream(blob(l.digest)) }));
})();

async function snapshotTiming(cmd) {
  const rootfs = await createRootFS(snapCache, { snapshotter });
  try {
    await rootfs.applyLayers(baseLayers);
    let peak = process.memoryUsage().rss;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 5);
    const t0 = process.hrtime.bigint();
    const step = await rootfs.beginStep();
    const t1 = process.hrtime.bigint();
    clearInterval(sampler);
    const r = spawnSync("chroot", [rootfs.dir, "/bin/sh", "-c", cmd], { encoding: "utf8" });
    if (r.status !== 0) die(`chroot ${cmd} failed: ${r.stderr.trim()}`);
    const sampler2 = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 5);
    const t2 = process.hrtime.bigint();
    const entries = await step.changes();
    const t3 = process.hrtime.bigint();
    const layer = await writeLayer(entries, new BlobStore(join(work, "snap-store")));
    const t4 = process.hrtime.bigint();
    clearInterval(sampler2);
    peak = Math.max(peak, process.memoryUsage().rss);
    const s = (a, b) => Number(b - a) / 1e9;
    return { baseline: s(t0, t1), diff: s(t2, t3), write: s(t3, t4), entries: entries.length, size: layer.descriptor.size, rssMB: peak / 1048576 };
  } finally {
    await rootfs.dispose();
    spawnSync("rm", ["-rf", join(work, "snap-store")]);
  }
}

// ---------------------------------------------------------------- scenarios
// N files in directories of (up to) 1,000.
const createFiles = (n) => {
  const dirs = Math.max(1, Math.round(n / 1000));
  const per = Math.max(1, Math.round(n / dirs));
  return `mkdir /bench && cd /bench && for d in $(seq 1 ${dirs}); do mkdir $d; for i in $(seq 1 ${per}); do echo $i > $d/f$i; done; done`;
};
const count = (n) => Math.round(n * scale).toLocaleString("en-US");
const scenarios = [
  { id: "a", what: "RUN touching one file", cmd: "echo changed > /etc/bench-one" },
  { id: "b", what: `RUN creating ${count(10000)} files`, cmd: createFiles(10000 * scale) },
  { id: "c", what: `RUN creating ${count(100000)} files`, cmd: createFiles(100000 * scale) },
].filter((s) => only.includes(s.id));

const rows = [];
for (const sc of scenarios) {
  const ctx = join(work, `ctx-${sc.id}`);
  mkdirSync(ctx);
  writeFileSync(join(ctx, "Dockerfile"), `FROM base\nRUN ${sc.cmd}\n`);
  const warmCtx = join(work, `warm-${sc.id}`);
  mkdirSync(warmCtx);
  writeFileSync(join(warmCtx, "Dockerfile"), "FROM base\nRUN true\n");
  const kilnBuild = (dir, cache, out) =>
    timed(process.execPath, [kilnBin, "build", "--isolation", isolation, "--snapshotter", snapshotter, "--progress", "plain", "--cache-dir", cache, "-o", `type=oci,dest=${out}`,
      "-t", `bench-${sc.id}:latest`, "--build-context", `base=oci-layout://${baseLayout}:latest`, dir]);
  const cache = join(work, `kiln-cache-${sc.id}`);
  mustOk(await kilnBuild(warmCtx, cache, join(work, `kiln-warm-${sc.id}`)), `kiln warm-up build (${sc.id})`);
  const k = mustOk(await kilnBuild(ctx, cache, join(work, `kiln-${sc.id}`)), `kiln build (${sc.id})`);
  if (/CACHED/.test(k.stderr)) die(`kiln build (${sc.id}) hit the cache: the benchmark would not measure the RUN`);
  const cold = mustOk(await kilnBuild(ctx, join(work, `kiln-cold-cache-${sc.id}`), join(work, `kiln-cold-${sc.id}`)), `kiln cold build (${sc.id})`);
  const stepLine = k.stderr.split("\n").find((l) => /^#2 DONE /.test(l)) ?? "";
  const step = Number(stepLine.match(/DONE ([0-9.]+)s/)?.[1] ?? NaN);
  const b = mustOk(await timed("buildah", [...store, "bud", "--isolation", "chroot", "--layers", "--pull=never", "-t", `localhost/bench-${sc.id}:latest`, ctx], { TMPDIR: bTmp }), `buildah bud (${sc.id})`);
  const d = engine ? mustOk(await timed(DOCKER, ["build", "--network", "host", "--progress", "plain", "-t", `bench-${sc.id}:latest`, ctx], engine.env), `docker build (${sc.id})`) : null;
  const snap = await snapshotTiming(sc.cmd);
  rows.push({ sc, k, cold, step, b, d, snap });
  spawnSync("rm", ["-rf", cache, join(work, `kiln-${sc.id}`), join(work, `kiln-warm-${sc.id}`), join(work, `kiln-cold-cache-${sc.id}`), join(work, `kiln-cold-${sc.id}`)]);
  console.log(`(${sc.id}) ${sc.what}: kiln ${k.seconds.toFixed(2)} s (RUN step ${step.toFixed(2)} s, ${k.rssMB.toFixed(0)} MB; cold ${cold.seconds.toFixed(2)} s), buildah ${b.seconds.toFixed(2)} s (${b.rssMB.toFixed(0)} MB), ratio ${(k.seconds / b.seconds).toFixed(2)}${d ? `, docker ${d.seconds.toFixed(2)} s, ratio ${(k.seconds / d.seconds).toFixed(2)}` : ""}; snapshot ${(snap.baseline + snap.diff).toFixed(3)} s (baseline ${snap.baseline.toFixed(3)} + diff ${snap.diff.toFixed(3)}), layer write ${snap.write.toFixed(3)} s, ${snap.entries} entries`);
}

// ---------------------------------------------------------------- report
const pad = (s, n) => String(s).padEnd(n);
console.log("");
console.log(`${pad("case", 32)}${pad("kiln build", 12)}${pad("kiln cold", 11)}${pad("kiln RUN", 10)}${pad("buildah", 10)}${pad("ratio", 7)}${pad("docker", 10)}${pad("ratio", 7)}${pad("snapshot", 10)}${pad("layer", 9)}${pad("kiln RSS", 10)}${pad("buildah RSS", 12)}`);
const verdicts = [];
for (const { sc, k, cold, step, b, d, snap } of rows) {
  const ratio = k.seconds / b.seconds;
  const dRatio = d ? k.seconds / d.seconds : NaN;
  const snapS = snap.baseline + snap.diff;
  console.log(`${pad(`(${sc.id}) ${sc.what}`, 32)}${pad(`${k.seconds.toFixed(2)} s`, 12)}${pad(`${cold.seconds.toFixed(2)} s`, 11)}${pad(`${step.toFixed(2)} s`, 10)}${pad(`${b.seconds.toFixed(2)} s`, 10)}${pad(ratio.toFixed(2), 7)}${pad(d ? `${d.seconds.toFixed(2)} s` : "-", 10)}${pad(d ? dRatio.toFixed(2) : "-", 7)}${pad(`${snapS.toFixed(3)} s`, 10)}${pad(`${snap.write.toFixed(2)} s`, 9)}${pad(`${k.rssMB.toFixed(0)} MB`, 10)}${pad(`${b.rssMB.toFixed(0)} MB`, 12)}`);
  if (sc.id === "a") verdicts.push([`(a) snapshot < 0.3 s`, snapS < 0.3, `${snapS.toFixed(3)} s`]);
  else verdicts.push([`(${sc.id}) kiln ≤ 0.5 × buildah`, ratio <= 0.5, `${ratio.toFixed(2)} ×`]);
  if (d && sc.id === "b") verdicts.push([`(b) kiln ≤ 0.5 × Docker`, dRatio <= 0.5, `${dRatio.toFixed(2)} ×`]);
  verdicts.push([`(${sc.id}) kiln peak RSS < 300 MB`, k.rssMB < 300 && cold.rssMB < 300 && snap.rssMB < 300, `CLI ${k.rssMB.toFixed(0)} MB (cold ${cold.rssMB.toFixed(0)} MB), snapshot library ${snap.rssMB.toFixed(0)} MB`]);
}
console.log("");
for (const [what, ok, value] of verdicts) console.log(`${ok ? "met   " : "MISSED"} ${what}: ${value}`);
console.log(`(build times are wall-clock for the whole \`FROM base\` + RUN build, kiln with the base already extracted as buildah's is; "kiln cold" starts from an empty cache; snapshot = beginStep + changes() of the ${snapshotter} snapshotter, measured through kiln's library)`);
if (engine) for (const p of await engine.stop()) console.error(`bench-run: ${p}`);
