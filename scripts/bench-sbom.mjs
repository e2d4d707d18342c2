#!/usr/bin/env node
// Benchmark for the SBOM scanner (the attestation issue's target: < 1 s): a gzipped layer with a
// dpkg status of 200 installed packages (with multi-line descriptions, as Debian's are) and a
// 1,000-package node_modules (each with a package.json, an index.js and a README that the scanner
// must skip), plus a 5 MiB binary it must skip too; kiln's library (dist/, run `npm run build`
// first) streams the layer, keeps the databases and builds the SPDX document. Prints the median
// of N runs (default 5) and the package count.
import { performance } from "node:perf_hooks";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import * as tar from "tar-stream";
import { scanFiles } from "../dist/attest/scan-files.js";
import { findPackages } from "../dist/attest/packages.js";
import { spdxDocument } from "../dist/attest/spdx.js";

const runs = Number(process.argv[2] ?? 5);

async function makeLayer() {
  const pack = tar.pack();
  const chunks = [];
  const done = (async () => { for await (const c of pack) chunks.push(c); })();
  const add = (name, body) => pack.entry({ name, size: Buffer.byteLength(body), mtime: new Date(0) }, body);
  let status = "";
  for (let i = 0; i < 200; i++) {
    status += `Package: pkg${i}\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: ${100 + i}\n`;
    status += `Maintainer: Debian <debian@example.org>\nArchitecture: amd64\nVersion: 1.${i}-${i % 7}+deb12u1\nDepends: libc6 (>= 2.34)\n`;
    status += `Description: package ${i}\n This is a long description line for package ${i}.\n .\n It continues here.\n\n`;
  }
  add("var/lib/dpkg/status", status);
  for (let i = 0; i < 1000; i++) {
    const dir = `app/node_modules/${i % 10 === 0 ? `@scope${i}/` : ""}mod${i}`;
    add(`${dir}/package.json`, JSON.stringify({ name: i % 10 === 0 ? `@scope${i}/mod${i}` : `mod${i}`, version: `${i}.0.0`, license: "MIT", description: "x".repeat(200) }));
    add(`${dir}/index.js`, `module.exports = ${i};\n`.repeat(50));
    add(`${dir}/README.md`, "# readme\n".repeat(100));
  }
  add("usr/bin/big", Buffer.alloc(5 * 1024 * 1024, 7));
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

const blob = await makeLayer();
const layer = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", open: () => Readable.from([blob]) };
const times = [];
let count = 0;
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  const files = await scanFiles([layer]);
  const pkgs = findPackages(files);
  JSON.stringify(spdxDocument({ name: "bench", namespace: "https://kiln.dev/spdx/bench", created: new Date(0), toolVersion: "bench", packages: pkgs }));
  times.push(performance.now() - t0);
  count = pkgs.length;
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`sbom scan: layer ${(blob.length / 1048576).toFixed(1)} MiB gzip, ${count} packages, median ${median.toFixed(0)} ms, best ${times[0].toFixed(0)} ms over ${runs} runs (target < 1000 ms)`);
if (count !== 1200) { console.error(`expected 1200 packages, found ${count}`); process.exit(1); }
