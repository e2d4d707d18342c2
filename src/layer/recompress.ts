// Output compression as buildx spells it (`compression=zstd|gzip|uncompressed`,
// `compression-level=N`, `force-compression=true`): parsing, and the conversion of an image's
// layers into it. The build cache only ever holds the layers as the steps wrote them (gzip); a
// conversion is a separate, deterministic function of (source blob, compression, level), kept
// under <cache-dir>/conversions/ so a rebuild converts nothing twice, and a converted blob never
// stands in for another compression (the record names both). diff_ids do not change.
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { KilnError, UsageError } from "../errors.js";
import type { Layer } from "../image/image.js";
import { MediaType, type Descriptor, type Digest } from "../image/oci.js";
import { writeFileAtomic, createdWriteStream } from "../store/atomic-file.js";
import { HashCounter, type BlobStore } from "../store/blob-store.js";
import { decompressStream, gzipStream } from "./compress.js";
import { ZSTD_DEFAULT_LEVEL, ZSTD_MAX_LEVEL, zstdCompressor } from "./zstd.js";
import { PassThrough, type Duplex } from "node:stream";

export type CompressionType = "gzip" | "zstd" | "uncompressed";

export interface LayerCompression {
  type: CompressionType;
  /** gzip 0-9 (default 6), zstd 1-22 (default 3); none for uncompressed. */
  level?: number;
  /** Convert base layers too (default: only the layers this build wrote). */
  force: boolean;
}

const MEDIA_TYPES: Record<CompressionType, string> = {
  gzip: MediaType.ociLayerGzip,
  zstd: MediaType.ociLayerZstd,
  uncompressed: MediaType.ociLayer,
};

/** The compression of a layer media type (OCI or Docker spelling), undefined for others. */
export function compressionOf(mediaType: string): CompressionType | undefined {
  const mt = mediaType.toLowerCase();
  if (mt.endsWith("+gzip") || mt.endsWith(".tar.gzip")) return "gzip";
  if (mt.endsWith("+zstd") || mt.endsWith(".tar.zstd")) return "zstd";
  if (mt.endsWith(".tar")) return "uncompressed";
  return undefined;
}

/**
 * `compression=`, `compression-level=`, `force-compression=` of an --output's fields (removed from
 * `fields`); undefined when none is given.
 */
export function parseCompression(fields: Record<string, string>, raw: string): LayerCompression | undefined {
  const type = fields.compression;
  const level = fields["compression-level"];
  const force = fields["force-compression"];
  delete fields.compression;
  delete fields["compression-level"];
  delete fields["force-compression"];
  if (type === undefined && level === undefined && force === undefined) return undefined;
  const t = (type ?? "gzip").toLowerCase();
  if (t !== "gzip" && t !== "zstd" && t !== "uncompressed") {
    throw new UsageError("OPTION_INVALID", `--output ${raw}: compression must be gzip, zstd or uncompressed, not "${type}"`);
  }
  const out: LayerCompression = { type: t, force: false };
  if (force !== undefined) {
    if (!["true", "false", "1", "0", ""].includes(force.toLowerCase())) throw new UsageError("OPTION_INVALID", `--output ${raw}: force-compression must be true or false`);
    out.force = force === "" || force.toLowerCase() === "true" || force === "1";
  }
  if (level !== undefined) {
    const max = t === "zstd" ? ZSTD_MAX_LEVEL : 9;
    const min = t === "zstd" ? 1 : 0;
    if (t === "uncompressed") throw new UsageError("OPTION_INVALID", `--output ${raw}: compression-level does not apply to uncompressed layers`);
    if (!/^\d+$/.test(level) || Number(level) < min || Number(level) > max) {
      throw new UsageError("OPTION_INVALID", `--output ${raw}: compression-level for ${t} must be a whole number from ${min} to ${max}`);
    }
    out.level = Number(level);
  }
  return out;
}

/** Two requests that give the same layers. */
export function sameCompression(a: LayerCompression | undefined, b: LayerCompression | undefined): boolean {
  const norm = (c: LayerCompression | undefined): string => (c ? `${c.type}:${effectiveLevel(c) ?? ""}:${c.force}` : "gzip:6:false");
  return norm(a) === norm(b);
}

function effectiveLevel(c: LayerCompression): number | undefined {
  if (c.type === "uncompressed") return undefined;
  return c.level ?? (c.type === "zstd" ? ZSTD_DEFAULT_LEVEL : 6);
}

function compressor(c: LayerCompression, what: string): Duplex {
  switch (c.type) {
    case "gzip":
      return gzipStream({ level: effectiveLevel(c)! });
    case "zstd":
      return zstdCompressor(effectiveLevel(c)!, what);
    case "uncompressed":
      return new PassThrough();
  }
}

interface ConversionRecord {
  source: Digest;
  compression: CompressionType;
  level: number | null;
  descriptor: Descriptor;
}

/**
 * `layers` in compression `c`: a layer already in that compression is kept as it is, and so is
 * one `keep` names (a base layer) unless `c.force`; the others are decompressed and compressed
 * again (the same tar, so the same diff_id), each conversion done once per store.
 */
export async function recompressLayers(
  layers: readonly Layer[],
  store: BlobStore,
  c: LayerCompression,
  keep: (layer: Layer) => boolean,
  signal?: AbortSignal,
): Promise<Layer[]> {
  const out: Layer[] = [];
  for (const layer of layers) {
    const current = compressionOf(layer.descriptor.mediaType);
    if (current === undefined) throw new KilnError("FORMAT_UNSUPPORTED", `cannot recompress a layer of type ${layer.descriptor.mediaType}`);
    const sameType = current === c.type && (c.level === undefined || c.type === "uncompressed");
    if (sameType || (!c.force && keep(layer))) {
      out.push(layer);
      continue;
    }
    out.push({ descriptor: await convert(layer, store, c, signal), diffID: layer.diffID });
  }
  return out;
}

async function convert(layer: Layer, store: BlobStore, c: LayerCompression, signal?: AbortSignal): Promise<Descriptor> {
  const level = effectiveLevel(c) ?? null;
  const dir = join(store.root, "conversions");
  const recordPath = join(dir, `${layer.descriptor.digest.replace(":", "-")}-${c.type}${level === null ? "" : `-${level}`}.json`);
  const known = await readFile(recordPath, "utf8").then((t) => JSON.parse(t) as ConversionRecord, () => undefined);
  if (known && known.source === layer.descriptor.digest && known.compression === c.type && known.level === level && (await store.has(known.descriptor.digest))) {
    return known.descriptor;
  }
  const what = `layer ${layer.descriptor.digest}`;
  const tmp = await store.tempPath();
  const tarHash = new HashCounter();
  const blobHash = new HashCounter();
  try {
    await pipeline(store.open(layer.descriptor.digest), decompressStream(layer.descriptor.mediaType, what), tarHash, compressor(c, what), blobHash, await createdWriteStream(tmp), ...(signal ? [{ signal }] : []));
    if (tarHash.digest() !== layer.diffID) {
      throw new KilnError("LAYER_DIGEST_MISMATCH", `${what}: its content hashes to ${tarHash.digest()}, not its diff_id ${layer.diffID}`);
    }
    const digest = blobHash.digest();
    await store.commit(tmp, digest);
    const descriptor: Descriptor = { mediaType: MEDIA_TYPES[c.type], digest, size: blobHash.size };
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(recordPath, JSON.stringify({ source: layer.descriptor.digest, compression: c.type, level, descriptor } satisfies ConversionRecord));
    return descriptor;
  } finally {
    await rm(tmp, { force: true });
  }
}
