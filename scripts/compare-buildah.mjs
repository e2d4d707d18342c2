#!/usr/bin/env node
// RUN differential test against buildah: builds every case in testdata/conformance/<case>/ with
// kiln and with `buildah bud --isolation chroot --storage-driver vfs --layers` (private storage
// under a temp dir) on the same busybox base layout, unpacks both images with umoci and compares
// every path (type, mode, owner, size, content sha256, link target, hard-link group, xattrs,
// mtimes older than the build) and the image config. Docker/BuildKit behaviour is the reference;
// buildah's known non-Docker behaviours are listed (with reasons) in BUILDAH_EXCEPTIONS below.
//
//   node scripts/compare-buildah.mjs [--cases a,b,c] [--cases-dir DIR] [--base LAYOUT] [--jobs N]
//                                    [--isolation auto|oci|chroot] [--snapshotter auto|overlay|dir] [--keep]
//
// --base LAYOUT: an OCI layout whose "latest" tag is the busybox base (default: built here from
//   testdata/conformance/_base + /bin/busybox). Prints PASS/FAIL per case with the differences and
//   a final "N passed, N failed" line; exits 1 on any difference, 2 on a usage or set-up error.
// A case folder holds a Dockerfile (FROM base), tiny context files, optionally Dockerfile.buildah
// (an equivalent Dockerfile for buildah when it lacks a feature, e.g. heredocs in buildah 1.28)
// and case.json: { "buildArgs": { "K": "V" }, "buildahArgs": ["--format", "docker"],
// "knownBuildahDifferences": [{ "line": "...", "why": "...", "snapshotter": "overlay" }] }
// (buildahArgs: extra flags buildah needs to do what Docker does by default; "snapshotter", when
// present, limits a known difference to builds with that kiln snapshotter).
// A known difference is an exact difference line where buildah, not kiln, departs from Docker's
// behaviour; "why" says so with a reference. A known line that stops appearing is reported too.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, cpSync, mkdirSync, copyFileSync, lstatSync, lutimesSync } from "node:fs";
import { lstat, readdir, readlink, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { createGunzip } from "node:zlib";
import tarStream from "tar-stream";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const kilnBin = join(repo, "bin", "kiln");

// ---------------------------------------------------------------- arguments
const argv = process.argv.slice(2);
const opts = { cases: null, casesDir: join(repo, "testdata", "conformance"), base: null, jobs: 3, keep: false, isolation: "auto", snapshotter: "auto" };
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

function usage(msg) {
  if (msg) console.error(`compare-buildah: ${msg}`);
  console.error("usage: node scripts/compare-buildah.mjs [--cases a,b,c] [--cases-dir DIR] [--base LAYOUT] [--jobs N] [--isolation auto|oci|chroot] [--snapshotter auto|overlay|dir] [--keep]");
  process.exit(msg ? 2 : 0);
}

function die(msg) {
  console.error(`compare-buildah: ${msg}`);
  process.exit(2);
}

// ---------------------------------------------------------------- exceptions (buildah vs Docker)
/**
 * Mount stubs: buildah 1.28 (chroot isolation) creates the mount targets of a RUN in the rootfs
 * (/dev, /proc, /sys, /run directories; empty /etc/hosts, /etc/resolv.conf, /etc/hostname files)
 * and commits them into the layer. BuildKit removes such stubs after the RUN
 * (moby/buildkit executor/stubs.go, MountStubsCleaner), so Docker images never contain them.
 * A stub path present only in buildah's image, and empty there, is not a difference.
 */
const MOUNT_STUBS = new Set(["dev", "proc", "sys", "run", "etc/hosts", "etc/resolv.conf", "etc/hostname", "run/.containerenv"]);
/** Parents buildah creates for stubs when the base lacks them (only when empty apart from stubs). */
const STUB_PARENTS = new Set(["etc"]);
/** Config labels buildah adds on its own. */
const BUILDAH_LABELS = new Set(["io.buildah.version"]);

// ---------------------------------------------------------------- process helpers
function runAsync(cmd, args, { env, cwd } = {}) {
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

function lastLines(s, n = 3) {
  return s.trim().split("\n").filter(Boolean).slice(-n).join(" | ");
}

async function must(cmd, args, what, env) {
  const r = await runAsync(cmd, args, { env });
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
  return r;
}

// ---------------------------------------------------------------- set-up checks
for (const tool of ["buildah", "umoci", "skopeo", "getfattr"]) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) die(`${tool} is not installed (apt-get install ${tool === "getfattr" ? "attr" : tool})`);
}
if (!existsSync(join(repo, "dist", "cli", "main.js"))) die("kiln is not compiled: run `npx tsc -p tsconfig.json` first");
if (!existsSync(opts.casesDir)) die(`no cases directory ${opts.casesDir}`);

