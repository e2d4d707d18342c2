#!/usr/bin/env node
// Benchmark for COPY: times kiln's context walk + source selection + copyEntries (with a
// .dockerignore) and then writeLayer on a generated build context of many small files plus one
// large file, samples peak RSS, and compares in the same run against `tar -c | gzip` of the same
// tree. Library level (no CLI), so it measures exactly the COPY path.
//
//   node scripts/bench-copy.mjs [--files N] [--big-mib M] [--level L]
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const nFiles = opt("--files", 20000);
const bigMiB = opt("--big-mib", 256);
const level = opt("--level", 6);

const work = mkdtempSync(join(tmpdir(), "kiln-bench-copy-"));
try {
  const out = join(work, "dist");
  const cfg = join(work, "tsconfig.json");
  writeFileSync(cfg, JSON.stringify({
    extends: join(repo, "tsconfig.json"),
    compilerOptions: { outDir: out, rootDir: join(repo, "src"), declaration: false, sourceMap: false, typeRoots: [join(repo, "node_modules/@types")] },
    files: [join(repo, "src/context/copy-entries.ts"), join(repo, "src/context/select.ts"), join(repo, "src/context/dockerignore.ts"), join(repo, "src/layer/write-layer.ts")],
  }));
  const tsc = spawnSync(join(repo, "node_modules/.bin/tsc"), ["-p", cfg], { encoding: "utf8" });
  if (!existsSync(join(out, "context/copy-entries.js")) || !existsSync(join(out, "layer/write-layer.js"))) {
    console.error(`failed to compile kiln:\n${tsc.stdout}${tsc.stderr}`);
    process.exit(1);
  }
  symlinkSync(join(repo, "node_modules"), join(work, "node_modules")); // tar-stream etc. for the compiled modules
  const mod = (p) => import(pathToFileURL(join(out, p)).href);
  const { DirContext } = await mod("context/build-context.js");
  const { createIgnoreMatcher } = await mod("context/dockerignore.js");
  const { selectSources } = await mod("context/select.js");
  const { copyEntries } = await mod("context/copy-entries.js");
  const { LayerView } = await mod("layer/view.js");
  const { writeLayer } = await mod("layer/write-layer.js");
  const { BlobStore } = await mod("store/blob-store.js");

  // The context: nFiles small files in 100-file directories, an ignored node_modules, one big file.
  const ctxDir = join(work, "ctx");
  for (let i = 0; i < nFiles; i++) {
    const d = join(ctxDir, "src", `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i}.txt`), `file ${i}\n`.repeat(1 + (i % 20)));
  }
  mkdirSync(join(ctxDir, "node_modules", "pkg"), { recursive: true });
  for (let i = 0; i < 2000; i++) writeFileSync(join(ctxDir, "node_modules", "pkg", `m${i}.js`), "x");
  const big = Buffer.concat([randomBytes(1 << 19), Buffer.alloc(1 << 19, "a")]);
  const chunks = [];
  for (let i = 0; i < bigMiB; i++) chunks.push(big);
  writeFileSync(join(ctxDir, "big.bin"), Buffer.concat(chunks));
  chunks.length = 0;
  writeFileSync(join(ctxDir, ".dockerignore"), "node_modules\n**/*.tmp\n");
  console.log(`context: ${nFiles} small files, 2000 ignored, one ${bigMiB} MiB file; gzip level ${level}`);

  const store = new BlobStore(join(work, "store"));
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 10);
  const t0 = process.hrtime.bigint();
  const ctx = new DirContext(ctxDir, createIgnoreMatcher(["node_modules", "**/*.tmp"]));
  const sources = await selectSources(ctx, ["."]);
  const entries = await copyEntries({ kind: "COPY", sources, dest: "/app/", workdir: "/", view: LayerView.empty(), timestamp: 0 });
  const t1 = process.hrtime.bigint();
  const layer = await writeLayer(entries, store, { level });
  const t2 = process.hrtime.bigint();
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  const sec = (a, b) => Number(b - a) / 1e9;
  const total = sec(t0, t2);
  console.log(`kiln select+copyEntries: ${sec(t0, t1).toFixed(2)} s for ${entries.length} entries`);
  console.log(`kiln writeLayer: ${sec(t1, t2).toFixed(2)} s; total ${total.toFixed(2)} s; compressed ${(layer.descriptor.size / 1048576).toFixed(1)} MiB; peak RSS ${(peak / 1048576).toFixed(0)} MiB (+${((peak - rss0) / 1048576).toFixed(0)} MiB)`);

  const t = process.hrtime.bigint();
  execFileSync("sh", ["-c", `tar -C '${ctxDir}' --exclude=node_modules -cf - . | gzip -${level} -c > '${join(work, "baseline.gz")}'`]);
  const s = sec(t, process.hrtime.bigint());
  console.log(`tar|gzip: ${s.toFixed(2)} s, compressed ${(statSync(join(work, "baseline.gz")).size / 1048576).toFixed(1)} MiB; kiln/tar|gzip time ratio ${(total / s).toFixed(2)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
