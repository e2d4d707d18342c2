// Push: an ImageSource, or an index from an OCI layout, to one or more references.
// Blobs first (4 at a time, HEAD-skip, cross-repo mount from recorded origins), then configs,
// then manifests, then the index, then every tag (mount sources may also be given by the caller); the registry's Docker-Content-Digest must
// match the digest kiln computed.
import { createHash } from "node:crypto";
import { KilnError, abortable, throwIfAborted } from "../errors.js";
import { OciLayout } from "../image/layout.js";
import { layoutBlobs, storeBlobs } from "../image/source.js";
import type { OutputImage } from "../image/image-index.js";
import { MediaType, isDigest, isIndexType, isManifestType, type Descriptor, type Digest, type Index, type Manifest } from "../image/oci.js";
import { familiarName, formatReference, toReference, type Reference } from "../image/reference.js";
import type { BlobStore } from "../store/blob-store.js";
import { ClientPool, RegistryClient, pullScope, pushScope } from "./client.js";
import { drain, header } from "./response.js";
import { mapLimit } from "./limit.js";
import type { RegistryOptions } from "./options.js";
import { manifestMediaType } from "./pull.js";
import { addOrigin, readOrigins, type BlobOrigin } from "./records.js";
import { uploadBlob, type BlobSource, type UploadTarget } from "./upload.js";

export type { BlobSource } from "./upload.js";

export interface PushOptions extends RegistryOptions {
  /** Where blob origins are recorded/read (for cross-repo mounts). */
  store?: BlobStore;
  /** Where blobs are known to be besides the store's records (manifest create: its sources). */
  origins?: ReadonlyMap<Digest, BlobOrigin[]>;
}

export interface PushResult {
  digest: Digest;
  size: number;
  mediaType: string;
}

function sha256(buf: Buffer): Digest {
  return `sha256:${createHash("sha256").update(buf).digest("hex")}`;
}

interface ManifestDoc {
  descriptor: Descriptor;
  bytes: Buffer;
}

interface PushPlan {
  /** Layer (and other non-config) blobs, unique by digest. */
  blobs: Descriptor[];
  configs: Descriptor[];
  /** Child manifests (and nested indexes) in the order they must be put: children first. */
  children: ManifestDoc[];
  root: ManifestDoc;
}

const NON_DISTRIBUTABLE = /(foreign|nondistributable)/;

async function readVerified(source: BlobSource, d: Descriptor, what: string): Promise<Buffer> {
  if (!isDigest(d.digest)) throw new KilnError("DIGEST_INVALID", `invalid ${what} digest ${JSON.stringify(d.digest)}`);
  const bytes = await source.readBytes(d.digest);
  const got = sha256(bytes);
  if (got !== d.digest) throw new KilnError("BLOB_DIGEST_MISMATCH", `${what} ${d.digest} is corrupt (its content hashes to ${got})`);
  if (d.size !== bytes.length) throw new KilnError("BLOB_SIZE_MISMATCH", `${what} ${d.digest} is ${bytes.length} bytes, its descriptor says ${d.size}`);
  return bytes;
}

/** Walk root (manifest or index) and list everything that must exist remotely. */
async function planPush(source: BlobSource, root: Descriptor): Promise<PushPlan> {
  const blobs = new Map<string, Descriptor>();
  const configs = new Map<string, Descriptor>();
  const children: ManifestDoc[] = [];
  const seen = new Set<string>();

  const visit = async (d: Descriptor, depth: number): Promise<ManifestDoc> => {
    if (depth > 4) throw new KilnError("MANIFEST_INVALID", `image indexes nested too deeply`);
    const bytes = await readVerified(source, d, "manifest");
    let doc: Manifest | Index;
    try {
      doc = JSON.parse(bytes.toString("utf8")) as Manifest | Index;
    } catch {
      throw new KilnError("MANIFEST_INVALID", `manifest ${d.digest} is not valid JSON`);
    }
    const mediaType = manifestMediaType(doc, d.mediaType) ?? d.mediaType;
    const md: ManifestDoc = { descriptor: { mediaType, digest: d.digest, size: d.size }, bytes };
    if (isIndexType(mediaType)) {
      const idx = doc as Index;
      if (!Array.isArray(idx.manifests)) throw new KilnError("MANIFEST_INVALID", `index ${d.digest} has no manifests list`);
      for (const child of idx.manifests) {
        if (seen.has(child.digest)) continue;
        seen.add(child.digest);
        const c = await visit(child, depth + 1);
        children.push(c);
      }
    } else if (isManifestType(mediaType) || (doc as Manifest).config !== undefined) {
      const m = doc as Manifest;
      if (!m.config || !Array.isArray(m.layers)) throw new KilnError("MANIFEST_INVALID", `manifest ${d.digest} is malformed`);
      if (!isDigest(m.config.digest)) throw new KilnError("MANIFEST_INVALID", `manifest ${d.digest} has an invalid config digest`);
      configs.set(m.config.digest, m.config);
      for (const l of m.layers) {
        if (!isDigest(l.digest)) throw new KilnError("MANIFEST_INVALID", `manifest ${d.digest} has an invalid layer digest`);
        if (l.urls && l.urls.length > 0 && NON_DISTRIBUTABLE.test(l.mediaType)) continue;
        blobs.set(l.digest, l);
      }
    } else {
      throw new KilnError("MANIFEST_INVALID", `${d.digest}: unsupported manifest media type ${mediaType}`);
    }
    return md;
  };
  const rootDoc = await visit(root, 0);
  for (const k of configs.keys()) blobs.delete(k);
  return { blobs: [...blobs.values()], configs: [...configs.values()], children, root: rootDoc };
}

