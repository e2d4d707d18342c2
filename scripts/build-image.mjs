#!/usr/bin/env node
// Builds kiln's own image (image/Dockerfile) with kiln itself and prints where it is and what it
// weighs. Run after `npm run build`, as root:
//
//   node scripts/build-image.mjs [--work DIR] [--force]
//
// --work DIR keeps the Debian rootfs, its base layout, the node download and the image (default
// $TMPDIR/kiln-pod-cache); an image built from the same sources is reused unless --force.
// Outputs: DIR/image-<hash>/layout (OCI layout, tag kiln:pod) and DIR/image-<hash>/kiln.docker.tar
// (`podman load -i` / `docker load -i`).
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildKilnImage } from "./lib/kiln-image.mjs";

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
try {
  const img = await buildKilnImage({ workRoot: opt("--work", join(tmpdir(), "kiln-pod-cache")), force: argv.includes("--force"), log: (m) => console.log(m) });
  console.log(`${img.reused ? "reused" : `built in ${img.seconds.toFixed(0)} s`}: ${img.tag} ${img.digest}`);
  console.log(`  OCI layout      ${img.layout}`);
  console.log(`  docker archive  ${img.dockerArchive} (${mb(img.archiveBytes)})`);
  console.log(`  size            ${mb(img.compressed)} compressed (what a registry stores), ${mb(img.uncompressed)} uncompressed, ${img.layers} layers`);
} catch (e) {
  console.error(`build-image: ${e.message}`);
  process.exit(1);
}
