#!/usr/bin/env node
// Benchmark for what attestations add to a warm build (the attestation issue's target: < 5%):
// kiln's library (dist/, run `npm run build` first) builds, in process and warm, a context that is
// a git checkout (FROM a base layer holding a 200-package dpkg status and a 1,000-package
// node_modules, then two COPY steps) into an OCI layout, alternating: no attestation (the peer),
// min provenance, max provenance with an SBOM. Prints each variant's median of N runs (default 7)
// and its ratio to the peer measured in the same run, in wall time and in CPU time (user+system of
// this process: steadier than wall time on a loaded machine; git's child processes not included).
// Then the same three as users see them: `node bin/kiln build` of that context, warm, as whole
// processes (wall time from spawn to exit),
// interleaved, medians of N each and the ratio to the peer. `--no-cli` skips that part; `--keep`
// leaves the work directory (context, base layout, cache) in place.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { gzipSync } from "node:zlib";
import * as tar from "tar-stream";
import { build } from "../dist/index.js";

const runs = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 7);
const cli = !process.argv.includes("--no-cli");
const keep = process.argv.includes("--keep"); // the context, base and cache stay (for profiling one build)
const KILN = new URL("../bin/kiln", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "kiln-bench-attest-"));
const sha = (b) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function baseLayer() {
  const pack = tar.pack();
  const chunks = [];
  const done = (async () => { for await (const c of pack) chunks.push(c); })();
  const add = (name, body) => pack.entry({ name, size: Buffer.byteLength(body), mtime: new Date(0) }, body);
  let status = "";
  for (let i = 0; i < 200; i++) status += `Package: pkg${i}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.${i}-1\nDescription: package ${i}\n long text\n\n`;
  add("var/lib/dpkg/status", status);
  for (let i = 0; i < 1000; i++) add(`app/node_modules/mod${i}/package.json`, JSON.stringify({ name: `mod${i}`, version: `${i}.0.0`, license: "MIT" }));
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** An OCI layout holding one image of `layer` (a tar), tagged v1. */
function writeBase(dir, layerTar) {
  const blobs = join(dir, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const put = (b) => { const d = sha(b); writeFileSync(join(blobs, d.slice(7)), b); return { digest: d, size: b.length }; };
  const gz = gzipSync(layerTar);
  const layer = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...put(gz) };
  const config = { mediaType: "application/vnd.oci.image.config.v1+json", ...put(Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [sha(layerTar)] }, history: [{ created_by: "base" }] }))) };
  const manifest = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers: [layer] })));
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": "v1" } }] }));
}

/** Wall time of one whole `node bin/kiln build` process, from spawn to exit. */
function kilnBuild(args) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [KILN, "build", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (c) => { err += c; });
    child.on("error", reject);
    child.on("exit", (code) => {
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`kiln build ${args.join(" ")} failed (${code}): ${err.trim()}`));
      else resolve(ms);
    });
  });
}

async function cliBench(ctx, cacheDir) {
  const common = ["--cache-dir", cacheDir, "--progress", "quiet", "--build-context", `base=oci-layout://${join(work, "base")}:v1`];
  const variants = {
    "no attestation (peer)": [],
    "--provenance mode=min": ["--provenance", "mode=min"],
    "--provenance mode=max --sbom": ["--provenance", "mode=max", "--sbom", "true"],
  };
  const once = (flags, n) => {
    const dest = join(work, `cli-out-${n}`);
    return kilnBuild([...common, ...flags, "--output", `type=oci,dest=${dest}`, ctx]).finally(() => rmSync(dest, { recursive: true, force: true }));
  };
  for (const f of Object.values(variants)) await once(f, "warm");
  const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let i = 0; i < runs; i++) for (const [k, f] of Object.entries(variants)) times[k].push(await once(f, i));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const peer = median(times["no attestation (peer)"]);
  for (const [k, xs] of Object.entries(times)) {
    const m = median(xs);
    console.log(`${k.padEnd(28)} wall ${m.toFixed(1)} ms (x${(m / peer).toFixed(3)})`);
  }
  console.log(`warm \`node bin/kiln build\` processes, whole-process wall time, ${runs} runs each, interleaved`);
}

try {
  writeBase(join(work, "base"), await baseLayer());
  const ctx = join(work, "ctx");
  mkdirSync(ctx);
  writeFileSync(join(ctx, "Dockerfile"), "FROM base\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n");
  writeFileSync(join(ctx, "a.txt"), "a\n");
  writeFileSync(join(ctx, "b.txt"), "b\n".repeat(10000));
  const git = (...args) => execFileSync("git", ["-C", ctx, ...args], { env: { ...process.env, GIT_AUTHOR_NAME: "b", GIT_AUTHOR_EMAIL: "b@example.com", GIT_COMMITTER_NAME: "b", GIT_COMMITTER_EMAIL: "b@example.com" } });
  git("init", "-q");
  git("add", "-A");
  git("commit", "-q", "-m", "bench");
  git("remote", "add", "origin", "https://git.example.com/bench.git");
  const variants = {
    "no attestation (peer)": { provenance: false },
    "provenance mode=min": { provenance: "min" },
    "provenance mode=max + SBOM": { provenance: "max", sbom: true },
  };
  const cacheDir = join(work, "cache");
  const once = async (attest, n) => {
    const dest = join(work, `out-${n}`);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await build({ context: ctx, cacheDir, buildContexts: { base: `oci-layout://${join(work, "base")}:v1` }, outputs: [{ type: "oci", dest, tar: false }], attest });
    const cpu = process.cpuUsage(c0);
    const ms = performance.now() - t0;
    rmSync(dest, { recursive: true, force: true });
    return { ms, cpu: (cpu.user + cpu.system) / 1000 };
  };
  for (const a of Object.values(variants)) await once(a, "warm"); // warm the cache and the SBOM scan cache
  const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let i = 0; i < runs; i++) for (const [k, a] of Object.entries(variants)) times[k].push(await once(a, i));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const peer = times["no attestation (peer)"];
  const peerMs = median(peer.map((t) => t.ms));
  const peerCpu = median(peer.map((t) => t.cpu));
  for (const [k, xs] of Object.entries(times)) {
    const m = median(xs.map((t) => t.ms));
    const c = median(xs.map((t) => t.cpu));
    console.log(`${k.padEnd(28)} wall ${m.toFixed(1)} ms (x${(m / peerMs).toFixed(3)})   cpu ${c.toFixed(1)} ms (x${(c / peerCpu).toFixed(3)})`);
  }
  console.log(`warm in-process builds, ${runs} runs each, interleaved (target: attestations add < 5%)`);
  if (cli) await cliBench(ctx, cacheDir);
} finally {
  if (keep) console.error(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
