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
// Needs root. The engine (scripts/lib/docker-engine.mjs) installs docker.io with apt-get when
// /usr/bin/docker, /usr/sbin/dockerd or containerd is missing (with a policy-rc.d that keeps the
// system's docker service from starting). The /usr/bin/docker client is used even when another
// `docker` comes first on PATH. Same case folders as compare-buildah.mjs; case.json keys read here:
//   "docker": { "skip": "why", "args": [...] } — skip: Docker 20.10's built-in frontend cannot
//       build the case (heredocs; `# syntax=` needs Docker Hub), compared with buildah only;
//       args: extra `docker build` flags
//   "knownDockerDifferences": [{ "line": "...", "why": "...", "snapshotter": "dir" }]
//   "expectFailure": "why" — both builds must fail (kiln naming a Dockerfile line); shared with
//       compare-buildah.mjs
// Prints PASS/SKIP/FAIL per case and "N passed, N failed, N skipped"; exits 1 on any difference,
// 2 on a usage or set-up error.
import { spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import tarStream from "tar-stream";
import {
  applyKnown, buildBase, expectedFailure, hasTool, kilnBuild, kilnSnapshotter, lastLines, manifestOf, must, parseCompareArgs, prepareContext, readCase, repo, runCases, selectCases,
} from "./lib/compare-harness.mjs";
import { ALL_CONFIG_FIELDS, DOCKER_LAYER_STUBS, compareConfigs, compareTrees, historyShape, walk } from "./lib/compare-trees.mjs";
import { ensureDockerPackage, startDockerEngine } from "./lib/docker-engine.mjs";

const t0 = Date.now();
const opts = parseCompareArgs("compare-docker", process.argv.slice(2),
  "node scripts/compare-docker.mjs [--cases a,b,c] [--cases-dir DIR] [--base LAYOUT] [--jobs N] [--isolation auto|oci|chroot] [--snapshotter auto|overlay|dir] [--keep]");

function die(msg) {
  console.error(`compare-docker: ${msg}`);
  process.exit(2);
}

// ---------------------------------------------------------------- set-up checks
if (process.getuid?.() !== 0) die("needs root (it starts a private dockerd)");
if (!existsSync(join(repo, "dist", "cli", "main.js"))) die("kiln is not compiled: run `npm run build` first");
const cases = selectCases(opts, die);
try {
  ensureDockerPackage();
} catch (e) {
  die(e.message);
}
for (const tool of ["umoci", "skopeo", "getfattr"]) {
  if (!hasTool(tool)) die(`${tool} is not installed (apt-get install ${tool === "getfattr" ? "attr" : tool})`);
}

// ---------------------------------------------------------------- the private engine
// Short paths: unix socket names are limited to 108 bytes.
const work = mkdtempSync(join(tmpdir(), "kiln-dk-"));
const snapshotter = await kilnSnapshotter(work, opts.snapshotter);
console.log(`kiln snapshotter: ${snapshotter}`);

let engine = null;
let cleaned = false;
async function cleanup() {
  if (cleaned) return [];
  cleaned = true;
  const problems = engine ? await engine.stop() : [];
  if (opts.keep) console.log(`kept work directory ${work}`);
  else spawnSync("rm", ["-rf", work]);
  return problems;
}
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { void cleanup().finally(() => process.exit(130)); });

async function fail(msg) {
  await cleanup();
  die(msg);
}

try {
  engine = await startDockerEngine(join(work, "engine"));
} catch (e) {
  await fail(e.message);
}
console.log(`docker engine ${engine.version} (private, pid ${engine.pids.dockerd}; containerd pid ${engine.pids.containerd}) up in ${engine.startSeconds.toFixed(1)}s`);
const docker = engine.docker;
const mustDocker = engine.mustDocker;

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
  if (dr.code !== 0) return applyKnown([`docker build failed (exit ${dr.code}): ${lastLines(dr.stderr || dr.stdout, 4)}`], cfg.knownDockerDifferences, snapshotter, "docker");
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
      historyShape(kImg.config.history, kImg.layerFiles, {}),
      historyShape(dConfig.history, dImg.layerFiles, { stubs: DOCKER_LAYER_STUBS }),
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
