#!/usr/bin/env node
// A real arm64 Debian base, end to end (issue #13's slow check; a script, not a test, because
// making the base takes longer than 3 minutes: mmdebstrap runs every maintainer script under
// qemu). Makes Debian minbase root file systems with `mmdebstrap --variant=minbase`
// for arm64 (emulated through binfmt_misc) and amd64, cached as tars under --cache-dir keyed by
// date (one build a day), imports each as a kiln base (`FROM scratch` + `ADD rootfs.tar /`, for
// its platform), merges the two into one index with `kiln manifest create --output`, then builds
//   FROM base
//   RUN uname -m > /m && dpkg --print-architecture >> /m \
//     && apt-get update && apt-get install -y --no-install-recommends file && file -b /bin/ls >> /m
// with `--platform linux/arm64` and with `--platform linux/amd64,linux/arm64`, and checks /m in
// each platform's image: aarch64 / arm64 / an ARM aarch64 ELF, and x86_64 / amd64 / x86-64.
//
//   node scripts/check-debian-arm64.mjs [--cache-dir DIR] [--suite bookworm] [--mirror URL] [--keep]
//
// Needs root, mmdebstrap, arch-test, qemu-user-static (binfmt_misc handler qemu-aarch64) and the
// compiled kiln (dist/). Prints each step's time and PASS/FAIL; exits 0 when all pass, 1 on a
// wrong result, 2 on a set-up failure.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { aptMirror } from "./lib/debian-base.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const kilnBin = join(repo, "bin", "kiln");

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const cacheDir = resolve(opt("cache-dir", "/var/cache/kiln-test"));
const suite = opt("suite", "bookworm");
const mirror = opt("mirror", aptMirror());
const keep = args.includes("--keep");

