// Pull: resolve a reference to a manifest (through an index for the wanted platform) and download
// its config and layers straight into the BlobStore, verified while streaming and cut at their
// descriptor's size whatever the server claims or sends (manifests and configs also have size
// caps). Blobs already in the store are not fetched again; each blob's origin is recorded for
// later cross-repo mounts. With pull policy "missing"/"never", a name in the local image store
// (src/store/names.ts) or a reference pulled before is used without asking the registry.
// From an index, only the selected platform's blobs are downloaded (and, with `attestations`,
// the attestation manifest attached to it and its statements); the index itself is stored whole.
import { createHash } from "node:crypto";
import { pipeline } from "node:stream/promises";
import { KilnError, abortable, throwIfAborted } from "../errors.js";
import { failureReason, statusError } from "./http-error.js";
import { REFERENCE_DIGEST_ANNOTATION, isAttestationEntry } from "../image/attestation-entry.js";
import type { Image, Layer } from "../image/image.js";
import { storeImage, type ImageSource } from "../image/source.js";
import { MediaType, isDigest, isIndexType, isManifestType, type Descriptor, type Digest, type ImageConfig, type Index, type Manifest, type Platform } from "../image/oci.js";
import { formatPlatform, platformMatches, selectManifest } from "../image/platform.js";
import { familiarName, referenceTarget, toReference, type Reference } from "../image/reference.js";
import type { BlobStore } from "../store/blob-store.js";
import { getName } from "../store/names.js";
import { RegistryClient, pullScope } from "./client.js";
import { header, readBody, type RegistryResponse } from "./response.js";
import { ExactLength } from "./exact-length.js";
import { mapLimit } from "./limit.js";
import type { RegistryOptions } from "./options.js";
import { ProgressCounter, progressEvent } from "./progress.js";
import { addOrigin, readRefRecord, writeRefRecord } from "./records.js";
import { withRetry } from "./retry.js";
import { pullEndpoints } from "./mirrors.js";

export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerManifestList,
  MediaType.dockerManifest,
].join(", ");

export type PullPolicy = "always" | "missing" | "never";

export interface PullOptions extends RegistryOptions {
  store: BlobStore;
  platform: Platform;
  pull?: PullPolicy;
  /** From an index, also the attestation manifests attached to the selected platform's image and their blobs. */
  attestations?: boolean;
}

export interface PullResult {
  image: Image;
  /** The selected platform's image manifest. */
  manifestDescriptor: Descriptor;
  /** What the reference names: the index, or the manifest itself when it is one (what a stored name records). */
  root: Descriptor;
  reference: Reference;
  /** The pulled image as every writer takes it (its blobs are in the store). */
  source: ImageSource;
}

const MANIFEST_LIMIT = 4 * 1024 * 1024;
/** Image configs are read whole into memory: larger ones are refused before any byte is fetched. */
export const CONFIG_LIMIT = 16 * 1024 * 1024;

function sha256(buf: Buffer): Digest {
  return `sha256:${createHash("sha256").update(buf).digest("hex")}`;
}

/** The media type of a manifest document: its own field, else the response Content-Type. */
export function manifestMediaType(doc: unknown, contentType: string | undefined): string | undefined {
  const mt = (doc as { mediaType?: unknown } | null)?.mediaType;
  if (typeof mt === "string" && mt.length > 0) return mt;
  const ct = contentType?.split(";")[0]?.trim();
  if (ct && (isIndexType(ct) || isManifestType(ct))) return ct;
  // OCI allows omitting mediaType: tell index from manifest by shape
  if (Array.isArray((doc as { manifests?: unknown } | null)?.manifests)) return MediaType.ociIndex;
  if ((doc as { config?: unknown } | null)?.config !== undefined) return MediaType.ociManifest;
  return ct;
}

function checkDescriptor(d: Descriptor | undefined, what: string, where: string): Descriptor {
  if (!d || typeof d !== "object" || !isDigest(String(d.digest)) || typeof d.size !== "number" || d.size < 0 || !Number.isSafeInteger(d.size)) {
    throw new KilnError("MANIFEST_INVALID", `${where}: invalid ${what} descriptor`);
  }
  return d;
}

interface FetchedManifest {
  descriptor: Descriptor;
  bytes: Buffer;
  doc: Manifest | Index;
}

