#!/usr/bin/env node
// Benchmark for multi-platform builds (issue #13), ratios measured in one run:
//   1. COPY-only: a FROM-scratch Dockerfile COPYing a context of N files (default 20,000) built
//      for linux/amd64 alone and for linux/amd64,linux/arm64: the two-platform build should cost
//      ≤ 1.2× the single one (the identical layer is written once; the platforms run concurrently).
//   2. Emulated RUN: the same Dockerfile plus busybox (Debian's static busybox for each arch) and
//      RUN steps (native for amd64, qemu-user-static through binfmt_misc for arm64), built for
//      linux/amd64,linux/arm64 by kiln (OCI layout output) and by
//      `buildah build --platform linux/amd64,linux/arm64 --manifest M` (chroot isolation, vfs,
//      private storage; then `buildah manifest push --all M oci:DIR`, the same output), printed
//      as kiln / buildah.
// Every run is cold (fresh cache dirs, fresh buildah storage); medians of --runs.
//
//   node scripts/bench-multiplatform.mjs [--files N] [--runs N] [--no-buildah] [--keep]
//
// Needs root (buildah chroot, binfmt_misc), qemu-user-static, buildah, and the compiled kiln
// (dist/). Debian's busybox-static:arm64 is fetched into /var/cache/kiln-test with apt-get as the
// tests do. Exit status: 0 when the COPY-only ratio target is met, 1 when missed, 2 on a set-up
// or build failure.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTimer } from "./lib/timed.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const kilnBin = join(repo, "bin", "kiln");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const files = opt("files", 20000);
const runs = opt("runs", 3);
const withBuildah = !args.includes("--no-buildah");
const keep = args.includes("--keep");

