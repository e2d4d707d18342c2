// The sources of `kiln manifest create` / `inspect`: a registry reference or
// `oci-layout://DIR[:TAG|@DIGEST]`, each a single-platform image or an index, read into the
// list of image manifests it holds (an index is flattened to its entries; nested indexes are
// refused) with each one's platform (the index entry's, else its config's) and where its blobs
// are. Manifests and single-image configs are verified and kept in the blob store.
import { KilnError } from "../errors.js";
import { OciLayout } from "../image/layout.js";
import { MediaType, isDigest, isIndexType, isManifestType, type Descriptor, type ImageConfig, type Index, type Manifest, type Platform } from "../image/oci.js";
import { normalizePlatform } from "../image/platform.js";
import { parseReference, referenceTarget, type Reference } from "../image/reference.js";
import type { ClientPool } from "../registry/client.js";
import { CONFIG_LIMIT, fetchBlob, fetchManifest, manifestMediaType } from "../registry/pull.js";
import type { RegistryOptions } from "../registry/options.js";
import type { BlobStore } from "../store/blob-store.js";
import { isLayoutArgument, splitLayoutArgument } from "./resolve.js";

/** Where a source's blobs are read from. */
export type SourceLocation = { kind: "registry"; ref: Reference } | { kind: "layout"; layout: OciLayout };

/** One image manifest a source holds. */
export interface SourceManifest {
  /** The source argument it came from (for messages). */
  source: string;
  location: SourceLocation;
  /** Its descriptor as an index entry lists it: media type, digest, size (platform apart). */
  descriptor: Descriptor;
  platform: Platform;
  /** The index entry's annotations, when it had some. */
  annotations?: Record<string, string>;
  manifest: Manifest;
  /** An attestation manifest (platform unknown/unknown): not held to one entry per platform. */
  attestation: boolean;
}

/** A source read: its top descriptor (manifest or index) and the image manifests it holds. */
export interface ResolvedSource {
  source: string;
  top: Descriptor;
  manifests: SourceManifest[];
  /** The index's own annotations (an index source that has some). */
  annotations?: Record<string, string>;
}

export interface SourceContext {
  store: BlobStore;
  pool: ClientPool;
  options: RegistryOptions;
}

/** Reads a JSON document by descriptor (verified), from wherever the source is. */
type DocReader = (d: Descriptor) => Promise<{ doc: unknown; mediaType: string }>;

function isAttestation(d: Descriptor): boolean {
  return (d.platform?.os === "unknown" && d.platform?.architecture === "unknown") || d.annotations?.["vnd.docker.reference.type"] === "attestation-manifest";
}

function configPlatform(config: ImageConfig, where: string): Platform {
  if (!config || typeof config.os !== "string" || typeof config.architecture !== "string" || config.os === "" || config.architecture === "") {
    throw new KilnError("MANIFEST_INVALID", `${where}: its config names no os/architecture, so its platform is unknown`);
  }
  return normalizePlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) });
}

function checkManifest(doc: unknown, mediaType: string, where: string): Manifest {
  const m = doc as Manifest;
  if (!isManifestType(mediaType) || !m || typeof m !== "object" || !m.config || !isDigest(String(m.config.digest)) || !Array.isArray(m.layers)) {
    throw new KilnError("MANIFEST_INVALID", `${where}: not an image manifest${isIndexType(mediaType) ? " (an index inside an index)" : ""}`);
  }
  for (const l of m.layers) {
    if (!l || !isDigest(String(l.digest)) || !Number.isSafeInteger(l.size)) throw new KilnError("MANIFEST_INVALID", `${where}: malformed layer descriptor`);
  }
  return m;
}

async function flatten(
  source: string,
  location: SourceLocation,
  top: Descriptor,
  read: DocReader,
  readConfig: (m: Manifest) => Promise<ImageConfig>,
): Promise<ResolvedSource> {
  const first = await read(top);
  const topDesc: Descriptor = { mediaType: first.mediaType, digest: top.digest, size: top.size };
  if (isIndexType(first.mediaType)) {
    const index = first.doc as Index;
    if (!Array.isArray(index.manifests) || index.manifests.length === 0) throw new KilnError("MANIFEST_INVALID", `${source}: the index lists no manifests`);
    const manifests: SourceManifest[] = [];
    for (const entry of index.manifests) {
      if (!entry || !isDigest(String(entry.digest)) || !Number.isSafeInteger(entry.size)) throw new KilnError("MANIFEST_INVALID", `${source}: the index has a malformed entry`);
      const child = await read(entry);
      const where = `${source}: manifest ${entry.digest}`;
      const manifest = checkManifest(child.doc, child.mediaType, where);
      const attestation = isAttestation(entry);
      const platform = entry.platform ? normalizePlatform(entry.platform) : configPlatform(await readConfig(manifest), where);
      manifests.push({
        source,
        location,
        descriptor: { mediaType: child.mediaType, digest: entry.digest, size: entry.size },
        platform,
        ...(entry.annotations ? { annotations: { ...entry.annotations } } : {}),
        manifest,
        attestation,
      });
    }
    const own = index.annotations && typeof index.annotations === "object" ? { annotations: { ...index.annotations } } : {};
    return { source, top: topDesc, manifests, ...own };
  }
  const manifest = checkManifest(first.doc, first.mediaType, source);
  const platform = configPlatform(await readConfig(manifest), source);
  return { source, top: topDesc, manifests: [{ source, location, descriptor: topDesc, platform, manifest, attestation: false }] };
}

async function registrySource(source: string, ctx: SourceContext): Promise<ResolvedSource> {
  const ref = parseReference(source);
  const client = ctx.pool.get(ref.registry);
  client.useRepository(ref.repository);
  const top = await fetchManifest(client, ref, referenceTarget(ref), ctx.store);
  const read: DocReader = async (d) => {
    if (d.digest === top.descriptor.digest) return { doc: top.doc, mediaType: top.descriptor.mediaType };
    const f = await fetchManifest(client, ref, d.digest, ctx.store, d);
    return { doc: f.doc, mediaType: f.descriptor.mediaType };
  };
  const readConfig = async (m: Manifest): Promise<ImageConfig> => {
    await fetchBlob(client, ref, m.config, ctx.store, ctx.options, CONFIG_LIMIT);
    return ctx.store.readJSON<ImageConfig>(m.config.digest);
  };
  return flatten(source, { kind: "registry", ref }, top.descriptor, read, readConfig);
}

async function layoutSourceOf(source: string): Promise<ResolvedSource> {
  const { dir, selector } = splitLayoutArgument(source);
  const layout = await OciLayout.open(dir);
  const top = await layout.resolve(selector);
  const read: DocReader = async (d) => {
    const doc = await layout.readJSON<unknown>(d.digest);
    return { doc, mediaType: manifestMediaType(doc, d.mediaType) ?? d.mediaType ?? MediaType.ociManifest };
  };
  const readConfig = (m: Manifest): Promise<ImageConfig> => layout.readJSON<ImageConfig>(m.config.digest);
  return flatten(source, { kind: "layout", layout }, top, read, readConfig);
}

/** Read one source argument (registry reference or `oci-layout://...`). */
export function resolveSource(source: string, ctx: SourceContext): Promise<ResolvedSource> {
  return isLayoutArgument(source) ? layoutSourceOf(source) : registrySource(source, ctx);
}