/** GET a manifest or index by tag or digest, verify it, and keep it in the store. */
export async function fetchManifest(
  client: RegistryClient,
  ref: Reference,
  target: string,
  store: BlobStore,
  expected?: Descriptor,
): Promise<FetchedManifest> {
  const name = familiarName({ ...ref, tag: isDigest(target) ? undefined : target, digest: isDigest(target) ? (target as Digest) : undefined });
  const res: RegistryResponse = await client.request({
    method: "GET",
    url: `/v2/${ref.repository}/manifests/${target}`,
    scopes: [pullScope(ref.repository)],
    headers: { accept: MANIFEST_ACCEPT },
  });
  if (res.status === 404) {
    const body = await readBody(res, 64 * 1024).catch(() => Buffer.alloc(0));
    throw statusError(`image ${name} not found in registry ${ref.registry}: manifest unknown`, 404, body, { registry: ref.registry, url: res.url }, "REGISTRY_MANIFEST_UNKNOWN");
  }
  await client.expect(res, [200], `GET manifest ${name}`);
  const bytes = await readBody(res, MANIFEST_LIMIT);
  const digest = sha256(bytes);
  if (isDigest(target) && digest !== target) {
    throw new KilnError("BLOB_DIGEST_MISMATCH", `registry ${ref.registry}: manifest digest mismatch for ${name}: got ${digest}`);
  }
  if (expected && expected.size !== bytes.length) {
    throw new KilnError("BLOB_SIZE_MISMATCH", `registry ${ref.registry}: manifest size mismatch for ${name}: expected ${expected.size} bytes, got ${bytes.length}`);
  }
  const claimed = header(res, "docker-content-digest");
  if (claimed !== undefined && claimed !== digest && claimed.startsWith("sha256:")) {
    throw new KilnError("BLOB_DIGEST_MISMATCH", `registry ${ref.registry}: Docker-Content-Digest ${claimed} does not match the manifest it sent (${digest})`);
  }
  let doc: Manifest | Index;
  try {
    doc = JSON.parse(bytes.toString("utf8")) as Manifest | Index;
  } catch {
    throw new KilnError("MANIFEST_INVALID", `registry ${ref.registry}: manifest for ${name} is not valid JSON`);
  }
  const mediaType = manifestMediaType(doc, header(res, "content-type"));
  if (!isIndexType(mediaType) && !isManifestType(mediaType)) {
    throw new KilnError("MANIFEST_INVALID", `registry ${ref.registry}: unsupported manifest type "${mediaType ?? "unknown"}" for ${name}`);
  }
  await store.putBytes(bytes);
  return { descriptor: { mediaType: mediaType as string, digest, size: bytes.length }, bytes, doc };
}

/**
 * Download one blob into the store (retried from scratch on transient failures): at most
 * `desc.size` bytes are read, and the blob must be exactly that size and hash to its digest.
 * `maxSize` refuses a descriptor claiming more (for blobs read whole, such as configs).
 */
export async function fetchBlob(client: RegistryClient, ref: Reference, desc: Descriptor, store: BlobStore, options: RegistryOptions, maxSize?: number): Promise<void> {
  const what = `blob ${desc.digest} of ${ref.repository}`;
  if (maxSize !== undefined && desc.size > maxSize) {
    throw new KilnError("BLOB_TOO_LARGE", `registry ${ref.registry}: ${what}: its descriptor gives ${desc.size} bytes, more than the ${maxSize} allowed for it`);
  }
  throwIfAborted(options.signal);
  if (await store.has(desc.digest)) {
    options.onProgress?.(progressEvent("pull", desc.digest, desc.size, desc.size, Date.now(), "exists"));
    return;
  }
  const started = Date.now();
  await withRetry(client.policy, async () => {
    const res = await client.request({
      method: "GET",
      url: `/v2/${ref.repository}/blobs/${desc.digest}`,
      scopes: [pullScope(ref.repository)],
      retry: false,
    });
    await client.expect(res, [200], `GET blob ${desc.digest}`);
    const announced = header(res, "content-length");
    if (announced !== undefined && Number(announced) !== desc.size) {
      res.body.destroy();
      throw new KilnError("BLOB_SIZE_MISMATCH", `registry ${ref.registry}: ${what}: the server announces ${announced} bytes, the descriptor gives ${desc.size}`);
    }
    const counter = new ProgressCounter("pull", desc.digest, desc.size, options.onProgress);
    // (owns the error handling of all three from the start: a body can fail before the store reads it)
    const feeding = pipeline(res.body, new ExactLength(desc.size, `registry ${ref.registry}: ${what}`), counter);
    feeding.catch(() => undefined);
    try {
      await store.ingest(counter, { digest: desc.digest, size: desc.size });
      await feeding;
    } catch (caught) {
      let fed = true;
      const err = await feeding.then(() => caught, (first: unknown) => ((fed = false), first));
      // the bytes arrived whole but the store refused them: name the registry that sent them
      if (fed && err instanceof KilnError && (err.code === "BLOB_DIGEST_MISMATCH" || err.code === "BLOB_SIZE_MISMATCH")) {
        throw new KilnError(err.code, `registry ${ref.registry}: ${what}: ${err.message}`, { cause: err });
      }
      throw client.bodyError(err, `GET ${what}`);
    }
  });
  options.onProgress?.(progressEvent("pull", desc.digest, desc.size, desc.size, started, "done"));
}

