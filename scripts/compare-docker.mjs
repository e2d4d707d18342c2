#!/usr/bin/env node
// Differential test against Docker itself: starts a private Docker 20.10 engine (Debian's
// docker.io: /usr/sbin/dockerd with its own containerd, socket, data root and exec root under a
// temp dir — never the system's), loads the kiln-built busybox base into it (`docker load` of a
// docker-archive made from the OCI layout by skopeo), builds every case of testdata/conformance/
// with kiln and with `DOCKER_BUILDKIT=1 /usr/bin/docker build --network host`, reads Docker's image
// config exactly as `docker save` writes it, unpacks both images with umoci and compares every
// path (type, mode incl. setuid/setgid/sticky, owner, size, content sha256, link target, hard-link
// group, xattrs, mtimes older than the build), the config and the history's empty/layer shape
// (scripts/lib/compare-trees.mjs). An image without layers (`docker save` refuses it) is compared
// through `docker image inspect`. dockerd and containerd are stopped by PID at the end; a mount
// left under the temp dir is an error.
//
//   node scripts/compare-docker.mjs [--cases a,b,c] [--cases-dir DIR] [--base LAYOUT] [--jobs N]
//                                   [--isolation auto|oci|chroot] [--snapshotter auto|overlay|dir] [--keep]
//
// Needs root. Installs docker.io with apt-get when /usr/bin/docker or /usr/sbin/dockerd is missing
// (with a policy-rc.d that keeps the system's docker service from starting). The /usr/bin/docker
// client is used even when another `docker` comes first on PATH. Same case folders as
// compare-buildah.mjs; case.json keys read here:
//   "docker": { "skip": "why" }  — Docker 20.10's built-in frontend cannot build the case
//                                  (heredocs; `# syntax=` needs Docker Hub): compared with buildah only
//   "knownDockerDifferences": [{ "line": "...", "why": "...", "snapshotter": "dir" }]
// Prints PASS/SKIP/FAIL per case and "N passed, N failed, N skipped"; exits 1 on any difference,
// 2 on a usage or set-up error.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import tarStream from "tar-stream";
import {
  applyKnown, buildBase, expectedFailure, hasTool, kilnBuild, kilnSnapshotter, lastLines, manifestOf, must, parseCompareArgs, prepareContext, readCase, repo, runAsync, runCases, selectCases,
} from "./lib/compare-harness.mjs";
import { ALL_CONFIG_FIELDS, compareConfigs, compareTrees, historyShape, walk } from "./lib/compare-trees.mjs";

const t0 = Date.now();
const opts = parseCompareArgs("compare-docker", process.argv.slice(2),
  "node scripts/compare-docker.mjs [--cases a,b,c] [--cases-dir DIR] [--base LAYOUT] [--jobs N] [--isolation auto|oci|chroot] [--snapshotter auto|overlay|dir] [--keep]");

function die(msg) {
  console.error(`compare-docker: ${msg}`);
  process.exit(2);
}

const DOCKER = "/usr/bin/docker";
const DOCKERD = "/usr/sbin/dockerd";
const CONTAINERD = "/usr/bin/containerd";

// ---------------------------------------------------------------- set-up checks
if (process.getuid?.() !== 0) die("needs root (it starts a private dockerd)");
if (!existsSync(join(repo, "dist", "cli", "main.js"))) die("kiln is not compiled: run `npm run build` first");
const cases = selectCases(opts, die);
ensureDockerPackage();
for (const tool of ["umoci", "skopeo", "getfattr"]) {
  if (!hasTool(tool)) die(`${tool} is not installed (apt-get install ${tool === "getfattr" ? "attr" : tool})`);
}

/** Installs Debian's docker.io when its client or daemon is missing, without starting the system's service. */
function ensureDockerPackage() {
  if (existsSync(DOCKER) && existsSync(DOCKERD) && existsSync(CONTAINERD)) return;
  console.log("installing Debian's docker.io (apt-get) ...");
  const policy = "/usr/sbin/policy-rc.d";
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, "#!/bin/sh\n# written by kiln's compare-docker.mjs during apt-get install docker.io\nexit 101\n", { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    let r = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "docker.io"], { env, encoding: "utf8" });
    if (r.status !== 0) {
      spawnSync("apt-get", ["update"], { env, encoding: "utf8" });
      r = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "docker.io"], { env, encoding: "utf8" });
    }
    if (r.status !== 0) die(`apt-get install docker.io failed: ${lastLines(r.stderr || r.stdout)}`);
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  if (!existsSync(DOCKER) || !existsSync(DOCKERD)) die("docker.io is installed but /usr/bin/docker or /usr/sbin/dockerd is missing");
}