/** In-process memory of where blobs went during this push (in addition to the store's records). */
type OriginMemo = Map<string, Array<{ registry: string; repository: string }>>;

async function mountSource(d: Digest, registry: string, repository: string, options: PushOptions, memo: OriginMemo): Promise<string | undefined> {
  const known = [...(memo.get(d) ?? []), ...(options.origins?.get(d) ?? []), ...(options.store ? await readOrigins(options.store, d) : [])];
  return known.find((o) => o.registry === registry && o.repository !== repository)?.repository;
}

async function putManifest(client: RegistryClient, ref: Reference, scopes: string[], doc: ManifestDoc, target: string): Promise<void> {
  const res = await client.request({
    method: "PUT",
    url: `/v2/${ref.repository}/manifests/${target}`,
    scopes,
    headers: { "content-type": doc.descriptor.mediaType, "content-length": String(doc.bytes.length) },
    body: () => doc.bytes,
  });
  await client.expect(res, [201, 200, 204], `PUT manifest ${familiarName({ ...ref, tag: undefined, digest: undefined })}:${target}`);
  const got = header(res, "docker-content-digest");
  await drain(res);
  if (got !== undefined && got !== "" && got !== doc.descriptor.digest) {
    throw new KilnError("BLOB_DIGEST_MISMATCH", `registry ${ref.registry}: stored manifest as ${got}, but kiln computed ${doc.descriptor.digest}`);
  }
}

async function manifestExists(client: RegistryClient, ref: Reference, scopes: string[], d: Digest): Promise<boolean> {
  const res = await client.request({
    method: "HEAD",
    url: `/v2/${ref.repository}/manifests/${d}`,
    scopes,
    headers: { accept: [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(", ") },
  });
  await drain(res);
  return res.status === 200;
}

async function pushOne(pool: ClientPool, source: BlobSource, plan: PushPlan, ref: Reference, options: PushOptions, memo: OriginMemo): Promise<void> {
  const client = pool.get(ref.registry);
  client.useRepository(ref.repository);
  const root = plan.root.descriptor;
  if (ref.digest && ref.digest !== root.digest) {
    throw new KilnError("REFERENCE_INVALID", `cannot push to ${formatReference(ref)}: the image's digest is ${root.digest}`);
  }
  const all = [...plan.blobs, ...plan.configs];
  const mounts = new Map<string, string>();
  for (const d of all) {
    const from = await mountSource(d.digest, ref.registry, ref.repository, options, memo);
    if (from) mounts.set(d.digest, from);
  }
  const scopes = [pushScope(ref.repository), ...[...new Set(mounts.values())].map(pullScope)];
  const target: UploadTarget = { client, repository: ref.repository, scopes, options };
  const record = async (d: Descriptor): Promise<void> => {
    const list = memo.get(d.digest) ?? [];
    list.push({ registry: ref.registry, repository: ref.repository });
    memo.set(d.digest, list);
    if (options.store) await addOrigin(options.store, d.digest, { registry: ref.registry, repository: ref.repository });
  };
  const concurrency = options.concurrency ?? 4;
  for (const group of [plan.blobs, plan.configs]) {
    await mapLimit(group, concurrency, async (d) => {
      throwIfAborted(options.signal);
      await uploadBlob(target, source, d, mounts.get(d.digest));
      await record(d);
    });
  }
  throwIfAborted(options.signal);
  for (const child of plan.children) {
    if (await manifestExists(client, ref, scopes, child.descriptor.digest)) continue;
    await putManifest(client, ref, scopes, child, child.descriptor.digest);
  }
  await putManifest(client, ref, scopes, plan.root, ref.tag ?? root.digest);
}

/**
 * Push `image` (one platform's, or an index) to every reference in `refs`: blobs, then the
 * configs, then the platform manifests, then the root manifest under each tag. `options.signal` cancels it, mid-blob too; no manifest is put after a cancellation.
 */
export function pushImage(image: OutputImage, refs: Array<string | Reference>, options: PushOptions = {}): Promise<PushResult> {
  return pushRoot(image, image.manifest, refs, options);
}

/** Push the manifest or index `root` (whose blobs `source` serves) to every reference in `refs`. */
export function pushRoot(source: BlobSource, root: Descriptor, refs: Array<string | Reference>, options: PushOptions = {}): Promise<PushResult> {
  return abortable(options.signal, () => pushAll(source, root, refs, options));
}

async function pushAll(source: BlobSource, root: Descriptor, refs: Array<string | Reference>, options: PushOptions): Promise<PushResult> {
  if (refs.length === 0) throw new KilnError("OPTION_INVALID", "push: no destination reference given");
  const targets = refs.map(toReference);
  const plan = await planPush(source, root);
  const pool = new ClientPool(options);
  const memo: OriginMemo = new Map();
  try {
    for (const ref of targets) await pushOne(pool, source, plan, ref, options, memo);
  } finally {
    await pool.close();
  }
  const d = plan.root.descriptor;
  return { digest: d.digest, size: d.size, mediaType: d.mediaType };
}

/** A BlobSource over an OCI image layout directory. */
export const layoutSource = layoutBlobs;

/** A BlobSource over the blob store (a build can push without writing a layout). */
export const storeSource = storeBlobs;

/** Push the image named by `selector` (a tag or digest; optional when the layout holds one image). */
export async function pushLayout(layoutDir: string, selector: string | undefined, refs: Array<string | Reference>, options: PushOptions = {}): Promise<PushResult> {
  const layout = await OciLayout.open(layoutDir);
  const desc = await layout.resolve(selector);
  return pushRoot(layoutBlobs(layout), desc, refs, options);
}