/** The Image value for a manifest whose blobs are all in the store. */
async function imageFromStore(store: BlobStore, manifest: Manifest, where: string): Promise<Image> {
  const config = await store.readJSON<ImageConfig>(manifest.config.digest);
  const diffIDs = config.rootfs?.diff_ids ?? [];
  if (!Array.isArray(diffIDs) || diffIDs.length !== manifest.layers.length) {
    throw new KilnError("MANIFEST_INVALID", `${where}: config lists ${Array.isArray(diffIDs) ? diffIDs.length : 0} layers but the manifest has ${manifest.layers.length}`);
  }
  const layers: Layer[] = manifest.layers.map((d, i) => ({ descriptor: d, diffID: diffIDs[i] }));
  return { config, layers };
}

function validateManifest(m: Manifest, where: string): Manifest {
  if (!m || typeof m !== "object" || !Array.isArray(m.layers)) throw new KilnError("MANIFEST_INVALID", `${where}: manifest has no layers list`);
  checkDescriptor(m.config, "config", where);
  m.layers.forEach((l) => checkDescriptor(l, "layer", where));
  return m;
}

/** The attestation manifests of `index` attached to the image manifest `image`. */
function attachedTo(index: Index, image: Digest): Descriptor[] {
  return (Array.isArray(index.manifests) ? index.manifests : []).filter((d) => isAttestationEntry(d) && d.annotations?.[REFERENCE_DIGEST_ANNOTATION] === image);
}

/** Try to answer from the store alone (pull "missing"/"never"; what is stored of the image's attestations is not asked for). */
async function resolveLocal(store: BlobStore, ref: Reference, platform: Platform): Promise<PullResult | undefined> {
  let top: Descriptor | undefined;
  if (ref.digest) {
    if (await store.has(ref.digest)) {
      const doc = await store.readJSON<Manifest | Index>(ref.digest);
      top = { mediaType: manifestMediaType(doc, undefined) ?? MediaType.ociManifest, digest: ref.digest, size: await store.size(ref.digest) };
    }
  } else {
    // a name in the local image store (kiln build -t, kiln tag) wins over what a pull recorded
    top = (await getName(store.root, familiarName(ref)))?.target ?? (await readRefRecord(store, ref));
  }
  if (!top || !(await store.has(top.digest))) return undefined;
  let manifestDesc = top;
  if (isIndexType(top.mediaType)) {
    const index = await store.readJSON<Index>(top.digest);
    manifestDesc = selectManifest(index, platform);
    if (!(await store.has(manifestDesc.digest))) return undefined;
  }
  const where = `local image ${familiarName(ref)}`;
  const manifest = validateManifest(await store.readJSON<Manifest>(manifestDesc.digest), where);
  for (const d of [manifest.config, ...manifest.layers]) {
    if (!(await store.has(d.digest))) return undefined;
  }
  return { image: await imageFromStore(store, manifest, where), manifestDescriptor: manifestDesc, root: top, reference: ref, source: await storeImage(store, manifestDesc) };
}

/** Pull `ref` for `options.platform` into `options.store` (`options.signal` cancels it, mid-blob too). */
export function pullImage(refIn: string | Reference, options: PullOptions): Promise<PullResult> {
  return abortable(options.signal, () => pull(refIn, options));
}

