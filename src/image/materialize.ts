// Serializing an Image: config and manifest JSON with a stable key order, in OCI or Docker
// schema2 media types (layer media types converted to match, never mixed), written to the store.
import { KilnError } from "../errors.js";
import type { BlobStore } from "../store/blob-store.js";
import type { Image, MaterializedImage } from "./image.js";
import { MediaType, type Descriptor, type History, type ImageConfig, type ImageFormat, type Manifest } from "./oci.js";

const DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar";
const OCI_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/** Layer media type pairs: [OCI, Docker]. */
const LAYER_TYPES: Array<[string, string]> = [
  [MediaType.ociLayerGzip, MediaType.dockerLayerGzip],
  [MediaType.ociLayer, DOCKER_LAYER_TAR],
  [OCI_NONDIST_GZIP, MediaType.dockerForeignLayerGzip],
];

/** The layer media type in the given format's vocabulary. */
export function layerMediaType(mediaType: string, format: ImageFormat): string {
  for (const [oci, docker] of LAYER_TYPES) {
    if (mediaType === oci || mediaType === docker) return format === "oci" ? oci : docker;
  }
  if (format === "oci" && mediaType.startsWith("application/vnd.oci.image.layer.")) return mediaType;
  throw new KilnError("FORMAT_UNSUPPORTED", `cannot express layer media type ${mediaType} in ${format} format`);
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const DESCRIPTOR_ORDER = ["mediaType", "artifactType", "digest", "size", "urls", "annotations", "platform"];
const MANIFEST_ORDER = ["schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations"];
const CONFIG_ORDER = ["created", "author", "architecture", "os", "os.version", "os.features", "variant", "config", "rootfs", "history"];
const CONTAINER_ORDER = [
  "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal",
  "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
];
const HISTORY_ORDER = ["created", "created_by", "author", "comment", "empty_layer"];

/** Reorder an object: listed keys first (in order), then the rest sorted by code unit. */
function ordered(obj: Record<string, unknown>, order: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of order) if (obj[k] !== undefined) out[k] = obj[k];
  for (const k of Object.keys(obj).sort()) if (!(k in out) && obj[k] !== undefined) out[k] = obj[k];
  return out;
}

/** Deep copy with every map's keys sorted (struct-like objects get their order from `ordered`). */
function sortedDeep(value: unknown): Json {
  if (value === null || typeof value !== "object") return value as Json;
  if (Array.isArray(value)) return value.map(sortedDeep);
  const out: { [key: string]: Json } = {};
  for (const k of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = sortedDeep(v);
  }
  return out;
}

function withOrder(value: Record<string, unknown>, order: string[]): Record<string, unknown> {
  const out = ordered(value, order);
  for (const k of Object.keys(out)) {
    if (!order.includes(k)) out[k] = sortedDeep(out[k]);
  }
  return out;
}

export function descriptorJSON(d: Descriptor): Record<string, unknown> {
  const out = withOrder(d as unknown as Record<string, unknown>, DESCRIPTOR_ORDER);
  if (out.annotations) out.annotations = sortedDeep(out.annotations);
  if (out.platform) out.platform = sortedDeep(out.platform);
  return out;
}

/** The config as canonical JSON text (fixed field order, map keys sorted). */
export function configJSON(config: ImageConfig): string {
  const top = withOrder(config as unknown as Record<string, unknown>, CONFIG_ORDER);
  for (const k of ["os.features", "rootfs"]) if (top[k] !== undefined) top[k] = sortedDeep(top[k]);
  if (config.config) {
    const cc = withOrder(config.config as unknown as Record<string, unknown>, CONTAINER_ORDER);
    for (const k of Object.keys(cc)) cc[k] = sortedDeep(cc[k]);
    top.config = cc;
  }
  if (config.history) {
    top.history = config.history.map((h) => withOrder(h as unknown as Record<string, unknown>, HISTORY_ORDER));
  }
  return JSON.stringify(top);
}

export function manifestJSON(manifest: Manifest): string {
  const top = withOrder(manifest as unknown as Record<string, unknown>, MANIFEST_ORDER);
  top.config = descriptorJSON(manifest.config);
  top.layers = manifest.layers.map(descriptorJSON);
  if (manifest.subject) top.subject = descriptorJSON(manifest.subject);
  if (manifest.annotations) top.annotations = sortedDeep(manifest.annotations);
  return JSON.stringify(top);
}

function checkImage(image: Image): void {
  const diffIDs = image.config.rootfs?.diff_ids;
  if (!Array.isArray(diffIDs)) throw new KilnError("LAYER_DIGEST_MISMATCH", "image config has no rootfs.diff_ids");
  if (diffIDs.length !== image.layers.length) {
    throw new KilnError("LAYER_DIGEST_MISMATCH", `image has ${image.layers.length} layers but its config lists ${diffIDs.length} diff_ids`);
  }
  image.layers.forEach((l, i) => {
    if (l.diffID !== diffIDs[i]) throw new KilnError("LAYER_DIGEST_MISMATCH", `layer ${i}: diffID ${l.diffID} does not match config diff_id ${diffIDs[i]}`);
  });
}

/**
 * Make non-empty history entries match the layer count (as BuildKit does for base images with
 * missing or wrong history): missing entries are prepended, surplus ones (earliest first) are
 * marked empty_layer. Returns a new config; the input is not changed.
 */
export function normalizeHistory(config: ImageConfig, layerCount: number): ImageConfig {
  if (!config.history) return config;
  const history = config.history.map((h) => ({ ...h }));
  let nonEmpty = history.filter((h) => !h.empty_layer).length;
  for (let i = 0; i < history.length && nonEmpty > layerCount; i++) {
    if (!history[i]!.empty_layer) {
      history[i]!.empty_layer = true;
      nonEmpty--;
    }
  }
  const missing: History[] = [];
  for (; nonEmpty < layerCount; nonEmpty++) missing.push({ comment: "history missing for this layer" });
  return { ...config, history: [...missing, ...history] };
}

/** Serialize `image` in `format` and store its config and manifest blobs. */
export async function materialize(
  image: Image,
  store: BlobStore,
  format: ImageFormat,
  options?: { annotations?: Record<string, string> },
): Promise<MaterializedImage> {
  checkImage(image);
  const configInfo = await store.putBytes(configJSON(normalizeHistory(image.config, image.layers.length)));
  const config: Descriptor = {
    mediaType: format === "oci" ? MediaType.ociConfig : MediaType.dockerConfig,
    digest: configInfo.digest,
    size: configInfo.size,
  };
  const layers: Descriptor[] = image.layers.map((l) => {
    const d: Descriptor = { ...l.descriptor, mediaType: layerMediaType(l.descriptor.mediaType, format) };
    if (format === "docker") delete d.annotations; // schema2 descriptors carry no annotations
    return d;
  });
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: format === "oci" ? MediaType.ociManifest : MediaType.dockerManifest,
    config,
    layers,
  };
  // Docker schema2 manifests have no annotations field; only OCI manifests carry them.
  if (format === "oci" && options?.annotations && Object.keys(options.annotations).length > 0) {
    manifest.annotations = { ...options.annotations };
  }
  const manifestInfo = await store.putBytes(manifestJSON(manifest));
  return {
    format,
    config,
    manifest: { mediaType: manifest.mediaType!, digest: manifestInfo.digest, size: manifestInfo.size },
    layers,
  };
}
