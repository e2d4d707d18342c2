#!/usr/bin/env node
// RUN differential test against buildah: builds every case in testdata/conformance/<case>/ with
// kiln and with `buildah bud --isolation chroot --storage-driver vfs --layers` (private storage
// under a temp dir) on the same busybox base layout, unpacks both images with umoci and compares
// every path (type, mode, owner, size, content sha256, link target, hard-link group, xattrs,
// mtimes older than the build) and the image config. Docker/BuildKit behaviour is the reference
// (compare-docker.mjs checks against Docker itself); buildah's known non-Docker behaviours are
// listed (with reasons) in the cases' case.json and in scripts/lib/compare-trees.mjs (mount stubs).
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
// present, limits a known difference to builds with that kiln snapshotter). compare-docker.mjs
// reads the same folders (its keys: "docker", "knownDockerDifferences"). "expectFailure": "why"
// (both scripts): both builds must fail, kiln's error naming a Dockerfile line. "platforms":
// ["linux/amd64", "linux/arm64"] (this script only; compare-docker builds the host's): kiln builds
// with --platform a,b and buildah with `bud --platform a,b --manifest`; both must give an index
// listing the same platforms, and each platform's image (taken out with skopeo --override-arch)
// is compared as any case's.
// A known difference is an exact difference line where buildah, not kiln, departs from Docker's
// behaviour; "why" says so with a reference. A known line that stops appearing is reported too.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  applyKnown, buildBase, expectedFailure, hasTool, kilnBuild, kilnSnapshotter, lastLines, manifestOf, must, parseCompareArgs, prepareContext, readCase, repo, runAsync, runCases, selectCases,
} from "./lib/compare-harness.mjs";
import { BUILDAH_LAYER_STUBS, compareConfigs, compareTrees, historyShape, walk } from "./lib/compare-trees.mjs";

const opts = parseCompareArgs("compare-buildah", process.argv.slice(2),
  "node scripts/compare-buildah.mjs [--cases a,b,c] [--cases-dir DIR] [--base LAYOUT] [--jobs N] [--isolation auto|oci|chroot] [--snapshotter auto|overlay|dir] [--keep]");

function die(msg) {
  console.error(`compare-buildah: ${msg}`);
  process.exit(2);
}

/** Config labels buildah adds on its own. */
const BUILDAH_LABELS = new Set(["io.buildah.version"]);

// ---------------------------------------------------------------- set-up checks
for (const tool of ["buildah", "umoci", "skopeo", "getfattr"]) {
  if (!hasTool(tool)) die(`${tool} is not installed (apt-get install ${tool === "getfattr" ? "attr" : tool})`);
}
if (!existsSync(join(repo, "dist", "cli", "main.js"))) die("kiln is not compiled: run `npx tsc -p tsconfig.json` first");
const cases = selectCases(opts, die);

const work = mkdtempSync(join(tmpdir(), "kiln-compare-"));
// The snapshotter kiln will use (auto resolves as kiln resolves it): some known differences
// hold for one snapshotter only (case.json entries with "snapshotter").
const snapshotter = await kilnSnapshotter(work, opts.snapshotter);
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
const baseLayout = opts.base ?? (await buildBase(work).catch((e) => die(e.message)));
if (!existsSync(join(baseLayout, "index.json"))) die(`${baseLayout} is not an OCI layout`);
// buildah gets the very same bytes: copied (not rebuilt) into its private store as localhost/base.
await must("skopeo", ["copy", "--quiet", `oci:${baseLayout}:latest`, `containers-storage:[vfs@${bRoot}+${bRunroot}]localhost/base:latest`], "skopeo copy of the base into buildah's store", buildahEnv).catch((e) => die(e.message));

