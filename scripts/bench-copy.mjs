#!/usr/bin/env node
// Benchmark for COPY: generates a build context of many files (default 20,000 files, ~500 MB,
// mixed random/text so gzip has real work), builds `FROM scratch` + `COPY . /app` with kiln to an
// OCI layout and reports wall time, MB/s and peak RSS; where buildah is installed, builds the same
// with `buildah bud --storage-driver vfs --isolation chroot` + `buildah push` to an `oci:` layout
// in the same run and prints the ratio kiln/buildah (targets: <= 0.4, kiln peak RSS < 300 MB).
// As root with Debian's docker.io installed, also builds it with Docker's BuildKit on a private
// engine (scripts/lib/docker-engine.mjs; build cache pruned before each run) and prints two ratios:
// against `docker build` alone (Docker keeps layers uncompressed in its store, no export) and
// against `docker build` + `docker save` (export included, as kiln's layout is; target <= 0.6).
//
//   node scripts/bench-copy.mjs [--files N] [--total-mb M] [--level 0-9] [--no-buildah] [--no-docker] [--keep]
//                               [--dist DIR] [--context DIR] [--runs N]
//
// Needs the compiled CLI (npm run build), or --dist pointing at another compiled tree (e.g.
// `tsc --outDir /tmp/x/dist` with /tmp/x/node_modules linked to the repo's). --context reuses an
// existing context directory instead of generating one. --runs N alternates kiln and buildah N
// times each (background load hits both alike) and reports medians, per-run ratios and CPU
// seconds. Peak RSS is read with /usr/bin/time -v when present, else by polling
// /proc/<pid>/status VmHWM. Everything is made in one temp dir, removed at exit.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { DOCKER, dockerInstalled, startDockerEngine } from "./lib/docker-engine.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const numOpt = (name, def, min = 1) => {
  const i = argv.indexOf(name);
  if (i < 0) return def;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v < min) {
    console.error(`${name} needs a number >= ${min}`);
    process.exit(2);
  }
  return v;
};
const fileCount = Math.floor(numOpt("--files", 20_000));
const totalBytes = Math.floor(numOpt("--total-mb", 500) * 1e6);
const level = argv.includes("--level") ? Math.floor(numOpt("--level", 6, 0)) : undefined;
const useBuildah = !argv.includes("--no-buildah");
const keep = argv.includes("--keep");
const strOpt = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? resolve(argv[i + 1]) : undefined;
};
const distDir = strOpt("--dist") ?? join(repo, "dist");
const givenContext = strOpt("--context");
const runs = Math.floor(numOpt("--runs", 1));

if (!existsSync(join(distDir, "cli", "main.js"))) {
  console.error(`kiln is not compiled (${join(distDir, "cli", "main.js")} missing): run \`npm run build\` first`);
  process.exit(1);
}

const which = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).status === 0;
const haveTime = existsSync("/usr/bin/time");
const haveBuildah = useBuildah && which("buildah");
const useDocker = !argv.includes("--no-docker");
const haveDocker = useDocker && process.getuid?.() === 0 && dockerInstalled();

const work = mkdtempSync(join(tmpdir(), "kiln-bench-copy-"));
const cleanup = () => {
  if (!keep) rmSync(work, { recursive: true, force: true });
};
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});
// A launcher for the chosen compiled tree (bin/kiln always loads ../dist).
const kilnBin = join(work, "kiln-launcher.mjs");
writeFileSync(
  kilnBin,
  `import { main } from ${JSON.stringify(pathToFileURL(join(distDir, "cli", "main.js")).href)};\nprocess.exitCode = await main(process.argv.slice(2));\n`,
);

