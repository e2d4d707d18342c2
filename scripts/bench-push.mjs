#!/usr/bin/env node
// Push benchmark: starts a local docker-registry, writes an OCI layout with random layers, and
// times kiln's pushLayout (cold, then warm = every blob already there, then a cross-repo mount)
// against `skopeo copy` of the same layout, reporting throughput and kiln's peak RSS.
// Usage: npx tsc -p tsconfig.json && node scripts/bench-push.mjs [--layers 8] [--mb 32] [--chunk BYTES]
// (KILN_DIST=<dir> points at another compiled output directory.)
import { spawn, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, mkdtempSync, openSync, readFileSync, closeSync, existsSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const LAYERS = opt("layers", 8);
const MB = opt("mb", 32);
const CHUNK = opt("chunk", 0);

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = process.env.KILN_DIST ?? join(root, "dist");
const distPush = join(dist, "registry", "push.js");
if (!existsSync(distPush)) {
  console.error("dist/registry/push.js not found: run `npx tsc -p tsconfig.json` first");
  process.exit(1);
}
const { pushLayout } = await import(distPush);
const { BlobStore } = await import(join(dist, "store", "blob-store.js"));

const work = mkdtempSync(join(tmpdir(), "kiln-bench-push-"));
let registry;

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Write one random (incompressible) blob of `size` bytes into the layout, streaming. */
async function writeRandomBlob(dir, size) {
  const tmp = join(dir, `tmp-${randomBytes(4).toString("hex")}`);
  const hash = createHash("sha256");
  const out = createWriteStream(tmp);
  const CH = 1 << 20;
  for (let left = size; left > 0; left -= CH) {
    const b = randomBytes(Math.min(CH, left));
    hash.update(b);
    if (!out.write(b)) await new Promise((r) => out.once("drain", r));
  }
  await new Promise((r, j) => out.end((e) => (e ? j(e) : r())));
  const hex = hash.digest("hex");
  await rename(tmp, join(dir, "blobs", "sha256", hex));
  return { digest: `sha256:${hex}`, size };
}

async function putJSON(dir, obj) {
  const buf = Buffer.from(JSON.stringify(obj));
  const hex = createHash("sha256").update(buf).digest("hex");
  await writeFile(join(dir, "blobs", "sha256", hex), buf);
  return { digest: `sha256:${hex}`, size: buf.length };
}

async function makeLayout(dir) {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const layers = [];
  for (let i = 0; i < LAYERS; i++) {
    // random bytes stand in for gzip'd tars: the registry does not look inside
    const b = await writeRandomBlob(join(dir), MB * 1024 * 1024);
    layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...b });
  }
  const config = await putJSON(dir, {
    architecture: "amd64", os: "linux",
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
  });
  const manifest = await putJSON(dir, {
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config }, layers,
  });
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(join(dir, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": "bench" } }],
  }));
  return manifest.digest;
}

async function startRegistry() {
  const port = await freePort();
  const cfg = join(work, "registry.yml");
  await writeFile(cfg, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(work, "registry-data")}\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const logFile = join(work, "registry.log");
  const fd = openSync(logFile, "a");
  const child = spawn("/usr/bin/docker-registry", ["serve", cfg], { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/`);
      if (r.ok) return { child, host: `127.0.0.1:${port}` };
    } catch {
      // not yet listening
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not start: ${readFileSync(logFile, "utf8")}`);
}

function rate(bytes, ms) {
  return `${((bytes / (1024 * 1024)) / (ms / 1000)).toFixed(1)} MiB/s`;
}

try {
  const layoutDir = join(work, "layout");
  console.log(`writing layout: ${LAYERS} layers x ${MB} MiB`);
  const digest = await makeLayout(layoutDir);
  const total = LAYERS * MB * 1024 * 1024;
  registry = await startRegistry();
  const store = new BlobStore(join(work, "store"));
  const options = { store, ...(CHUNK > 0 ? { chunkSize: CHUNK } : {}) };

  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
  const time = async (label, fn) => {
    const t0 = performance.now();
    const r = await fn();
    const ms = performance.now() - t0;
    console.log(`${label.padEnd(34)} ${ms.toFixed(0).padStart(7)} ms  ${rate(total, ms)}`);
    return r;
  };
  const r1 = await time("kiln push (cold)", () => pushLayout(layoutDir, "bench", [`${registry.host}/bench/kiln:1`], options));
  if (r1.digest !== digest) throw new Error(`digest mismatch ${r1.digest} != ${digest}`);
  await time("kiln push (warm: all blobs exist)", () => pushLayout(layoutDir, "bench", [`${registry.host}/bench/kiln:2`], options));
  await time("kiln push (cross-repo mount)", () => pushLayout(layoutDir, "bench", [`${registry.host}/bench/mounted:1`], options));
  clearInterval(sampler);
  console.log(`kiln peak RSS: ${(peak / (1024 * 1024)).toFixed(0)} MiB (layer size ${MB} MiB)`);

  try {
    await time("skopeo copy (cold)", async () => {
      execFileSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `oci:${layoutDir}:bench`, `docker://${registry.host}/bench/skopeo:1`]);
    });
  } catch (err) {
    console.log(`skopeo copy failed: ${err.message.split("\n")[0]}`);
  }
} finally {
  if (registry) registry.child.kill("SIGTERM");
  await rm(work, { recursive: true, force: true });
}
