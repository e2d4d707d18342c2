#!/usr/bin/env node
// Benchmark for layer writing: times kiln's writeLayer (tar -> sha256 -> parallel gzip -> sha256 ->
// store) on a large generated file, samples peak RSS, and compares in the same run against
// `tar -c | gzip` (and `tar -c | pigz` when installed) on the same input.
//
//   node scripts/bench-layer.mjs [--size-mib N] [--level L] [--sparse] [--stream]
//
// The file is read as COPY reads context files (hostFileOpener: straight into the tar chunks);
// --stream reads it through a fs.ReadStream instead (as entries without a host path are read).
// --sparse uses a sparse file of zeros (fast to create; measures memory/overhead, not gzip work).
import { spawnSync, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, createReadStream, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const sizeMiB = opt("--size-mib", 1024);
const level = opt("--level", 6);
const sparse = args.includes("--sparse");
const streamed = args.includes("--stream");

const work = mkdtempSync(join(tmpdir(), "kiln-bench-"));
try {
  // Compile the modules the benchmark uses into the work dir.
  const out = join(work, "dist");
  const cfg = join(work, "tsconfig.json");
  writeFileSync(cfg, JSON.stringify({
    extends: join(repo, "tsconfig.json"),
    compilerOptions: { outDir: out, rootDir: join(repo, "src"), declaration: false, sourceMap: false, typeRoots: [join(repo, "node_modules/@types")] },
    files: [join(repo, "src/layer/write-layer.ts")],
  }));
  const tsc = spawnSync(join(repo, "node_modules/.bin/tsc"), ["-p", cfg], { encoding: "utf8" });
  if (!existsSync(join(out, "layer/write-layer.js"))) {
    console.error(`failed to compile kiln:\n${tsc.stdout}${tsc.stderr}`);
    process.exit(1);
  }
  const { writeLayer } = await import(pathToFileURL(join(out, "layer/write-layer.js")).href);
  const { BlobStore } = await import(pathToFileURL(join(out, "store/blob-store.js")).href);
  const { hostFileOpener } = await import(pathToFileURL(join(out, "layer/file-content.js")).href);

  // The input: one big file (sparse zeros, or mixed random/text data that compresses ~2:1).
  const dataDir = join(work, "data");
  mkdirSync(dataDir);
  const file = join(dataDir, "big.bin");
  const size = sizeMiB * 1024 * 1024;
  const fd = openSync(file, "w");
  if (sparse) {
    ftruncateSync(fd, size);
  } else {
    const text = Buffer.from("the quick brown fox jumps over the lazy dog 0123456789\n".repeat(20000));
    for (let off = 0; off < size; off += 1 << 20) {
      const block = Buffer.concat([randomBytes(384 * 1024), text.subarray(0, (1 << 20) - 384 * 1024)]);
      writeSync(fd, block.subarray(0, Math.min(block.length, size - off)));
    }
  }
  closeSync(fd);
  console.log(`input: ${sizeMiB} MiB ${sparse ? "sparse zeros" : "mixed random/text"}, gzip level ${level}, read ${streamed ? "as a stream" : "directly"}`);

  // kiln
  const store = new BlobStore(join(work, "store"));
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 10);
  const t0 = process.hrtime.bigint();
  const layer = await writeLayer([{ path: "big.bin", type: "file", mode: 0o644, uid: 0, gid: 0, mtime: 0, size, open: streamed ? () => createReadStream(file, { highWaterMark: 1 << 20 }) : hostFileOpener(file) }], store, { level });
  const kilnSec = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  const mbps = (n, s) => (n / (1024 * 1024) / s).toFixed(1);
  console.log(`kiln writeLayer: ${kilnSec.toFixed(2)} s, ${mbps(layer.uncompressedSize, kilnSec)} MiB/s (uncompressed), compressed ${(layer.descriptor.size / 1048576).toFixed(1)} MiB, peak RSS ${(peak / 1048576).toFixed(0)} MiB (+${((peak - rss0) / 1048576).toFixed(0)} MiB)`);

  // baselines in the same run: tar | gzip (and pigz), output discarded
  const baseline = (name, compressor) => {
    const t = process.hrtime.bigint();
    execFileSync("sh", ["-c", `tar -C '${dataDir}' -cf - big.bin | ${compressor} -${level} -c > '${join(work, "baseline.gz")}'`]);
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    const csize = statSync(join(work, "baseline.gz")).size;
    console.log(`${name}: ${s.toFixed(2)} s, ${mbps(size, s)} MiB/s, compressed ${(csize / 1048576).toFixed(1)} MiB; kiln/${name} time ratio ${(kilnSec / s).toFixed(2)}`);
  };
  baseline("tar|gzip", "gzip");
  if (spawnSync("sh", ["-c", "command -v pigz"]).status === 0) baseline("tar|pigz", "pigz");
  else console.log("pigz not installed: skipped");
} finally {
  rmSync(work, { recursive: true, force: true });
}
