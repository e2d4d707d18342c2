// Push OCI 1.1 referrers (artifact manifests with a `subject`) as the distribution spec says: the
// blobs, then the manifest by digest; a registry with the referrers API answers the PUT with an
// `OCI-Subject` header and indexes it itself. Without that header, the client keeps the
// referrers tag schema: the tag `sha256-<subject hex>` holds an OCI index of the subject's
// referrers, read (404: none yet), merged with the new descriptors (by digest) and put back.
import { KilnError, abortable, throwIfAborted } from "../errors.js";
import { MediaType, type Descriptor, type Digest, type Index } from "../image/oci.js";
import { familiarName, toReference, type Reference } from "../image/reference.js";
import { RegistryClient, pushScope } from "./client.js";
import type { RegistryOptions } from "./options.js";
import { drain, header, readBody } from "./response.js";
import { uploadBlob, type BlobSource, type UploadTarget } from "./upload.js";

/** One artifact manifest to push: its bytes' descriptor (with artifactType/annotations for the referrers index), its subject, its blobs. */
export interface Referrer {
  descriptor: Descriptor & { artifactType?: string };
  subject: Descriptor;
  /** The config and layers (their bytes come from the BlobSource). */
  blobs: Descriptor[];
}

export interface ReferrersResult {
  /** Whether the registry indexed them itself (OCI-Subject), else the tag schema was kept. */
  api: boolean;
  /** The `sha256-<hex>` tags written (the fallback). */
  tags: string[];
}

/** The referrers tag schema's tag for a subject digest. */
export function referrersTag(subject: Digest): string {
  return subject.replace(":", "-");
}

const INDEX_LIMIT = 4 * 1024 * 1024;

async function readReferrersIndex(client: RegistryClient, ref: Reference, scopes: string[], tag: string): Promise<Index> {
  const res = await client.request({ method: "GET", url: `/v2/${ref.repository}/manifests/${tag}`, scopes, headers: { accept: MediaType.ociIndex } });
  if (res.status === 404) {
    await drain(res);
    return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  }
  await client.expect(res, [200], `GET referrers index ${familiarName({ ...ref, tag, digest: undefined })}`);
  const bytes = await readBody(res, INDEX_LIMIT);
  let doc: Index;
  try {
    doc = JSON.parse(bytes.toString("utf8")) as Index;
  } catch {
    throw new KilnError("MANIFEST_INVALID", `registry ${ref.registry}: the referrers tag ${tag} of ${ref.repository} is not valid JSON`);
  }
  if (!doc || !Array.isArray(doc.manifests) || (doc.mediaType !== undefined && doc.mediaType !== MediaType.ociIndex)) {
    throw new KilnError("MANIFEST_INVALID", `registry ${ref.registry}: the referrers tag ${tag} of ${ref.repository} is not an OCI image index`);
  }
  return doc;
}

async function put(client: RegistryClient, ref: Reference, scopes: string[], target: string, mediaType: string, bytes: Buffer): Promise<string | undefined> {
  const res = await client.request({
    method: "PUT",
    url: `/v2/${ref.repository}/manifests/${target}`,
    scopes,
    headers: { "content-type": mediaType, "content-length": String(bytes.length) },
    body: () => bytes,
  });
  await client.expect(res, [200, 201, 204], `PUT manifest ${ref.repository}:${target}`);
  const subject = header(res, "oci-subject");
  await drain(res);
  return subject;
}

/** Push every referrer in `referrers` to the repository of `refIn` (see the header). */
export function pushReferrers(source: BlobSource, referrers: Referrer[], refIn: string | Reference, options: RegistryOptions = {}): Promise<ReferrersResult> {
  return abortable(options.signal, async () => {
    const ref = toReference(refIn);
    const client = new RegistryClient(ref.registry, options);
    client.useRepository(ref.repository);
    const scopes = [pushScope(ref.repository)];
    const target: UploadTarget = { client, repository: ref.repository, scopes, options };
    let api = true;
    const fallback = new Map<Digest, Descriptor[]>();
    try {
      for (const r of referrers) {
        for (const b of r.blobs) {
          throwIfAborted(options.signal);
          await uploadBlob(target, source, b);
        }
        const bytes = await source.readBytes(r.descriptor.digest);
        const answered = await put(client, ref, scopes, r.descriptor.digest, r.descriptor.mediaType, bytes);
        if (answered !== undefined && answered === r.subject.digest) continue; // the registry indexes it
        api = false;
        const list = fallback.get(r.subject.digest) ?? [];
        list.push(r.descriptor);
        fallback.set(r.subject.digest, list);
      }
      const tags: string[] = [];
      for (const [subject, added] of fallback) {
        throwIfAborted(options.signal);
        const tag = referrersTag(subject);
        const index = await readReferrersIndex(client, ref, scopes, tag);
        const merged = [...index.manifests.filter((d) => !added.some((a) => a.digest === d.digest)), ...added];
        const doc: Index = { ...index, schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: merged };
        await put(client, ref, scopes, tag, MediaType.ociIndex, Buffer.from(JSON.stringify(doc)));
        tags.push(tag);
      }
      return { api, tags };
    } finally {
      await client.close();
    }
  });
}
