#!/usr/bin/env node
// `kiln run` start-to-exit benchmark: a Debian minbase image (debootstrap tree imported by kiln as
// a base layout, see lib/debian-base.mjs) run with `true` — cold (an empty --cache-dir: the layers
// are extracted first) and warm (layers already extracted under <cache>/layers: only the overlay,
// the runtime bundle and the process) — against `podman run --rm` of the same image (pulled from
// the same layout into a private podman storage before timing) in the same run. Prints median and
// min wall time of each over --runs runs, the ratio kiln/podman, and the issue's targets: warm
// < 300 ms and ≤ 1.0 × podman.
//
//   node scripts/bench-run-image.mjs [--rootfs DIR] [--mirror URL] [--suite bookworm] [--runs N]
//                                    [--isolation auto|oci|chroot] [--compare-kiln BIN] [--keep]
//
// --rootfs DIR: reuse the debootstrap tree in DIR (made there, and kept, when DIR is missing).
// --compare-kiln BIN: also time another kiln CLI (e.g. bin/kiln of a checkout of an older commit)
// on the same cache, interleaved with the two others, and print this kiln's ratio to it.
// Needs root, podman, runc, debootstrap (when no tree is given) and the compiled CLI (bin/kiln).
// podman runs with --runtime runc --network host and nofile/nproc ulimits of 1024 (this host's
// crun refuses podman's cgroup setup on the hybrid layout); kiln with its --isolation (default auto).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { aptMirror, ensureDebianRootfs, importDebianBase } from "./lib/debian-base.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const kilnBin = join(repo, "bin", "kiln");
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : def;
};
const runs = Number(opt("--runs", "10"));
const isolation = opt("--isolation", "auto");
const keep = argv.includes("--keep");
const compareBin = opt("--compare-kiln");

function die(msg) {
  console.error(`bench-run-image: ${msg}`);
  process.exit(2);
}
if (!(runs >= 1)) die("--runs needs a positive number");
if (process.getuid?.() !== 0) die("needs root (podman storage, overlay mounts, debootstrap)");
for (const tool of ["podman", "runc"]) if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) die(`${tool} is not installed`);
if (!existsSync(join(repo, "dist", "cli", "main.js"))) die("kiln is not compiled: run `npm run build` first");
if (compareBin !== undefined && !existsSync(compareBin)) die(`--compare-kiln ${compareBin}: no such file`);

// podman's oci: transport names the image after the layout path, which must be lowercase
const work = join(tmpdir(), `kiln-bench-run-image-${process.pid}`);
mkdirSync(work, { recursive: true });
const cache = join(work, "cache");
const podmanArgs = ["--root", join(work, "podman-root"), "--runroot", join(work, "podman-run")];
const log = (s) => process.stderr.write(`${s}\n`);

function must(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${`${r.stderr}${r.stdout}`.trim().split("\n").slice(-3).join(" | ")}`);
  return r.stdout;
}

/** Wall seconds of one run of `cmd args` (must exit 0). */
function time(cmd, args, what) {
  const t0 = process.hrtime.bigint();
  must(cmd, args, what);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0] };
}

const ms = (s) => `${(s * 1000).toFixed(0)} ms`;

try {
  const rootfsDir = opt("--rootfs") ?? join(mkdtempSync(join(tmpdir(), "kiln-bench-rootfs-")), "rootfs");
  const { rootfs } = ensureDebianRootfs({ dir: rootfsDir, suite: opt("--suite", "bookworm"), mirror: opt("--mirror", aptMirror()), log });
  const layout = join(work, "layout");
  log("importing the Debian tree as a kiln base layout ...");
  importDebianBase({ rootfs, layout, kilnBin, workDir: work, tag: "1" });
  must(process.execPath, [kilnBin, "tag", "--cache-dir", cache, `oci-layout://${layout}:1`, "bench-debian:1"], "kiln tag");
  const kilnRun = [kilnBin, "run", "--cache-dir", cache, "--isolation", isolation, "bench-debian:1", "true"];

  log("kiln run, cold (extracts the layers) ...");
  const cold = time(process.execPath, kilnRun, "kiln run (cold)");
  log(`podman pull oci:${layout}:1 (untimed) ...`);
  const id = must("podman", [...podmanArgs, "pull", "-q", `oci:${layout}:1`], "podman pull").trim();
  const podmanRun = [...podmanArgs, "run", "--rm", "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "host", id, "true"];
  // one untimed start each, so both have their files in the page cache
  time("podman", podmanRun, "podman run (warm-up)");
  time(process.execPath, kilnRun, "kiln run (warm-up)");
  const otherRun = compareBin ? [resolve(compareBin), ...kilnRun.slice(1)] : undefined;
  if (otherRun) time(process.execPath, otherRun, "other kiln run (warm-up)");
  const k = [];
  const p = [];
  const o = [];
  for (let i = 0; i < runs; i++) {
    // interleaved, so load from other processes hits both alike
    k.push(time(process.execPath, kilnRun, "kiln run"));
    p.push(time("podman", podmanRun, "podman run"));
    if (otherRun) o.push(time(process.execPath, otherRun, "other kiln run"));
  }
  const ks = stats(k);
  const ps = stats(p);
  const ratio = ks.median / ps.median;
  console.log(`kiln run IMAGE true vs podman run --rm IMAGE true (Debian ${opt("--suite", "bookworm")} minbase, ${runs} runs each, isolation ${isolation}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")})`);
  console.log(`  kiln cold (layers extracted):  ${ms(cold)}`);
  console.log(`  kiln warm:   median ${ms(ks.median)}, min ${ms(ks.min)}   target < 300 ms: ${ks.median < 0.3 ? "met" : "NOT met"}`);
  console.log(`  podman warm: median ${ms(ps.median)}, min ${ms(ps.min)}`);
  console.log(`  ratio kiln/podman (medians): ${ratio.toFixed(2)}x   target <= 1.0x: ${ratio <= 1 ? "met" : "NOT met"}`);
  if (otherRun) {
    const os = stats(o);
    console.log(`  other kiln (${compareBin}) warm: median ${ms(os.median)}, min ${ms(os.min)}   ratio other/podman ${(os.median / ps.median).toFixed(2)}x, this/other ${(ks.median / os.median).toFixed(2)}x`);
  }
} catch (err) {
  console.error(`bench-run-image: ${err.message}`);
  process.exitCode = 1;
} finally {
  spawnSync("podman", [...podmanArgs, "system", "reset", "-f"], { stdio: "ignore" });
  if (!keep) rmSync(work, { recursive: true, force: true });
  else log(`kept ${work}`);
}