/** Runs a command, measuring wall time and peak RSS (KiB) of it and its children. */
function measure(cmd, args, opts = {}) {
  return new Promise((resolvePromise, reject) => {
    const timeFile = join(work, `time-${Date.now()}-${Math.random().toString(16).slice(2)}.txt`);
    const file = haveTime ? "/usr/bin/time" : cmd;
    const fullArgs = haveTime ? ["-v", "-o", timeFile, cmd, ...args] : args;
    const started = process.hrtime.bigint();
    const child = spawn(file, fullArgs, { stdio: ["ignore", "pipe", "pipe"], ...opts });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b) => (stdout += b));
    child.stderr.on("data", (b) => (stderr += b));
    let polledKiB = 0;
    const poll = haveTime
      ? undefined
      : setInterval(() => {
          try {
            const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
            if (m) polledKiB = Math.max(polledKiB, Number(m[1]));
          } catch {
            // exited
          }
        }, 20);
    child.on("error", reject);
    child.on("close", (code) => {
      if (poll) clearInterval(poll);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      let peakKiB = polledKiB;
      let cpu = NaN;
      if (haveTime && existsSync(timeFile)) {
        const text = readFileSync(timeFile, "utf8");
        const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
        if (m) peakKiB = Number(m[1]);
        const u = /User time \(seconds\): ([\d.]+)/.exec(text);
        const sy = /System time \(seconds\): ([\d.]+)/.exec(text);
        if (u && sy) cpu = Number(u[1]) + Number(sy[1]);
      }
      if (code !== 0) {
        reject(new Error(`${cmd} ${args.join(" ")} exited ${code}:\n${stderr.slice(-2000)}`));
        return;
      }
      resolvePromise({ seconds, peakKiB, cpu, stdout, stderr });
    });
  });
}

/** File sizes: mostly small/medium files plus a few large ones, summing to `total`. */
function fileSizes(count, total) {
  const sizes = [];
  const large = Math.min(10, Math.max(1, Math.floor(count / 2000)));
  const smallCount = count - large;
  // small files: 60% of the bytes, sizes spread from 0.1x to 1.9x the mean
  const smallTotal = Math.floor(total * 0.6);
  const mean = smallTotal / smallCount;
  let used = 0;
  for (let i = 0; i < smallCount; i++) {
    const s = Math.max(0, Math.floor(mean * (0.1 + 1.8 * ((i * 7919) % 1000) / 999)));
    sizes.push(s);
    used += s;
  }
  const rest = Math.max(0, total - used);
  for (let i = 0; i < large; i++) sizes.push(Math.floor(rest / large));
  return sizes;
}

/** Writes the context: files spread over 100 directories; content mixes random bytes and text. */
function generateContext(dir) {
  const pool = Buffer.concat([
    randomBytes(4 << 20),
    Buffer.from("the quick brown fox jumps over the lazy dog 0123456789\n".repeat(Math.ceil((4 << 20) / 55))).subarray(0, 4 << 20),
  ]);
  const sizes = fileSizes(fileCount, totalBytes);
  const dirs = 100;
  for (let d = 0; d < dirs; d++) mkdirSync(join(dir, `d${String(d).padStart(3, "0")}`, "sub"), { recursive: true });
  let offset = 0;
  let bytes = 0;
  sizes.forEach((size, i) => {
    const d = `d${String(i % dirs).padStart(3, "0")}`;
    const path = join(dir, d, i % 3 === 0 ? "sub" : "", `f${i}.dat`);
    const fd = openSync(path, "w");
    let left = size;
    while (left > 0) {
      if (offset >= pool.length) offset = (offset * 31) % 4096;
      const n = Math.min(left, pool.length - offset, 1 << 20);
      writeSync(fd, pool, offset, n);
      offset += n;
      left -= n;
    }
    closeSync(fd);
    bytes += size;
  });
  return bytes;
}

/**
 * Flushes dirty pages (so neither builder pays for writing back the generated context or the
 * other builder's output) and reads every file once so both start with a warm page cache.
 */
function warm(dir) {
  spawnSync("sync");
  spawnSync("sh", ["-c", `find "${dir}" -type f -print0 | xargs -0 cat > /dev/null`]);
}

const mb = (bytes) => bytes / 1e6;
const fmt = (n, d = 2) => n.toFixed(d);