function die(msg) {
  console.error(`check-debian-arm64: ${msg}`);
  process.exit(2);
}
function tail(r, n = 4) {
  return `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-n).join(" | ");
}
function timedRun(what, cmd, argv, options = {}) {
  const t0 = performance.now();
  const r = spawnSync(cmd, argv, { encoding: "utf8", maxBuffer: 256 << 20, ...options });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) die(`${what} failed (exit ${r.status}): ${tail(r)}`);
  console.log(`  ${what}: ${s.toFixed(1)} s`);
  return r;
}

if (process.getuid?.() !== 0) die("needs root (mmdebstrap, emulated RUN)");
for (const [tool, pkg] of [["mmdebstrap", "mmdebstrap"], ["arch-test", "arch-test"], ["qemu-aarch64-static", "qemu-user-static"], ["tar", "tar"]]) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) die(`${tool} is not installed (apt-get install ${pkg})`);
}
if (!existsSync(join(repo, "dist", "cli", "main.js"))) die("kiln is not compiled: run `npx tsc -p tsconfig.json` first");
// mmdebstrap runs the arm64 maintainer scripts through binfmt_misc: make sure the handler is there
// (registered with the F flag, as kiln does for an emulated RUN) on a machine that has none yet
{
  const { ensureEmulation } = await import(join(repo, "dist", "run", "emulation.js"));
  try {
    await ensureEmulation({ os: "linux", architecture: "arm64" }, { purpose: "mmdebstrap --arch=arm64" });
  } catch (err) {
    die(err.message);
  }
}

/** The day's minbase tar for `arch`: made once (temp name, then rename), reused the same day. */
function rootfsTar(arch) {
  const day = new Date().toISOString().slice(0, 10).replaceAll("-", "");
  const tar = join(cacheDir, `debian-${suite}-${arch}-minbase-nofile-${day}.tar`);
  if (existsSync(tar)) {
    console.log(`  ${arch} rootfs: cached ${tar}`);
    return tar;
  }
  mkdirSync(cacheDir, { recursive: true });
  const partial = `${tar}.partial-${process.pid}`;
  try {
    timedRun(`mmdebstrap --arch=${arch} --variant=minbase ${suite}`, "mmdebstrap", [`--arch=${arch}`, "--variant=minbase", "--skip=output/dev", "--format=tar", suite, partial, mirror]);
    renameSync(partial, tar);
  } finally {
    rmSync(partial, { force: true });
  }
  return tar;
}

function kiln(what, argv) {
  return timedRun(what, process.execPath, [kilnBin, ...argv]);
}

const work = mkdtempSync(join(tmpdir(), "kiln-debian-arm64-"));
process.on("exit", () => (keep ? console.log(`kept ${work}`) : rmSync(work, { recursive: true, force: true })));

console.log("bases:");
const layouts = {};
for (const arch of ["arm64", "amd64"]) {
  const ctx = join(work, `base-${arch}`);
  mkdirSync(ctx);
  spawnSync("ln", [rootfsTar(arch), join(ctx, "rootfs.tar")]).status === 0 || spawnSync("cp", [rootfsTar(arch), join(ctx, "rootfs.tar")]);
  writeFileSync(join(ctx, "Dockerfile"), 'FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n');
  layouts[arch] = join(work, `layout-${arch}`);
  kiln(`kiln build of the ${arch} base`, ["build", "--progress", "quiet", "--cache-dir", join(work, "cache"), "--platform", `linux/${arch}`, "-o", `type=oci,dest=${layouts[arch]}`, "-t", "base:1", ctx]);
}
const merged = join(work, "layout-both");
kiln("kiln manifest create of the two bases", ["manifest", "create", "-q", "--cache-dir", join(work, "cache"), "--output", `type=oci,dest=${merged}`, "-t", "base:1", `oci-layout://${layouts.amd64}:1`, `oci-layout://${layouts.arm64}:1`]);

const ctx = join(work, "ctx");
mkdirSync(ctx);
writeFileSync(join(ctx, "Dockerfile"), "FROM base\n" +
  "RUN uname -m > /m && dpkg --print-architecture >> /m && apt-get update -qq && apt-get install -y -qq --no-install-recommends file > /dev/null && file -b /bin/ls >> /m\n");

/** /m of the image for `arch` in layout `dir` (its last layer). */
function fileM(dir, arch) {
  const blob = (d) => join(dir, "blobs", "sha256", d.slice(7));
  let top = JSON.parse(readFileSync(blob(JSON.parse(readFileSync(join(dir, "index.json"), "utf8")).manifests[0].digest), "utf8"));
  if (Array.isArray(top.manifests)) top = JSON.parse(readFileSync(blob(top.manifests.find((m) => m.platform?.architecture === arch).digest), "utf8"));
  const last = top.layers[top.layers.length - 1];
  const r = spawnSync("tar", ["-xzOf", blob(last.digest), "m"], { encoding: "utf8" });
  if (r.status !== 0) die(`reading /m from the ${arch} image failed: ${tail(r)}`);
  return r.stdout;
}

const expected = {
  arm64: (m) => /^aarch64\narm64\nELF 64-bit LSB .*ARM aarch64/.test(m),
  amd64: (m) => /^x86_64\namd64\nELF 64-bit LSB .*x86-64/.test(m),
};
let failed = 0;
const check = (label, m, ok) => {
  console.log(`${ok ? "PASS" : "FAIL"} ${label}: ${JSON.stringify(m.trim())}`);
  if (!ok) failed++;
};

console.log("builds:");
const one = join(work, "out-arm64");
kiln("kiln build --platform linux/arm64 (emulated RUN)", ["build", "--progress", "quiet", "--cache-dir", join(work, "cache"), "--build-context", `base=oci-layout://${layouts.arm64}:1`, "--platform", "linux/arm64", "-o", `type=oci,dest=${one}`, ctx]);
const both = join(work, "out-both");
kiln("kiln build --platform linux/amd64,linux/arm64 (native + emulated RUN)", ["build", "--progress", "quiet", "--no-cache", "--cache-dir", join(work, "cache"), "--build-context", `base=oci-layout://${merged}:1`, "--platform", "linux/amd64,linux/arm64", "-o", `type=oci,dest=${both}`, ctx]);
check("linux/arm64 alone", fileM(one, "arm64"), expected.arm64(fileM(one, "arm64")));
for (const arch of ["amd64", "arm64"]) check(`linux/${arch} in the two-platform index`, fileM(both, arch), expected[arch](fileM(both, arch)));
console.log(`${3 - failed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