// ---------------------------------------------------------------- the private engine
// Short paths: unix socket names are limited to 108 bytes.
const work = mkdtempSync(join(tmpdir(), "kiln-dk-"));
const snapshotter = await kilnSnapshotter(work, opts.snapshotter);
console.log(`kiln snapshotter: ${snapshotter}`);
const eng = join(work, "engine");
const paths = {
  ctdRoot: join(eng, "containerd-root"),
  ctdState: join(eng, "containerd-state"),
  ctdSock: join(eng, "containerd.sock"),
  dataRoot: join(eng, "data"),
  execRoot: join(eng, "exec"),
  sock: join(eng, "docker.sock"),
  clientConfig: join(eng, "client"),
};
for (const d of [paths.ctdRoot, paths.ctdState, paths.dataRoot, paths.execRoot, paths.clientConfig]) mkdirSync(d, { recursive: true });
writeFileSync(join(eng, "containerd.toml"), [
  "version = 2",
  `root = ${JSON.stringify(paths.ctdRoot)}`,
  `state = ${JSON.stringify(paths.ctdState)}`,
  "[grpc]",
  `  address = ${JSON.stringify(paths.ctdSock)}`,
  "[ttrpc]",
  `  address = ${JSON.stringify(`${paths.ctdSock}.ttrpc`)}`,
  "[debug]",
  '  address = ""',
  "[metrics]",
  '  address = ""',
  "",
].join("\n"));
writeFileSync(join(eng, "daemon.json"), "{}\n");
writeFileSync(join(paths.clientConfig, "config.json"), "{}\n");
const dockerEnv = { DOCKER_HOST: `unix://${paths.sock}`, DOCKER_CONFIG: paths.clientConfig, DOCKER_BUILDKIT: "1" };

/** A daemon child: its output goes to a log file, `exited` resolves when it ends. */
function startDaemon(cmd, args, log) {
  const out = join(eng, log);
  const fd = openLog(out);
  const child = spawn(cmd, args, { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  child.on("error", () => {});
  return { child, exited, log: out, running: true };
}
function openLog(path) {
  writeFileSync(path, "");
  return openSync(path, "a");
}

function logTail(d, n = 5) {
  try {
    return lastLines(readFileSync(d.log, "utf8"), n);
  } catch {
    return "";
  }
}

async function waitFor(what, d, probe, seconds) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    if (await probe()) return;
    let timer;
    const gone = await Promise.race([d.exited, new Promise((res) => { timer = setTimeout(() => res(null), 200); })]);
    clearTimeout(timer);
    if (gone) throw new Error(`${what} exited (${gone.code ?? gone.signal}): ${logTail(d)}`);
    if (Date.now() > until) throw new Error(`${what} did not come up in ${seconds}s: ${logTail(d)}`);
  }
}

/** Stops a daemon by its PID: SIGTERM, then SIGKILL after `seconds`. */
async function stopDaemon(d, seconds) {
  if (!d || !d.running) return;
  d.running = false;
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  d.child.kill("SIGTERM");
  let timer;
  const ended = await Promise.race([d.exited, new Promise((res) => { timer = setTimeout(() => res(null), seconds * 1000); })]);
  clearTimeout(timer);
  if (!ended) {
    d.child.kill("SIGKILL");
    await d.exited;
  }
}

/** Mount points at or below `dir` (from /proc/self/mountinfo, octal escapes decoded). */
function mountsBelow(dir) {
  const text = readFileSync("/proc/self/mountinfo", "utf8");
  const decode = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return text.split("\n").filter(Boolean).map((l) => decode(l.split(" ")[4])).filter((m) => m === dir || m.startsWith(`${dir}/`));
}

