#!/usr/bin/env node
// Pod benchmark (issue #12): kiln in its own image under a simulated pod (podman, Docker's default
// seccomp profile and capabilities, runc; scripts/lib/pod.mjs) against kiln on the host with the
// normal isolation (auto: oci, overlay snapshotter), in the same run, for two one-RUN builds on
// the Debian 12 minbase base:
//   apt    RUN apt-get update && apt-get install -y --no-install-recommends curl
//   files  RUN creating 10,000 files (100 directories of 100, one `echo` each)
// Modes: host (auto: oci + overlay, whose RUN uppers live on kiln's private journal-less scratch
// ext4); host --snapshotter dir (oci, RUN writes into the cache directory's file system, as in the
// pods: the like-for-like reference for the isolation alone); pod root (plain-chroot); pod uid 1000
// (proot). Both ratios are printed: against the host's default and against host dir. Every build starts from an empty
// --cache-dir on the same file system (the pod's is a host directory mounted at /cache), so base
// extraction is included everywhere. Prints per mode the RUN step's time (kiln's --progress plain
// line), the whole build's wall time, kiln's peak RSS (its node process: process.resourceUsage()
// at exit, the same wrapper on the host and in the pod), and the ratios pod/host, against the
// targets: plain-chroot within 1.2x of the host; proot measured; peak RSS < 300 MB.
//
// Where the builds write (--disk): a pod's cache directory is an emptyDir, a directory of the
// node's own disk (ext4 or xfs), and a RUN without namespaces writes there; kiln on the host
// writes RUN uppers to its own scratch ext4 instead (src/snapshot/scratch.ts). The root file
// system of these machines creates files 8-10x slower than an ext4 made on a file of the same
// disk (the calibration line measures it: the `files` loop run raw by sh on each), which would
// measure this VM's disk, not the isolation. So by default (`--disk node`) every mode's cache
// directory and the pod's /cache volume live on one fresh ext4 (mkfs.ext4 defaults, journaled, as
// a node's disk is) loop-mounted by the benchmark from a sparse file under --work; `--disk root`
// keeps them in $TMPDIR on the root file system instead (the earlier placement).
//
//   node scripts/bench-pod.mjs [--runs N] [--only apt,files] [--work DIR] [--disk node|root]
//
// --runs N: builds per mode and case, the median is printed (default 1). --work DIR: the pod
// cache (image, Debian rootfs and base layout; default $TMPDIR/kiln-pod-cache).
// Needs root, podman, debootstrap, npm, and `npm run build` first.
import { spawn, spawnSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildKilnImage, debianBase, REPO } from "./lib/kiln-image.mjs";
import { COMMON_ARGS, loadImage, lostExitCode, variantArgs } from "./lib/pod.mjs";
import { podSeccompProfile } from "./lib/pod-seccomp.mjs";

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const runs = Number(opt("--runs", "1"));
const only = opt("--only", "apt,files").split(",");
const workRoot = opt("--work", join(tmpdir(), "kiln-pod-cache"));
const disk = opt("--disk", "node");

function die(msg) {
  console.error(`bench-pod: ${msg}`);
  process.exit(2);
}
if (!(runs >= 1)) die("--runs needs a whole number ≥ 1");
if (process.getuid?.() !== 0) die("needs root (debootstrap, podman)");
if (disk !== "node" && disk !== "root") die("--disk is node or root");

const CASES = {
  apt: "RUN apt-get update && apt-get install -y --no-install-recommends curl",
  files: "RUN mkdir /bench && cd /bench && for d in $(seq 1 100); do mkdir $d; for i in $(seq 1 100); do echo $i > $d/f$i; done; done",
};

// kiln's CLI with its node process's peak RSS printed at exit (same on the host and in the pod)
const wrapper = (dist) =>
  `const { main } = await import(${JSON.stringify(join(dist, "cli", "main.js"))});` +
  "const code = await main(process.argv.slice(1));" +
  "process.stderr.write(`kiln-maxrss-kib ${process.resourceUsage().maxRSS}\\n`);" +
  "process.exitCode = code;";