async function pull(refIn: string | Reference, options: PullOptions): Promise<PullResult> {
  const ref = toReference(refIn);
  const { store, platform } = options;
  const policy = options.pull ?? "always";
  if (policy !== "always") {
    const local = await resolveLocal(store, ref, platform);
    if (local) return local;
    if (policy === "never") {
      throw new KilnError("IMAGE_NOT_LOCAL", `image ${familiarName(ref)} is not in the local store and pull policy is "never"`);
    }
  }
  // mirrors first (in order), then the origin; a mirror that fails in any way hands over to the
  // next, with one warning saying so (per mirror and pull: a pull is retried whole, never per blob)
  const endpoints = pullEndpoints(ref.registry, ref.repository, options.mirrors);
  for (const [i, ep] of endpoints.entries()) {
    const at: Reference = { ...ref, registry: ep.registry, repository: ep.repository };
    // a mirror gets two attempts per request (the origin is the fallback), the origin the full retry policy
    const epOptions: PullOptions = !ep.mirror ? options : {
      ...options,
      retry: { ...options.retry, attempts: Math.min(2, options.retry?.attempts ?? 2) },
      ...(ep.insecure ? { insecureRegistries: [...(options.insecureRegistries ?? []), ep.registry] } : {}),
    };
    try {
      return await pullFrom(ref, at, epOptions);
    } catch (err) {
      if (!ep.mirror || options.signal?.aborted) throw err;
      const next = endpoints[i + 1]!;
      options.onWarning?.(`mirror ${ep.registry} failed for ${ref.repository} (${failureReason(err)}); using ${next.mirror ? "the next mirror" : "the origin"} ${next.registry}`);
    }
  }
  throw new KilnError("INTERNAL", "internal: no endpoint to pull from");
}

/** Pull `ref` from the endpoint `at` (the origin itself, or a mirror's host and repository). */
async function pullFrom(ref: Reference, at: Reference, options: PullOptions): Promise<PullResult> {
  const { store, platform } = options;
  const client = new RegistryClient(at.registry, options);
  client.useRepository(at.repository);
  try {
    const top = await fetchManifest(client, at, referenceTarget(ref), store);
    let manifestFetched = top;
    if (isIndexType(top.descriptor.mediaType)) {
      const index = top.doc as Index;
      if (!Array.isArray(index.manifests)) throw new KilnError("MANIFEST_INVALID", `registry ${ref.registry}: index for ${familiarName(ref)} has no manifests`);
      let chosen: Descriptor;
      try {
        chosen = checkDescriptor(selectManifest(index, platform), "manifest", `index of ${familiarName(ref)}`);
      } catch (err) {
        if (err instanceof KilnError) throw new KilnError(err.code, `image ${familiarName(ref)}: ${err.message}`, { cause: err });
        throw err;
      }
      manifestFetched = await fetchManifest(client, at, chosen.digest, store, chosen);
      if (!isManifestType(manifestFetched.descriptor.mediaType)) {
        throw new KilnError("MANIFEST_INVALID", `registry ${ref.registry}: ${chosen.digest} in the index of ${familiarName(ref)} is not an image manifest`);
      }
    }
    const where = `image ${familiarName(ref)}`;
    const manifest = validateManifest(manifestFetched.doc as Manifest, where);
    const origin = { registry: at.registry, repository: at.repository };
    await fetchBlob(client, at, manifest.config, store, options, CONFIG_LIMIT);
    const config = await store.readJSON<ImageConfig>(manifest.config.digest);
    if (!isIndexType(top.descriptor.mediaType) && config.os && config.architecture) {
      // a single-platform image must still be for the platform asked for
      const have: Platform = { os: config.os, architecture: config.architecture, variant: config.variant };
      if (!platformMatches(platform, have)) {
        throw new KilnError("PLATFORM_MISMATCH", `image ${familiarName(ref)} is for ${formatPlatform(have)}, not ${formatPlatform(platform)}`);
      }
    }
    await mapLimit(manifest.layers, options.concurrency ?? 4, (l) => fetchBlob(client, at, l, store, options));
    for (const d of [manifest.config, ...manifest.layers]) await addOrigin(store, d.digest, origin);
    if (options.attestations && isIndexType(top.descriptor.mediaType)) {
      for (const att of attachedTo(top.doc as Index, manifestFetched.descriptor.digest)) {
        const got = await fetchManifest(client, at, checkDescriptor(att, "attestation manifest", `index of ${familiarName(ref)}`).digest, store, att);
        if (!isManifestType(got.descriptor.mediaType)) continue;
        const m = validateManifest(got.doc as Manifest, `attestation manifest ${att.digest} of ${familiarName(ref)}`);
        await fetchBlob(client, at, m.config, store, options, CONFIG_LIMIT);
        for (const l of m.layers) await fetchBlob(client, at, l, store, options);
        for (const d of [m.config, ...m.layers]) await addOrigin(store, d.digest, origin);
      }
    }
    await writeRefRecord(store, ref, top.descriptor);
    const image = await imageFromStore(store, manifest, where);
    return { image, manifestDescriptor: manifestFetched.descriptor, root: top.descriptor, reference: ref, source: await storeImage(store, manifestFetched.descriptor) };
  } finally {
    await client.close();
  }
}