let containerd = null;
let dockerd = null;
let cleaned = false;
async function cleanup() {
  if (cleaned) return [];
  cleaned = true;
  const problems = [];
  await stopDaemon(dockerd, 30);
  await stopDaemon(containerd, 15);
  const left = mountsBelow(work);
  if (left.length) {
    problems.push(`mounts left under ${work} after dockerd stopped: ${left.join(", ")}`);
    for (const m of left.reverse()) spawnSync("umount", ["-l", m]);
  }
  if (opts.keep) console.log(`kept work directory ${work}`);
  else spawnSync("rm", ["-rf", work]);
  return problems;
}
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { void cleanup().finally(() => process.exit(130)); });

async function fail(msg) {
  await cleanup();
  die(msg);
}

const engineStart = Date.now();
try {
  containerd = startDaemon(CONTAINERD, ["--config", join(eng, "containerd.toml")], "containerd.log");
  await waitFor("containerd", containerd, async () => existsSync(paths.ctdSock), 30);
  dockerd = startDaemon(DOCKERD, [
    "--config-file", join(eng, "daemon.json"), "--containerd", paths.ctdSock, "--data-root", paths.dataRoot, "--exec-root", paths.execRoot,
    "-H", `unix://${paths.sock}`, "--pidfile", join(eng, "docker.pid"), "--iptables=false", "--ip6tables=false", "--bridge=none",
    "--storage-driver", "overlay2",
  ], "dockerd.log");
  await waitFor("dockerd", dockerd, async () => existsSync(paths.sock) && (await runAsync(DOCKER, ["version", "--format", "{{.Server.Version}}"], { env: dockerEnv })).code === 0, 60);
} catch (e) {
  await fail(e.message);
}
const version = (await runAsync(DOCKER, ["version", "--format", "{{.Server.Version}}"], { env: dockerEnv })).stdout.trim();
console.log(`docker engine ${version} (private, pid ${dockerd.child.pid}; containerd pid ${containerd.child.pid}) up in ${((Date.now() - engineStart) / 1000).toFixed(1)}s`);

const docker = (args) => runAsync(DOCKER, args, { env: dockerEnv });
async function mustDocker(args, what) {
  const r = await docker(args);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
  return r;
}

// ---------------------------------------------------------------- the base image
let baseLayout;
try {
  baseLayout = opts.base ?? (await buildBase(work));
  if (!existsSync(join(baseLayout, "index.json"))) throw new Error(`${baseLayout} is not an OCI layout`);
  // Docker gets the very same layers: a docker-archive of the layout, loaded as base:latest.
  const archive = join(work, "base.tar");
  await must("skopeo", ["copy", "--quiet", `oci:${baseLayout}:latest`, `docker-archive:${archive}:base:latest`], "skopeo copy of the base to a docker-archive");
  await mustDocker(["load", "-q", "-i", archive], "docker load of the base");
} catch (e) {
  await fail(e.message);
}

// ---------------------------------------------------------------- docker save
/** The manifest.json and config of a `docker save` tar, as written (JSON parsed, nothing dropped). */
async function readSaved(file) {
  const files = new Map();
  const extract = tarStream.extract();
  extract.on("entry", (header, stream, next) => {
    const chunks = [];
    const keep = header.name === "manifest.json" || /^[0-9a-f]{64}\.json$/.test(header.name);
    stream.on("data", (b) => keep && chunks.push(b));
    stream.on("end", () => {
      if (keep) files.set(header.name, Buffer.concat(chunks).toString("utf8"));
      next();
    });
  });
  await pipeline(createReadStream(file), extract);
  const manifest = JSON.parse(files.get("manifest.json") ?? "null");
  if (!Array.isArray(manifest) || manifest.length !== 1) throw new Error("docker save wrote no single-image manifest.json");
  const config = JSON.parse(files.get(manifest[0].Config) ?? "null");
  if (!config) throw new Error(`docker save wrote no config ${manifest[0].Config}`);
  return { manifest: manifest[0], config };
}