let engine;
try {
  const ctx = givenContext ?? join(work, "context");
  let bytes;
  if (givenContext) {
    const out = spawnSync("sh", ["-c", `find "${ctx}" -type f -printf '%s\\n' | awk '{n++; s+=$1} END {print n, s}'`], { encoding: "utf8" });
    const [n, s] = out.stdout.trim().split(" ").map(Number);
    bytes = s;
    console.log(`context: ${ctx}: ${n} files, ${fmt(mb(bytes), 1)} MB (reused)`);
  } else {
    mkdirSync(ctx);
    const t0 = process.hrtime.bigint();
    bytes = generateContext(ctx);
    const genSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(`context: ${fileCount} files, ${fmt(mb(bytes), 1)} MB (generated in ${fmt(genSeconds, 1)} s)`);
  }
  const dockerfile = join(work, "Dockerfile");
  writeFileSync(dockerfile, "FROM scratch\nCOPY . /app\n");
  if (level !== undefined) console.log(`kiln gzip level: ${level}`);
  console.log(`peak RSS from: ${haveTime ? "/usr/bin/time -v" : "/proc/<pid>/status VmHWM"}`);
  const kilnOut = join(work, "kiln-layout");
  const runKiln = async () => {
    // A fresh cache and output each run, so no run reuses another's layer.
    rmSync(join(work, "kiln-cache"), { recursive: true, force: true });
    rmSync(kilnOut, { recursive: true, force: true });
    warm(ctx);
    return measure(process.execPath, [
      kilnBin, "build", "--progress", "quiet", "--cache-dir", join(work, "kiln-cache"),
      ...(level !== undefined ? ["--compression-level", String(level)] : []),
      "-f", dockerfile, "-o", `type=oci,dest=${kilnOut}`, "-t", "bench:latest", ctx,
    ]);
  };
  const root = join(work, "buildah-root");
  const runroot = join(work, "buildah-runroot");
  const common = ["--storage-driver", "vfs", "--root", root, "--runroot", runroot];
  const runBuildah = async () => {
    spawnSync("buildah", [...common, "rmi", "--all", "--force"], { stdio: "ignore" });
    rmSync(join(work, "buildah-layout"), { recursive: true, force: true });
    warm(ctx);
    const bud = await measure("buildah", [...common, "bud", "--isolation", "chroot", "-f", dockerfile, "-t", "bench:latest", ctx]);
    const push = await measure("buildah", [...common, "push", "bench:latest", `oci:${join(work, "buildah-layout")}:latest`]);
    return {
      seconds: bud.seconds + push.seconds,
      bud: bud.seconds,
      push: push.seconds,
      cpu: bud.cpu + push.cpu,
      peakKiB: Math.max(bud.peakKiB, push.peakKiB),
    };
  };
  // Docker: a private engine, its build cache and image removed before each run.
  const saveFile = join(work, "docker-save.tar");
  if (haveDocker) {
    engine = await startDockerEngine(join(work, "docker"));
    console.log(`docker: ${engine.version} (private engine, BuildKit)`);
  }
  const runDocker = async () => {
    await engine.docker(["image", "rm", "-f", "bench:latest"]);
    await engine.docker(["builder", "prune", "-af"]);
    rmSync(saveFile, { force: true });
    warm(ctx);
    const env = { ...process.env, ...engine.env };
    const build = await measure(DOCKER, ["build", "--network", "host", "--progress", "plain", "-t", "bench:latest", "-f", dockerfile, ctx], { env });
    const save = await measure(DOCKER, ["save", "-o", saveFile, "bench:latest"], { env });
    return { seconds: build.seconds + save.seconds, build: build.seconds, save: save.seconds };
  };
  const median = (xs) => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
  console.log(`load average before: ${load()} (${availableParallelism()} CPUs)`);

  // Runs alternate kiln and buildah (order swapped every other run), so background load on a
  // shared machine hits both alike; the ratio reported is the median of the per-pair ratios.
  const kilnRuns = [];
  const buildahRuns = [];
  const ratios = [];
  const dockerRuns = [];
  const dockerRatios = [];
  for (let r = 0; r < runs; r++) {
    let k;
    let b;
    let d;
    if (r % 2 === 1) {
      if (haveDocker) d = await runDocker();
      if (haveBuildah) b = await runBuildah();
      k = await runKiln();
    } else {
      k = await runKiln();
      if (haveBuildah) b = await runBuildah();
      if (haveDocker) d = await runDocker();
    }
    kilnRuns.push(k);
    let line = `run ${r + 1}: kiln ${fmt(k.seconds)} s (cpu ${fmt(k.cpu, 1)} s, peak RSS ${fmt(k.peakKiB / 1024, 1)} MiB)`;
    if (b) {
      buildahRuns.push(b);
      ratios.push(k.seconds / b.seconds);
      line += `, buildah ${fmt(b.seconds)} s (bud ${fmt(b.bud)} s + push ${fmt(b.push)} s, cpu ${fmt(b.cpu, 1)} s), ratio ${fmt(k.seconds / b.seconds, 3)}`;
    }
    if (d) {
      dockerRuns.push(d);
      dockerRatios.push({ build: k.seconds / d.build, total: k.seconds / d.seconds });
      line += `, docker ${fmt(d.seconds)} s (build ${fmt(d.build)} s + save ${fmt(d.save)} s), ratio ${fmt(k.seconds / d.build, 3)} / ${fmt(k.seconds / d.seconds, 3)}`;
    }
    console.log(line);
  }
  const kiln = { seconds: median(kilnRuns.map((k) => k.seconds)), peakKiB: Math.max(...kilnRuns.map((k) => k.peakKiB)) };
  const verify = spawnSync(process.execPath, [kilnBin, "verify", kilnOut], { encoding: "utf8" });
  if (verify.status !== 0) throw new Error(`kiln verify failed: ${verify.stderr}`);
  const kilnLayers = readdirSync(join(kilnOut, "blobs", "sha256")).length;
  const of = runs > 1 ? ` (median of ${runs})` : "";
  console.log(
    `kiln:    ${fmt(kiln.seconds)} s${of}, ${fmt(mb(bytes) / kiln.seconds, 1)} MB/s, peak RSS ${fmt(kiln.peakKiB / 1024, 1)} MiB` +
      ` (${kilnLayers} blobs, verified)`,
  );
  const kilnRssOk = kiln.peakKiB / 1024 < 300;

  if (haveBuildah) {
    const seconds = median(buildahRuns.map((b) => b.seconds));
    const peak = Math.max(...buildahRuns.map((b) => b.peakKiB));
    console.log(`buildah: ${fmt(seconds)} s${of}, ${fmt(mb(bytes) / seconds, 1)} MB/s, peak RSS ${fmt(peak / 1024, 1)} MiB`);
    const ratio = median(ratios);
    console.log(`ratio kiln/buildah: ${fmt(ratio, 3)}${runs > 1 ? " (median of per-run ratios)" : ""} (target <= 0.4: ${ratio <= 0.4 ? "met" : "NOT met"})`);
    spawnSync("buildah", [...common, "rmi", "--all", "--force"], { stdio: "ignore" });
  } else {
    console.log(useBuildah ? "buildah: not installed, no comparison" : "buildah: skipped (--no-buildah)");
  }
  if (haveDocker) {
    const build = median(dockerRuns.map((d) => d.build));
    const save = median(dockerRuns.map((d) => d.save));
    console.log(`docker:  build ${fmt(build)} s + save ${fmt(save)} s${of} (its daemon's CPU and RSS are not measured)`);
    const rb = median(dockerRatios.map((x) => x.build));
    const rt = median(dockerRatios.map((x) => x.total));
    console.log(`ratio kiln/docker build only: ${fmt(rb, 3)} (Docker keeps the layer uncompressed in its store and exports nothing)`);
    console.log(`ratio kiln/docker build + save: ${fmt(rt, 3)}${runs > 1 ? " (median of per-run ratios)" : ""} (target <= 0.6: ${rt <= 0.6 ? "met" : "NOT met"})`);
  } else {
    console.log(useDocker ? "docker: not available (needs root and Debian's docker.io), no comparison" : "docker: skipped (--no-docker)");
  }
  console.log(`load average after: ${load()}`);
  console.log(`kiln peak RSS target < 300 MiB: ${kilnRssOk ? "met" : "NOT met"}`);
} catch (err) {
  console.error(`bench-copy failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  const problems = engine ? await engine.stop() : [];
  for (const p of problems) console.error(`bench-copy: ${p}`);
  cleanup();
  if (keep) console.log(`kept ${work}`);
}
