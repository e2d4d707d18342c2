// Hand-made OCI image layouts for end-to-end tests: given uncompressed layer tars, writes a
// layout (tag v1) with gzipped layer blobs, a config and a manifest, optionally with config
// diff_ids that lie about the layers (hostile images).
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { sha256Text } from "./tree.js";

export interface HandLayout {
  /** The true diff_id of each layer. */
  diffIDs: string[];
  /** Each layer blob's digest. */
  layers: string[];
  /** `oci-layout://DIR:v1`, for --build-context. */
  ref: string;
}

async function putBlob(dir: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = `sha256:${sha256Text(data)}`;
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await writeFile(join(dir, "blobs", "sha256", digest.slice(7)), data);
  return { digest, size: data.length };
}

/**
 * Writes the layout into `dir`; `claim[i]`, when given, replaces layer i's diff_id in the config.
 * Layers are gzipped, or zstd-compressed (Debian's zstd command) with `compression: "zstd"`.
 */
export async function writeHandLayout(dir: string, tars: Buffer[], claim: Array<string | undefined> = [], options: { compression?: "gzip" | "zstd" } = {}): Promise<HandLayout> {
  const diffIDs = tars.map((t) => `sha256:${sha256Text(t)}`);
  const zstd = options.compression === "zstd";
  const blobs = [];
  for (const t of tars) blobs.push(await putBlob(dir, zstd ? execFileSync("zstd", ["-q", "-c", "-19"], { input: t, maxBuffer: 1 << 30 }) : gzipSync(t)));
  const config = await putBlob(dir, Buffer.from(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: diffIDs.map((d, i) => claim[i] ?? d) },
    history: tars.map(() => ({ created_by: "hand" })),
  })));
  const manifest = await putBlob(dir, Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: blobs.map((b) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar+${zstd ? "zstd" : "gzip"}`, ...b })),
  })));
  await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": "v1" } }],
  }));
  return { diffIDs, layers: blobs.map((b) => b.digest), ref: `oci-layout://${dir}:v1` };
}