function timed(cmd, args) {
  return new Promise((res) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, SOURCE_DATE_EPOCH: "1700000000" } });
    const out = [];
    const err = [];
    child.stdout.on("data", (b) => out.push(b));
    child.stderr.on("data", (b) => err.push(b));
    child.on("close", (code) => {
      const stderr = Buffer.concat(err).toString();
      const done = [...stderr.matchAll(/^#\d+ DONE ([\d.]+)s\s+snapshot ([\d.]+)s/gm)];
      const step = done.map((m) => Number(m[1]));
      const snapshot = Number(done.at(-1)?.[2] ?? NaN);
      const rss = Number(/kiln-maxrss-kib (\d+)/.exec(stderr)?.[1] ?? NaN) / 1024;
      const isolation = /^isolation: (\S+)/m.exec(stderr)?.[1] ?? "?";
      res({ code, seconds: Number(process.hrtime.bigint() - t0) / 1e9, step: step.at(-1) ?? NaN, snapshot, rss, isolation, stderr, stdout: Buffer.concat(out).toString() });
    });
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const f = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "-");

console.log("preparing kiln's image and the Debian base (cached by source hash) ...");
const img = await buildKilnImage({ workRoot, log: (m) => console.log(`  ${m}`) });
const id = loadImage(img);
const base = debianBase({ workRoot });
spawnSync("chmod", ["-R", "a+rX", base.layout]);

/** A fresh ext4 (mkfs.ext4 defaults) on a sparse file under --work, mounted for this run: the "node's disk". */
function mountNodeDisk() {
  const image = join(workRoot, "node-disk.img");
  const mnt = join(workRoot, "node-disk");
  spawnSync("umount", [mnt]);
  rmSync(image, { force: true });
  mkdirSync(mnt, { recursive: true });
  const steps = [["truncate", ["-s", "64G", image]], ["mkfs.ext4", ["-q", "-F", image]], ["mount", ["-o", "loop", image, mnt]]];
  for (const [cmd, args] of steps) {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    if (r.status !== 0) die(`${cmd} ${args.join(" ")} failed: ${(r.stderr ?? r.error?.message ?? "").trim()}`);
  }
  return { mnt, remove: () => { spawnSync("umount", [mnt]); rmSync(image, { force: true }); } };
}
const nodeDisk = disk === "node" ? mountNodeDisk() : null;
process.on("exit", () => nodeDisk?.remove());
const work = mkdtempSync(join(nodeDisk?.mnt ?? tmpdir(), "kiln-bench-pod-"));
spawnSync("chmod", ["755", work]);

// Calibration: the `files` RUN's loop, run raw by sh (no kiln) on each file system.
function rawLoop(dir) {
  const d = mkdtempSync(join(dir, "kiln-calib-"));
  const t0 = process.hrtime.bigint();
  spawnSync("sh", ["-c", CASES.files.replace(/^RUN mkdir \/bench && cd \/bench/, `cd ${d}`)], { stdio: "ignore" });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(d, { recursive: true, force: true });
  return s;
}
const calib = [["root file system ($TMPDIR)", tmpdir()], ...(nodeDisk ? [["node disk (loop ext4)", nodeDisk.mnt]] : [])];
console.log(`calibration, the files loop raw: ${calib.map(([name, dir]) => `${name} ${f(median([rawLoop(dir), rawLoop(dir), rawLoop(dir)]), 2)} s`).join(", ")}; builds write to the ${nodeDisk ? "node disk" : "root file system"}`);
const seccomp = join(work, "seccomp.json");
const profile = podSeccompProfile();
writeFileSync(seccomp, profile.json);
console.log(`image ${img.digest.slice(0, 19)} (${(img.compressed / 1e6).toFixed(1)} MB compressed), seccomp: ${profile.source} Docker default profile`);

const MODES = [
  { name: "host", label: "host (auto)" },
  { name: "host-dir", label: "host --snapshotter dir" },
  { name: "root", label: "pod root" },
  { name: "user1000", label: "pod uid 1000" },
];

async function buildOnce(mode, caseName, n, retried = false) {
  const ctx = join(work, `ctx-${caseName}`);
  mkdirSync(ctx, { recursive: true });
  writeFileSync(join(ctx, "Dockerfile"), `FROM base\n${CASES[caseName]}\n`);
  spawnSync("chmod", ["-R", "a+rX", ctx]);
  const dir = join(work, `${mode}-${caseName}-${n}`);
  mkdirSync(join(dir, "cache"), { recursive: true });
  mkdirSync(join(dir, "out"), { recursive: true });
  if (mode === "user1000") for (const d of [dir, join(dir, "cache"), join(dir, "out")]) chownSync(d, 1000, 0);
  const kilnArgs = (cache, out, baseRef, context) => ["build", "--progress", "plain", "--cache-dir", cache, "--build-context", `base=${baseRef}`, "-o", `type=oci,dest=${out}`, context];
  let r;
  if (mode === "host" || mode === "host-dir") {
    const snap = mode === "host-dir" ? ["--snapshotter", "dir"] : [];
    r = await timed(process.execPath, ["--input-type=module", "-e", wrapper(join(REPO, "dist")), ...kilnArgs(join(dir, "cache"), join(dir, "out", "layout"), base.ref, ctx), ...snap]);
  } else {
    const podArgs = ["run", "--rm", ...COMMON_ARGS, "--security-opt", `seccomp=${seccomp}`, ...variantArgs(mode), "--network", "host",
      "-v", `${ctx}:/workspace/ctx:ro`, "-v", `${join(dir, "cache")}:/cache`, "-v", `${join(dir, "out")}:/out`, "-v", `${base.layout}:/bases/base:ro`,
      "--entrypoint", "node", id, "--input-type=module", "-e", wrapper("/opt/kiln/dist"), ...kilnArgs("/cache", "/out/layout", "oci-layout:///bases/base:latest", "ctx")];
    r = await timed("podman", podArgs);
    if (!retried && lostExitCode(r.code, r.stderr)) {
      // podman lost the exit code (pod.mjs): build again from an empty cache
      rmSync(dir, { recursive: true, force: true });
      return buildOnce(mode, caseName, n, true);
    }
  }
  rmSync(dir, { recursive: true, force: true });
  if (r.code !== 0) die(`${mode} ${caseName} build failed (exit ${r.code}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  return r;
}

const rows = [];
for (const caseName of only) {
  if (!CASES[caseName]) die(`unknown case ${caseName} (apt, files)`);
  const res = {};
  for (let n = 0; n < runs; n++) {
    for (const m of MODES) {
      const r = await buildOnce(m.name, caseName, n);
      (res[m.name] ??= []).push(r);
      console.log(`  ${caseName} ${m.label}: RUN ${f(r.step)} s (snapshot ${f(r.snapshot, 2)} s), build ${f(r.seconds)} s, isolation ${r.isolation}, peak RSS ${f(r.rss, 0)} MB`);
    }
  }
  const summary = Object.fromEntries(MODES.map((m) => {
    const rs = res[m.name];
    return [m.name, { step: median(rs.map((r) => r.step)), wall: median(rs.map((r) => r.seconds)), rss: Math.max(...rs.map((r) => r.rss)), isolation: rs[0].isolation }];
  }));
  rows.push({ caseName, summary });
}

console.log("");
console.log("case   mode                               RUN step   build   RUN/host  build/host  RUN/host-dir  build/host-dir  peak RSS");
let ok = true;
for (const { caseName, summary } of rows) {
  const h = summary.host;
  const hd = summary["host-dir"];
  for (const m of MODES) {
    const s = summary[m.name];
    const pod = !m.name.startsWith("host");
    const x = (a, b) => (pod ? `${f(a / b, 2)}x` : "");
    const target = m.name === "root" ? `  (build ≤1.2x host: ${s.wall / h.wall <= 1.2 ? "ok" : "MISSED"}; ≤1.2x host dir: ${s.wall / hd.wall <= 1.2 ? "ok" : "MISSED"})` : "";
    if (m.name === "root" && s.wall / h.wall > 1.2) ok = false;
    if (s.rss >= 300) ok = false;
    console.log(`${caseName.padEnd(6)} ${`${m.label} ${s.isolation}`.padEnd(34)} ${f(s.step).padStart(7)} s ${f(s.wall).padStart(6)} s ${x(s.step, h.step).padStart(9)} ${x(s.wall, h.wall).padStart(11)} ${x(s.step, hd.step).padStart(13)} ${x(s.wall, hd.wall).padStart(15)}   ${f(s.rss, 0).padStart(5)} MB${target}`);
  }
}
console.log(`targets (plain-chroot build within 1.2x of the host's default; peak RSS < 300 MB): ${ok ? "met" : "NOT met"}`);
rmSync(work, { recursive: true, force: true });