// ---------------------------------------------------------------- one case
async function runCase(name) {
  const { dir, cfg, buildArgs } = readCase(opts, name);
  const cw = join(work, "cases", name);
  mkdirSync(cw, { recursive: true });
  const bDockerfile = existsSync(join(dir, "Dockerfile.buildah")) ? join(dir, "Dockerfile.buildah") : join(dir, "Dockerfile");
  const ctx = join(cw, "context");
  prepareContext(dir, ctx);
  const buildStart = Math.floor(Date.now() / 1000);
  const kLayout = join(cw, "kiln");
  const bLayout = join(cw, "buildah");
  const tag = `localhost/case-${name}:latest`;
  const platforms = cfg.platforms ?? [];
  const [kr, br] = await Promise.all([
    kilnBuild(opts, { name, dir, ctx, cw, layout: kLayout, baseLayout, buildArgs, extra: platforms.length > 0 ? ["--platform", platforms.join(",")] : [] }),
    runAsync("buildah", [...buildahStore, "bud", "--isolation", "chroot", "--layers", "--pull=never", ...(platforms.length > 0 ? ["--platform", platforms.join(","), "--manifest", tag] : ["-t", tag]), ...buildArgs, ...(cfg.buildahArgs ?? []), "-f", bDockerfile, ctx], { env: buildahEnv }),
  ]);
  const failure = expectedFailure(cfg, kr, br, "buildah");
  if (failure) return applyKnown(failure.diffs, cfg.knownBuildahDifferences, snapshotter, "buildah");
  if (kr.code !== 0) return { diffs: [`kiln build failed (exit ${kr.code}): ${lastLines(kr.stderr, 4)}`], known: 0 };
  if (br.code !== 0) return applyKnown([`buildah bud failed (exit ${br.code}): ${lastLines(br.stderr || br.stdout, 4)}`], cfg.knownBuildahDifferences, snapshotter, "buildah");
  if (platforms.length > 0) {
    await must("buildah", [...buildahStore, "manifest", "push", "--quiet", "--all", tag, `oci:${bLayout}:latest`], "buildah manifest push", buildahEnv);
    const diffs = await compareIndexes(kLayout, bLayout, platforms);
    for (const p of platforms) {
      const [os, arch, variant] = p.split("/");
      const pick = async (from, to) => {
        await must("skopeo", ["copy", "--quiet", "--override-os", os, "--override-arch", arch, ...(variant ? ["--override-variant", variant] : []), `oci:${from}:latest`, `oci:${to}:latest`], `skopeo copy of the ${p} image`);
        return to;
      };
      const one = await compareImages(await pick(kLayout, `${kLayout}-${arch}`), await pick(bLayout, `${bLayout}-${arch}`), join(cw, arch), buildStart);
      diffs.push(...one.map((d) => `${p}: ${d}`));
    }
    if (!opts.keep) rmSync(cw, { recursive: true, force: true });
    return applyKnown(diffs, cfg.knownBuildahDifferences, snapshotter, "buildah");
  }
  await must("buildah", [...buildahStore, "push", "--quiet", tag, `oci:${bLayout}:latest`], "buildah push", buildahEnv);
  const diffs = await compareImages(kLayout, bLayout, cw, buildStart);
  if (!opts.keep) rmSync(cw, { recursive: true, force: true });
  return applyKnown(diffs, cfg.knownBuildahDifferences, snapshotter, "buildah");
}

/** The platforms each index lists, in order: the same for kiln's and buildah's. */
async function compareIndexes(kLayout, bLayout, platforms) {
  const listed = async (layout) => {
    const { readFile } = await import("node:fs/promises");
    const top = JSON.parse(await readFile(join(layout, "index.json"), "utf8")).manifests[0];
    const index = JSON.parse(await readFile(join(layout, "blobs", top.digest.replace(":", "/")), "utf8"));
    if (!Array.isArray(index.manifests)) return ["(not an index)"];
    return index.manifests.map((m) => [m.platform?.os, m.platform?.architecture, m.platform?.variant].filter(Boolean).join("/"));
  };
  const [k, b] = await Promise.all([listed(kLayout), listed(bLayout)]);
  const diffs = [];
  if (k.join(",") !== platforms.join(",")) diffs.push(`kiln's index lists ${k.join(",")}, not ${platforms.join(",")}`);
  if ([...k].sort().join(",") !== [...b].sort().join(",")) diffs.push(`index platforms: kiln=[${k.join(",")}] buildah=[${b.join(",")}]`);
  return diffs;
}

/** Every difference between kiln's and buildah's image ("latest" of each layout): trees, config, history shape. */
async function compareImages(kLayout, bLayout, cw, buildStart) {
  mkdirSync(cw, { recursive: true });
  const kBundle = join(cw, "kiln-bundle");
  const bBundle = join(cw, "buildah-bundle");
  await must("umoci", ["unpack", "--image", `${kLayout}:latest`, kBundle], "umoci unpack of kiln's image");
  await must("umoci", ["unpack", "--image", `${bLayout}:latest`, bBundle], "umoci unpack of buildah's image");
  const [kTree, bTree] = await Promise.all([walk(join(kBundle, "rootfs")), walk(join(bBundle, "rootfs"))]);
  const diffs = compareTrees(kTree, bTree, buildStart, "buildah");
  const kImg = await manifestOf(kLayout);
  const bImg = await manifestOf(bLayout);
  diffs.push(...compareConfigs(kImg.config, bImg.config, "buildah", { ignoreLabels: BUILDAH_LABELS }));
  const [kShape, bShape] = await Promise.all([
    historyShape(kImg.config.history, kImg.layerFiles, {}),
    historyShape(bImg.config.history, bImg.layerFiles, { stubs: BUILDAH_LAYER_STUBS }),
  ]);
  if (kShape.join(" ") !== bShape.join(" ")) diffs.push(`history (empty/layer per entry): kiln=[${kShape.join(" ")}] buildah=[${bShape.join(" ")}]`);
  return diffs;
}

// ---------------------------------------------------------------- main
const failed = await runCases(cases, opts.jobs, runCase, "buildah");
process.exitCode = failed.length ? 1 : 0;
