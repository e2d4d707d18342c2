#!/usr/bin/env node
// Benchmark for the build cache: generates a context of many small files (default 20,000),
// builds `FROM scratch` + COPY/ENV/WORKDIR steps with the compiled kiln CLI and reports wall time
// and cached-step counts for: a cold build, a warm rebuild (target: under 1 s), a rebuild after an
// mtime-only touch of every file (content keys ignore mtime: still all cached), a rebuild after
// one file's content changed, and a fresh store fed by --cache-from from a type=local cache and
// (when /usr/bin/docker-registry exists) from a registry cache on 127.0.0.1. Wall times include
// node start-up and writing the OCI layout output.
//
//   node scripts/bench-cache.mjs [--files N] [--no-registry] [--keep]
//
// Needs the compiled CLI (npm run build). Everything is made in one temp dir, removed at exit.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const fileOpt = argv.indexOf("--files");
const fileCount = fileOpt >= 0 ? Math.floor(Number(argv[fileOpt + 1])) : 20_000;
if (!Number.isFinite(fileCount) || fileCount < 1) {
  console.error("--files needs a number >= 1");
  process.exit(2);
}
const useRegistry = !argv.includes("--no-registry") && existsSync("/usr/bin/docker-registry");
const keep = argv.includes("--keep");

const kilnBin = join(repo, "bin", "kiln");
if (!existsSync(join(repo, "dist", "cli", "main.js"))) {
  console.error("kiln is not compiled: run `npm run build` first");
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), "kiln-bench-cache-"));
let registry;
const cleanup = () => {
  if (registry && registry.exitCode === null) registry.kill("SIGTERM");
  if (!keep) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
};
process.on("exit", cleanup);
process.on("SIGINT", () => process.exit(130));

// ---------------------------------------------------------------- the context
const ctx = join(work, "context");
const perDir = 200;
const files = [];
for (let i = 0; i < fileCount; i++) {
  const dir = join(ctx, "src", `d${Math.floor(i / perDir)}`);
  if (i % perDir === 0) mkdirSync(dir, { recursive: true });
  const p = join(dir, `f${i}.txt`);
  writeFileSync(p, `file ${i}\n${"x".repeat(i % 97)}\n`);
  files.push(p);
}
writeFileSync(join(ctx, "VERSION"), "1.0.0\n");
writeFileSync(
  join(ctx, "Dockerfile"),
  ["FROM scratch", "ENV APP=bench", "COPY src /app/src", "WORKDIR /app", "COPY VERSION /app/VERSION", 'LABEL bench="cache"', ""].join("\n"),
);
// let file timestamps age past the stat cache's racy window
await new Promise((r) => setTimeout(r, 200));

// ---------------------------------------------------------------- running kiln
function build(name, store, extra = []) {
  const slug = name.replace(/[^a-z0-9]+/gi, "-");
  const meta = join(work, `${slug}.meta.json`);
  const out = join(work, `${slug}.oci`);
  const args = [kilnBin, "build", "--progress", "quiet", "--cache-dir", store, "-o", `type=oci,dest=${out}`, "--metadata-file", meta, ...extra, ctx];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { encoding: "utf8", env: { ...process.env, SOURCE_DATE_EPOCH: "1700000000" } });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) {
    console.error(`${name}: kiln build failed (${r.status}):\n${r.stderr}`);
    process.exit(1);
  }
  const steps = JSON.parse(readFileSync(meta, "utf8"))["kiln.steps"] ?? [];
  const cached = steps.filter((s) => s.cached).length;
  const digest = JSON.parse(readFileSync(meta, "utf8"))["containerimage.digest"];
  return { name, seconds, cached, steps: steps.length, digest };
}

const rows = [];
const report = (row, note = "") => {
  rows.push(row);
  console.log(`${row.name.padEnd(34)} ${row.seconds.toFixed(2).padStart(7)} s   cached ${row.cached}/${row.steps}   ${row.digest.slice(7, 19)}  ${note}`);
};

console.log(`context: ${fileCount} files; node ${process.version}`);
const store = join(work, "store");
const cold = build("cold", store, ["--cache-to", `type=local,dest=${join(work, "cache-local")},mode=max`]);
report(cold);
const warm = build("warm rebuild", store);
report(warm, warm.seconds < 1 ? "(target < 1 s: ok)" : "(target < 1 s: MISSED)");
const later = new Date(Date.now() + 60_000);
for (const f of files) utimesSync(f, later, later);
await new Promise((r) => setTimeout(r, 200));
report(build("after touching every file (mtime)", store), "(content unchanged: all cached expected)");
report(build("warm again (stat cache refreshed)", store));
report(build("fresh store, --cache-from local", join(work, "store-from-local"), ["--cache-from", `type=local,src=${join(work, "cache-local")}`]));
writeFileSync(files[Math.floor(files.length / 2)], "changed content\n");
await new Promise((r) => setTimeout(r, 200));
report(build("after changing one file", store), "(COPY src and later layer steps re-run)");

// ---------------------------------------------------------------- registry cache
async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

if (useRegistry) {
  const port = await freePort();
  const regDir = join(work, "registry");
  mkdirSync(regDir);
  const cfg = join(regDir, "config.yml");
  writeFileSync(cfg, ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:", `    rootdirectory: ${join(regDir, "data")}`, "http:", `  addr: 127.0.0.1:${port}`, ""].join("\n"));
  const logFile = join(regDir, "log");
  const fd = openSync(logFile, "a");
  registry = spawn("/usr/bin/docker-registry", ["serve", cfg], { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((res) => {
      const s = createServer();
      s.once("error", () => res(true)); // port taken: the registry listens
      s.listen(port, "127.0.0.1", () => s.close(() => res(false)));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const ref = `127.0.0.1:${port}/bench/cache:latest`;
  const dockerConfig = join(work, "docker-config");
  mkdirSync(dockerConfig);
  process.env.DOCKER_CONFIG = dockerConfig;
  report(build("export to registry (cold store)", join(work, "store-reg-a"), ["--cache-to", `type=registry,ref=${ref},mode=max`]));
  report(build("re-export to registry (warm store)", join(work, "store-reg-a"), ["--cache-to", `type=registry,ref=${ref},mode=max`]));
  report(build("fresh store, --cache-from registry", join(work, "store-reg-b"), ["--cache-from", `type=registry,ref=${ref}`]));
}

const same = rows.filter((r) => r.digest === cold.digest).length;
console.log(`\n${same}/${rows.length} builds produced the cold build's image digest (SOURCE_DATE_EPOCH set)`);