function die(msg) {
  console.error(`bench-multiplatform: ${msg}`);
  process.exit(2);
}
const tail = (r) => `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-3).join(" | ");
if (process.getuid?.() !== 0) die("needs root (buildah chroot isolation, binfmt_misc)");
if (!existsSync(join(repo, "dist", "cli", "main.js"))) die("kiln is not compiled: run `npx tsc -p tsconfig.json` first");
for (const [tool, pkg] of [["qemu-aarch64-static", "qemu-user-static"], ...(withBuildah ? [["buildah", "buildah"]] : [])]) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) die(`${tool} is not installed (apt-get install ${pkg})`);
}

/** Debian's static busybox for `arch`, from /var/cache/kiln-test (apt-get download when missing). */
function busybox(arch, into) {
  if (arch === "amd64") return "/bin/busybox";
  const cache = "/var/cache/kiln-test";
  const find = () => (existsSync(cache) ? readdirSync(cache).find((f) => f.startsWith("busybox-static_") && f.endsWith(`_${arch}.deb`)) : undefined);
  if (!find()) {
    mkdirSync(cache, { recursive: true });
    if (!spawnSync("dpkg", ["--print-foreign-architectures"], { encoding: "utf8" }).stdout.split("\n").includes(arch)) {
      spawnSync("dpkg", ["--add-architecture", arch]);
      spawnSync("apt-get", ["update", "-q"]);
    }
    const r = spawnSync("apt-get", ["download", `busybox-static:${arch}`], { cwd: cache, encoding: "utf8" });
    if (r.status !== 0 || !find()) die(`apt-get download busybox-static:${arch} failed: ${tail(r)}`);
  }
  const x = join(into, `deb-${arch}`);
  const r = spawnSync("dpkg-deb", ["-x", join(cache, find()), x], { encoding: "utf8" });
  if (r.status !== 0) die(`dpkg-deb -x failed: ${tail(r)}`);
  return join(x, "bin", "busybox");
}

const work = mkdtempSync(join(tmpdir(), "kiln-bench-mp-"));
process.on("exit", () => (keep ? console.log(`kept ${work}`) : spawnSync("rm", ["-rf", work])));
const timed = makeTimer({ cwd: work, scratch: work });

// ---------------------------------------------------------------- contexts
function makeContext(name, dockerfile) {
  const ctx = join(work, name);
  mkdirSync(join(ctx, "files"), { recursive: true });
  for (let d = 0; d < Math.ceil(files / 500); d++) {
    const dir = join(ctx, "files", `d${d}`);
    mkdirSync(dir);
    for (let f = 0; f < 500 && d * 500 + f < files; f++) writeFileSync(join(dir, `f${f}.txt`), `file ${d}/${f}\n`);
  }
  copyFileSync(busybox("amd64", work), join(ctx, "busybox-amd64"));
  copyFileSync(busybox("arm64", work), join(ctx, "busybox-arm64"));
  writeFileSync(join(ctx, "Dockerfile"), dockerfile);
  return ctx;
}
const copyOnly = makeContext("copy-only", "FROM scratch\nARG TARGETARCH\nCOPY files/ /files/\nCOPY busybox-${TARGETARCH} /bin/busybox\n");
const withRun = makeContext("with-run", [
  "FROM scratch",
  "ARG TARGETARCH",
  "COPY --chmod=755 busybox-${TARGETARCH} /bin/busybox",
  'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
  "COPY files/ /files/",
  "RUN find /files -type f | wc -l > /count && uname -m > /arch && for i in $(seq 1 300); do echo $i; done | sha256sum > /sum",
  "",
].join("\n"));

let n = 0;
async function kilnBuild(ctx, platforms) {
  const dir = join(work, `k-${n++}`);
  const r = await timed(process.execPath, [kilnBin, "build", "--progress", "quiet", "--cache-dir", join(dir, "cache"), "--platform", platforms, "-o", `type=oci,dest=${join(dir, "out")}`, ctx]);
  if (r.code !== 0) die(`kiln build --platform ${platforms} failed: ${tail(r)}`);
  spawnSync("rm", ["-rf", dir]);
  return r;
}
async function buildahBuild(ctx, platforms) {
  const dir = join(work, `b-${n++}`);
  const store = ["--root", join(dir, "root"), "--runroot", join(dir, "runroot"), "--storage-driver", "vfs"];
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const env = { TMPDIR: join(dir, "tmp"), BUILDAH_ISOLATION: "chroot" };
  const t0 = performance.now();
  const b = await timed("buildah", [...store, "build", "--isolation", "chroot", "--layers", "--platform", platforms, "--manifest", "bench-mp", ctx], env);
  if (b.code !== 0) die(`buildah build --platform ${platforms} failed: ${tail(b)}`);
  const p = await timed("buildah", [...store, "manifest", "push", "--quiet", "--all", "bench-mp", `oci:${join(dir, "out")}:latest`], env);
  if (p.code !== 0) die(`buildah manifest push failed: ${tail(p)}`);
  const seconds = (performance.now() - t0) / 1000;
  spawnSync("rm", ["-rf", dir]);
  return { seconds, rssMB: b.rssMB };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function measure(label, fn) {
  const times = [];
  let rss = 0;
  for (let i = 0; i < runs; i++) {
    const r = await fn();
    times.push(r.seconds);
    rss = Math.max(rss, r.rssMB);
  }
  const m = median(times);
  console.log(`  ${label.padEnd(58)} median ${m.toFixed(2)} s  (runs: ${times.map((t) => t.toFixed(2)).join(", ")}; peak RSS ${rss.toFixed(0)} MB)`);
  return m;
}

console.log(`bench-multiplatform: ${files} files, ${runs} cold run(s) each`);
console.log("1. COPY-only");
const single = await measure("kiln --platform linux/amd64", () => kilnBuild(copyOnly, "linux/amd64"));
const double = await measure("kiln --platform linux/amd64,linux/arm64", () => kilnBuild(copyOnly, "linux/amd64,linux/arm64"));
const ratio = double / single;
console.log(`  two platforms / one platform: ${ratio.toFixed(2)}x (target <= 1.2x) ${ratio <= 1.2 ? "MET" : "MISSED"}`);

console.log("2. emulated RUN (amd64 native + arm64 through qemu)");
const kOne = await measure("kiln --platform linux/amd64", () => kilnBuild(withRun, "linux/amd64"));
const kTwo = await measure("kiln --platform linux/amd64,linux/arm64", () => kilnBuild(withRun, "linux/amd64,linux/arm64"));
console.log(`  kiln two platforms / one platform: ${(kTwo / kOne).toFixed(2)}x`);
if (withBuildah) {
  const bTwo = await measure("buildah build --platform linux/amd64,linux/arm64 --manifest", () => buildahBuild(withRun, "linux/amd64,linux/arm64"));
  console.log(`  kiln / buildah (two platforms): ${(kTwo / bTwo).toFixed(2)}`);
}
process.exitCode = ratio <= 1.2 ? 0 : 1;
