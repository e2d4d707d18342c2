#!/usr/bin/env node
// Layer extraction benchmark: the Debian bookworm minbase base (debootstrap, imported by kiln as
// a one-layer OCI layout, see scripts/lib/debian-base.mjs) extracted into a plain directory by
// kiln's applyLayer, alternately without and with the diff_id check (the uncompressed stream
// hashed while it is extracted, as every extraction does now). Prints the median of each and
// the ratio, against the target: hashing costs < 10% of extraction time.
//
//   node scripts/bench-pull.mjs [--rootfs DIR] [--mirror URL] [--suite bookworm] [--rounds N] [--keep]
//
// --rootfs DIR: reuse the debootstrap tree in DIR (made there, and kept, when DIR is missing).
// Needs root (debootstrap) and the compiled kiln (npx tsc -p tsconfig.json).
import { spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { aptMirror, ensureDebianRootfs, importDebianBase } from "./lib/debian-base.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : def;
};
const die = (msg) => {
  console.error(`bench-pull: ${msg}`);
  process.exit(2);
};
const dist = join(repo, "dist");
const rounds = Number(opt("--rounds", "5"));
if (!(rounds >= 1)) die("--rounds needs a positive number");
if (!existsSync(join(dist, "snapshot", "apply-layer.js"))) die("kiln is not compiled: run `npx tsc -p tsconfig.json` first");
if (process.getuid?.() !== 0) die("run as root (debootstrap and extraction with owners need it)");

const { applyLayer } = await import(pathToFileURL(join(dist, "snapshot", "apply-layer.js")).href);
const { decompressor, openVerified } = await import(pathToFileURL(join(dist, "snapshot", "layer-source.js")).href);

const work = mkdtempSync(join(tmpdir(), "kiln-bench-pull-"));
process.on("exit", () => (argv.includes("--keep") ? console.log(`kept ${work}`) : spawnSync("rm", ["-rf", work])));
process.on("SIGINT", () => process.exit(130));

let rootfs;
try {
  ({ rootfs } = ensureDebianRootfs({ dir: resolve(opt("--rootfs", join(work, "rootfs"))), suite: opt("--suite", "bookworm"), mirror: opt("--mirror", aptMirror()), log: (m) => console.log(m) }));
} catch (err) {
  die(err.message);
}
const kilnBin = join(repo, "bin", "kiln");
const layout = join(work, "layout");
try {
  importDebianBase({ rootfs, layout, kilnBin, workDir: work });
} catch (err) {
  die(err.message);
}
const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
const blobPath = (d) => join(layout, "blobs", "sha256", d.slice("sha256:".length));
const manifest = JSON.parse(readFileSync(blobPath(index.manifests[0].digest), "utf8"));
const config = JSON.parse(readFileSync(blobPath(manifest.config.digest), "utf8"));
const desc = manifest.layers[0];
const layer = { diffID: config.rootfs.diff_ids[0], digest: desc.digest, mediaType: desc.mediaType, open: () => createReadStream(blobPath(desc.digest)) };
console.log(`layer: ${desc.digest} (${(desc.size / 1e6).toFixed(1)} MB gzipped)`);

async function extract(verified) {
  const dest = join(work, `x-${process.hrtime.bigint()}`);
  mkdirSync(dest);
  const t0 = process.hrtime.bigint();
  if (verified) {
    const { stream, done } = openVerified(layer);
    await applyLayer(dest, stream, { layerName: desc.digest, privileged: true });
    await done;
  } else {
    const dec = decompressor(desc.mediaType);
    const feeding = pipeline(layer.open(), dec);
    await applyLayer(dest, dec, { layerName: desc.digest, privileged: true });
    await feeding;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  spawnSync("rm", ["-rf", dest]);
  return s;
}

await extract(false); // warm the page cache and the code
const plain = [];
const hashed = [];
for (let i = 0; i < rounds; i++) {
  plain.push(await extract(false));
  hashed.push(await extract(true));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p = median(plain);
const h = median(hashed);
const ratio = h / p;
console.log(`extraction without diff_id check: ${p.toFixed(3)} s (median of ${rounds})`);
console.log(`extraction with diff_id check:    ${h.toFixed(3)} s`);
console.log(`ratio: ${ratio.toFixed(3)} (target < 1.10) ${ratio < 1.1 ? "OK" : "OVER"}`);
writeFileSync(join(work, "result.json"), JSON.stringify({ plain, hashed, ratio }));