const allCases = readdirSync(opts.casesDir, { withFileTypes: true })
  .filter((d) => d.isDirectory() && !d.name.startsWith("_") && existsSync(join(opts.casesDir, d.name, "Dockerfile")))
  .map((d) => d.name)
  .sort();
const cases = opts.cases ?? allCases;
for (const c of cases) if (!allCases.includes(c)) die(`unknown case ${c} (cases: ${allCases.join(", ")})`);

const work = mkdtempSync(join(tmpdir(), "kiln-compare-"));
// The snapshotter kiln will use (auto resolves as kiln resolves it): some known differences
// hold for one snapshotter only (case.json entries with "snapshotter").
if (!["auto", "overlay", "dir"].includes(opts.snapshotter)) usage("--snapshotter must be auto, overlay or dir");
const { resolveSnapshotter } = await import(new URL(`file://${join(repo, "dist", "fs", "rootfs.js")}`).href);
const snapshotter = (await resolveSnapshotter(join(work, "probe"), opts.snapshotter)).snapshotter;
console.log(`kiln snapshotter: ${snapshotter}`);
const bRoot = join(work, "buildah", "root");
const bRunroot = join(work, "buildah", "runroot");
const bTmp = join(work, "buildah", "tmp");
mkdirSync(bTmp, { recursive: true });
const buildahStore = ["--root", bRoot, "--runroot", bRunroot, "--storage-driver", "vfs"];
const buildahEnv = { TMPDIR: bTmp, BUILDAH_ISOLATION: "chroot" };

let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  if (opts.keep) {
    console.log(`kept work directory ${work}`);
    return;
  }
  // buildah's vfs storage may hold read-only dirs; rm -rf copes as root.
  spawnSync("rm", ["-rf", work]);
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { cleanup(); process.exit(130); });

// ---------------------------------------------------------------- the base image
async function buildBase() {
  const ctx = join(work, "base-context");
  cpSync(join(repo, "testdata", "conformance", "_base"), ctx, { recursive: true });
  copyFileSync("/bin/busybox", join(ctx, "busybox"));
  const layout = join(work, "base-layout");
  await must(process.execPath, [kilnBin, "build", "--progress", "quiet", "--cache-dir", join(work, "base-cache"), "-o", `type=oci,dest=${layout}`, "-t", "base:latest", ctx], "kiln build of the busybox base");
  return layout;
}

const baseLayout = opts.base ?? (await buildBase().catch((e) => die(e.message)));
if (!existsSync(join(baseLayout, "index.json"))) die(`${baseLayout} is not an OCI layout`);
// buildah gets the very same bytes: copied (not rebuilt) into its private store as localhost/base.
await must("skopeo", ["copy", "--quiet", `oci:${baseLayout}:latest`, `containers-storage:[vfs@${bRoot}+${bRunroot}]localhost/base:latest`], "skopeo copy of the base into buildah's store", buildahEnv).catch((e) => die(e.message));

// ---------------------------------------------------------------- layouts
async function readJson(path) {
  return JSON.parse(await readFile(path, "utf8"));
}
async function manifestOf(layout) {
  const index = await readJson(join(layout, "index.json"));
  const desc = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === "latest") ?? index.manifests[0];
  const blob = (d) => join(layout, "blobs", d.replace(":", "/"));
  const manifest = await readJson(blob(desc.digest));
  const config = await readJson(blob(manifest.config.digest));
  return { manifest, config, blob };
}