// ---------------------------------------------------------------- one case
async function runCase(name) {
  const { dir, cfg, buildArgs } = readCase(opts, name);
  if (cfg.docker?.skip) return { skip: `compared with buildah only: ${cfg.docker.skip}` };
  const cw = join(work, "cases", name);
  mkdirSync(cw, { recursive: true });
  const ctx = join(cw, "context");
  prepareContext(dir, ctx);
  const buildStart = Math.floor(Date.now() / 1000);
  const kLayout = join(cw, "kiln");
  const tag = `case-${name}:latest`;
  const [kr, dr] = await Promise.all([
    kilnBuild(opts, { name, dir, ctx, cw, layout: kLayout, baseLayout, buildArgs }),
    docker(["build", "--network", "host", "--progress", "plain", "-t", tag, ...buildArgs, ...(cfg.docker?.args ?? []), "-f", join(dir, "Dockerfile"), ctx]),
  ]);
  const failure = expectedFailure(cfg, kr, dr, "docker");
  if (failure) return applyKnown(failure.diffs, cfg.knownDockerDifferences, snapshotter, "docker");
  if (kr.code !== 0) return { diffs: [`kiln build failed (exit ${kr.code}): ${lastLines(kr.stderr, 4)}`], known: 0 };
  if (dr.code !== 0) return { diffs: [`docker build failed (exit ${dr.code}): ${lastLines(dr.stderr || dr.stdout, 4)}`], known: 0 };
  const kImg = await manifestOf(kLayout);
  const inspect = JSON.parse((await mustDocker(["image", "inspect", tag], "docker image inspect")).stdout)[0];
  const diffs = [];
  const kBundle = join(cw, "kiln-bundle");
  await must("umoci", ["unpack", "--image", `${kLayout}:latest`, kBundle], "umoci unpack of kiln's image");
  const kTree = await walk(join(kBundle, "rootfs"));
  if ((inspect.RootFS?.Layers ?? []).length === 0) {
    // `docker save` refuses an image without layers: compare the inspected config, and an empty tree.
    const dConfig = { config: inspect.Config, architecture: inspect.Architecture, os: inspect.Os, variant: inspect.Variant };
    diffs.push(...compareConfigs(kImg.config, dConfig, "docker", { fields: ALL_CONFIG_FIELDS }));
    diffs.push(...compareTrees(kTree, new Map([["", kTree.get("")]]), buildStart, "docker"));
    if (kImg.layerFiles.length) diffs.push(`layers: kiln=${kImg.layerFiles.length} docker=0`);
  } else {
    const saved = join(cw, "docker-save.tar");
    await mustDocker(["save", "-o", saved, tag], "docker save");
    const { config: dConfig } = await readSaved(saved);
    const dLayout = join(cw, "docker");
    await must("skopeo", ["copy", "--quiet", `docker-archive:${saved}`, `oci:${dLayout}:latest`], "skopeo copy of docker's image to an OCI layout");
    const dBundle = join(cw, "docker-bundle");
    await must("umoci", ["unpack", "--image", `${dLayout}:latest`, dBundle], "umoci unpack of docker's image");
    const dTree = await walk(join(dBundle, "rootfs"));
    diffs.push(...compareTrees(kTree, dTree, buildStart, "docker"));
    diffs.push(...compareConfigs(kImg.config, dConfig, "docker", { fields: ALL_CONFIG_FIELDS }));
    const dImg = await manifestOf(dLayout);
    const [kShape, dShape] = await Promise.all([
      historyShape(kImg.config.history, kImg.layerFiles, { stubsAreEmpty: false }),
      historyShape(dConfig.history, dImg.layerFiles, { stubsAreEmpty: true }),
    ]);
    if (kShape.join(" ") !== dShape.join(" ")) diffs.push(`history (empty/layer per entry): kiln=[${kShape.join(" ")}] docker=[${dShape.join(" ")}]`);
  }
  await docker(["image", "rm", "-f", tag]);
  if (!opts.keep) rmSync(cw, { recursive: true, force: true });
  return applyKnown(diffs, cfg.knownDockerDifferences, snapshotter, "docker");
}

// ---------------------------------------------------------------- main
let failed;
try {
  failed = await runCases(cases, opts.jobs, runCase, "docker");
} finally {
  const problems = await cleanup();
  for (const p of problems) console.log(`FAIL cleanup: ${p}`);
  if (problems.length) failed = [...(failed ?? []), "cleanup"];
}
console.log(`compare-docker: ${cases.length} cases in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
process.exitCode = failed.length ? 1 : 0;