/** Paths of a layer tar (names without "./" or trailing "/"), streamed. */
async function layerPaths(file) {
  const names = [];
  const extract = tarStream.extract();
  extract.on("entry", (header, stream, next) => {
    names.push(header.name.replace(/^\.\//, "").replace(/\/+$/, ""));
    stream.on("end", next);
    stream.resume();
  });
  const head = Buffer.alloc(2);
  const fd = await import("node:fs/promises").then((m) => m.open(file, "r"));
  await fd.read(head, 0, 2, 0);
  await fd.close();
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  await (gz ? pipeline(createReadStream(file), createGunzip(), extract) : pipeline(createReadStream(file), extract));
  return names.filter((n) => n !== "" && n !== ".");
}

/**
 * One flag per history entry: "empty" (empty_layer, or a layer with nothing in it) or "layer".
 * For buildah, a layer holding only mount stubs counts as empty (BuildKit drops stubs, and drops
 * empty layers, marking the history entry empty_layer: see the exceptions above).
 */
async function historyShape(img, isBuildah) {
  const layers = img.manifest.layers;
  const shape = [];
  let li = 0;
  for (const h of img.config.history ?? []) {
    if (h.empty_layer) {
      shape.push("empty");
      continue;
    }
    const desc = layers[li++];
    if (!desc) {
      shape.push("missing-layer");
      continue;
    }
    let names = await layerPaths(img.blob(desc.digest));
    if (isBuildah) names = names.filter((n) => !MOUNT_STUBS.has(n) && !STUB_PARENTS.has(n));
    shape.push(names.length === 0 ? (isBuildah ? "empty" : "empty-tar") : "layer");
  }
  if (li !== layers.length) shape.push(`(${layers.length - li} layers without history)`);
  return shape;
}

// ---------------------------------------------------------------- trees
async function sha256File(path) {
  const h = createHash("sha256");
  await pipeline(createReadStream(path), h);
  return h.digest("hex");
}

/** getfattr's escaped names (\ooo octal bytes, \\) back to a string. */
function unescapeGetfattr(s) {
  const bytes = [];
  for (let i = 0; i < s.length; ) {
    if (s[i] === "\\" && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 4;
    } else if (s[i] === "\\" && s[i + 1] === "\\") {
      bytes.push(0x5c);
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i], "utf8"));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Every xattr below root (symlinks not followed): relative path -> { name: hexvalue }. */
async function readXattrs(root) {
  const r = await runAsync("getfattr", ["-R", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", root]);
  const map = new Map();
  let cur = null;
  for (const line of r.stdout.split("\n")) {
    if (line.startsWith("# file: ")) {
      const abs = unescapeGetfattr(line.slice(8));
      cur = abs === root ? "" : abs.slice(root.length + 1);
      map.set(cur, {});
    } else if (cur !== null && line.includes("=")) {
      const eq = line.indexOf("=");
      map.get(cur)[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  return map;
}

/** Walks an unpacked rootfs into path -> entry. */
async function walk(root) {
  const tree = new Map();
  const inodes = new Map();
  const visit = async (rel) => {
    const abs = rel === "" ? root : join(root, rel);
    const st = await lstat(abs);
    const e = { mode: (st.mode & 0o7777).toString(8).padStart(4, "0"), uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
    if (st.isSymbolicLink()) Object.assign(e, { type: "symlink", target: await readlink(abs) });
    else if (st.isFile()) Object.assign(e, { type: "file", size: st.size, sha256: await sha256File(abs) });
    else if (st.isDirectory()) e.type = "dir";
    else if (st.isFIFO()) e.type = "fifo";
    else if (st.isCharacterDevice() || st.isBlockDevice()) Object.assign(e, { type: st.isCharacterDevice() ? "char" : "block", rdev: st.rdev });
    else e.type = "other";
    if (!st.isDirectory() && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      if (!inodes.has(key)) inodes.set(key, []);
      inodes.get(key).push(rel);
    }
    tree.set(rel, e);
    if (st.isDirectory()) for (const n of (await readdir(abs)).sort()) await visit(rel === "" ? n : `${rel}/${n}`);
  };
  await visit("");
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    for (const p of group) tree.get(p).hardlinks = group.filter((q) => q !== p).sort().join(",");
  }
  for (const [p, x] of await readXattrs(root)) {
    const e = tree.get(p);
    if (e && Object.keys(x).length) e.xattrs = Object.entries(x).sort().map(([k, v]) => `${k}=${v}`).join(" ");
  }
  return tree;
}

function isEmptyStub(tree, path) {
  const e = tree.get(path);
  if (!e) return false;
  if (e.type === "file") return e.size === 0;
  if (e.type !== "dir") return false;
  const prefix = `${path}/`;
  for (const p of tree.keys()) if (p.startsWith(prefix) && !(MOUNT_STUBS.has(p) && isEmptyStub(tree, p))) return false;
  return true;
}

function describe(e) {
  if (!e) return "absent";
  const parts = [e.type, e.mode, `${e.uid}:${e.gid}`];
  if (e.type === "file") parts.push(`${e.size}B`, e.sha256.slice(0, 12));
  if (e.target !== undefined) parts.push(`-> ${e.target}`);
  if (e.hardlinks) parts.push(`links=${e.hardlinks}`);
  if (e.xattrs) parts.push(`xattrs=${e.xattrs}`);
  return parts.join(" ");
}

const FIELDS = ["type", "mode", "uid", "gid", "size", "sha256", "target", "rdev", "hardlinks", "xattrs"];

function compareTrees(kiln, buildah, buildStart) {
  const diffs = [];
  const paths = [...new Set([...kiln.keys(), ...buildah.keys()])].sort();
  for (const p of paths) {
    const k = kiln.get(p);
    const b = buildah.get(p);
    const shown = p === "" ? "/" : `/${p}`;
    if (!k && b) {
      // buildah-only mount stub (see MOUNT_STUBS): not in Docker's image either.
      if ((MOUNT_STUBS.has(p) || STUB_PARENTS.has(p)) && isEmptyStub(buildah, p)) continue;
      diffs.push(`${shown}: only in buildah (${describe(b)})`);
      continue;
    }
    if (k && !b) {
      diffs.push(`${shown}: only in kiln (${describe(k)})`);
      continue;
    }
    const bad = FIELDS.filter((f) => (k[f] ?? null) !== (b[f] ?? null));
    // mtimes: compared for non-directories that predate the build in either image (base,
    // context or `touch -d` files); files both builders create during the run carry the
    // build's wall-clock time, which differs by design. Directory mtimes are not compared.
    if (k.type !== "dir" && Math.min(k.mtime, b.mtime) < buildStart - 2 && k.mtime !== b.mtime) bad.push("mtime");
    if (bad.length) {
      diffs.push(`${shown}: ${bad.map((f) => `${f} kiln=${f === "mtime" ? new Date(k.mtime * 1000).toISOString() : k[f] ?? "-"} buildah=${f === "mtime" ? new Date(b.mtime * 1000).toISOString() : b[f] ?? "-"}`).join("; ")}`);
    }
  }
  return diffs;
}

function normalizeConfigValue(v) {
  if (v === undefined || v === null || v === "") return undefined;
  if (Array.isArray(v)) return v.length ? v : undefined;
  if (typeof v === "object") {
    const keys = Object.keys(v).sort();
    if (!keys.length) return undefined;
    return Object.fromEntries(keys.map((k) => [k, v[k]]));
  }
  return v;
}

function compareConfigs(k, b) {
  const diffs = [];
  const kc = k.config ?? {};
  const bc = b.config ?? {};
  const bLabels = Object.fromEntries(Object.entries(bc.Labels ?? {}).filter(([name]) => !BUILDAH_LABELS.has(name)));
  const fields = {
    Env: [kc.Env, bc.Env],
    Cmd: [kc.Cmd, bc.Cmd],
    Entrypoint: [kc.Entrypoint, bc.Entrypoint],
    WorkingDir: [kc.WorkingDir, bc.WorkingDir],
    User: [kc.User, bc.User],
    ExposedPorts: [kc.ExposedPorts, bc.ExposedPorts],
    Volumes: [kc.Volumes, bc.Volumes],
    Labels: [kc.Labels, bLabels],
    StopSignal: [kc.StopSignal, bc.StopSignal],
    architecture: [k.architecture, b.architecture],
    os: [k.os, b.os],
  };
  for (const [name, [kv, bv]] of Object.entries(fields)) {
    const a = JSON.stringify(normalizeConfigValue(kv));
    const c = JSON.stringify(normalizeConfigValue(bv));
    if (a !== c) diffs.push(`config ${name}: kiln=${a ?? "-"} buildah=${c ?? "-"}`);
  }
  return diffs;
}

/** Truncate the mtime of everything under `dir` (symlinks included, not followed) to a whole second. */
function wholeSecondMtimes(dir) {
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isDirectory()) wholeSecondMtimes(p);
    const st = lstatSync(p);
    const t = Math.floor(st.mtimeMs / 1000);
    lutimesSync(p, t, t);
  }
}

// ---------------------------------------------------------------- one case
async function runCase(name) {
  const dir = join(opts.casesDir, name);
  const cw = join(work, "cases", name);
  mkdirSync(cw, { recursive: true });
  const cfgPath = join(dir, "case.json");
  const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) : {};
  const buildArgs = Object.entries(cfg.buildArgs ?? {}).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]);
  const bDockerfile = existsSync(join(dir, "Dockerfile.buildah")) ? join(dir, "Dockerfile.buildah") : join(dir, "Dockerfile");
  // The context is a copy with whole-second mtimes: Docker truncates sub-second mtimes in layer
  // tars (BuildKit/containerd write PAX headers with the time truncated; kiln does the same) while
  // buildah's Go tar writer rounds them in USTAR headers, so any file whose mtime has a fraction
  // of .5 s or more (a fresh checkout's) would differ by a second for buildah's reason, not kiln's.
  const ctx = join(cw, "context");
  cpSync(dir, ctx, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  wholeSecondMtimes(ctx);
  const buildStart = Math.floor(Date.now() / 1000);
  const kLayout = join(cw, "kiln");
  const bLayout = join(cw, "buildah");
  const tag = `localhost/case-${name}:latest`;
  const [kr, br] = await Promise.all([
    runAsync(process.execPath, [kilnBin, "build", "--isolation", opts.isolation, "--snapshotter", opts.snapshotter, "--progress", "plain", "--cache-dir", join(cw, "kiln-cache"), "-o", `type=oci,dest=${kLayout}`, "-t", `case-${name}:latest`,
      "--build-context", `base=oci-layout://${baseLayout}:latest`, ...buildArgs, "-f", join(dir, "Dockerfile"), ctx]),
    runAsync("buildah", [...buildahStore, "bud", "--isolation", "chroot", "--layers", "--pull=never", "-t", tag, ...buildArgs, ...(cfg.buildahArgs ?? []), "-f", bDockerfile, ctx], { env: buildahEnv }),
  ]);
  if (kr.code !== 0) return { diffs: [`kiln build failed (exit ${kr.code}): ${lastLines(kr.stderr, 4)}`], known: 0 };
  if (br.code !== 0) return { diffs: [`buildah bud failed (exit ${br.code}): ${lastLines(br.stderr || br.stdout, 4)}`], known: 0 };
  await must("buildah", [...buildahStore, "push", "--quiet", tag, `oci:${bLayout}:latest`], "buildah push", buildahEnv);
  const kBundle = join(cw, "kiln-bundle");
  const bBundle = join(cw, "buildah-bundle");
  await must("umoci", ["unpack", "--image", `${kLayout}:latest`, kBundle], "umoci unpack of kiln's image");
  await must("umoci", ["unpack", "--image", `${bLayout}:latest`, bBundle], "umoci unpack of buildah's image");
  const [kTree, bTree] = await Promise.all([walk(join(kBundle, "rootfs")), walk(join(bBundle, "rootfs"))]);
  const diffs = compareTrees(kTree, bTree, buildStart);
  const kImg = await manifestOf(kLayout);
  const bImg = await manifestOf(bLayout);
  diffs.push(...compareConfigs(kImg.config, bImg.config));
  const [kShape, bShape] = await Promise.all([historyShape(kImg, false), historyShape(bImg, true)]);
  if (kShape.join(" ") !== bShape.join(" ")) diffs.push(`history (empty/layer per entry): kiln=[${kShape.join(" ")}] buildah=[${bShape.join(" ")}]`);
  if (!opts.keep) rmSync(cw, { recursive: true, force: true });
  const known = (cfg.knownBuildahDifferences ?? []).filter((k) => (k.snapshotter ?? snapshotter) === snapshotter).map((k) => k.line);
  const unexpected = diffs.filter((d) => !known.includes(d));
  const gone = known.filter((k) => !diffs.includes(k)).map((k) => `known buildah difference no longer seen (update case.json): ${k}`);
  return { diffs: [...unexpected, ...gone], known: diffs.length - unexpected.length };
}

// ---------------------------------------------------------------- main
const results = new Map();
let nextCase = 0;
async function worker() {
  while (nextCase < cases.length) {
    const name = cases[nextCase++];
    const t0 = Date.now();
    let diffs;
    let known = 0;
    try {
      ({ diffs, known } = await runCase(name));
    } catch (e) {
      diffs = [`error: ${e instanceof Error ? e.message : String(e)}`];
    }
    results.set(name, diffs);
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    const note = known ? `, ${known} known buildah difference${known > 1 ? "s" : ""}` : "";
    if (diffs.length === 0) console.log(`PASS ${name} (${secs}s${note})`);
    else {
      const shown = diffs.slice(0, 40).map((d) => `    ${d}`);
      if (diffs.length > 40) shown.push(`    ... and ${diffs.length - 40} more`);
      console.log(`FAIL ${name} (${secs}s${note})\n${shown.join("\n")}`);
    }
  }
}
await Promise.all(Array.from({ length: Math.min(opts.jobs, cases.length) }, worker));
const failed = cases.filter((c) => results.get(c).length > 0);
console.log(`${cases.length - failed.length} passed, ${failed.length} failed${failed.length ? ` (${failed.join(", ")})` : ""}`);
process.exitCode = failed.length ? 1 : 0;
