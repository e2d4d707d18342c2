// Attestation manifests as entries of an image index, as BuildKit stores them: the annotation and
// media-type names, and the check that one entry is consistent with its index — its
// vnd.docker.reference.digest names an image manifest of the same index, and every in-toto
// statement among its layers has that manifest as its (only) subject digest. A mismatch is
// ATTESTATION_INVALID naming both digests. kiln verify and kiln attestations both use it.
import { KilnError } from "../errors.js";
import type { Descriptor, Digest, Index, Manifest } from "./oci.js";
import type { BlobReader } from "./source.js";

export const REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type";
export const REFERENCE_DIGEST_ANNOTATION = "vnd.docker.reference.digest";
export const ATTESTATION_MANIFEST_TYPE = "attestation-manifest";
export const IN_TOTO_MEDIA_TYPE = "application/vnd.in-toto+json";
export const PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type";

/** An in-toto statement as read back (only what the check needs is typed). */
export interface ReadableStatement {
  _type?: string;
  subject?: Array<{ name?: string; digest?: Record<string, string> }>;
  predicateType?: string;
  predicate?: unknown;
}

export interface ReadStatement {
  predicateType: string;
  /** The statement blob's digest (the attestation manifest's layer). */
  digest: Digest;
  statement: ReadableStatement;
}

/** Whether an index entry is a BuildKit-style attestation manifest. */
export function isAttestationEntry(d: Descriptor): boolean {
  return d.annotations?.[REFERENCE_TYPE_ANNOTATION] === ATTESTATION_MANIFEST_TYPE;
}

export async function readJSON<T>(blobs: BlobReader, digest: Digest, what: string): Promise<T> {
  const bytes = await blobs.readBytes(digest);
  try {
    return JSON.parse(bytes.toString("utf8")) as T;
  } catch {
    throw new KilnError("MANIFEST_INVALID", `${what} ${digest} is not valid JSON`);
  }
}

/** The subject digests of a statement that are not `image` (empty when it is about `image` only). */
function foreignSubjects(s: ReadableStatement, image: Digest): string[] {
  if (!Array.isArray(s.subject) || s.subject.length === 0) return ["(no subject)"];
  const want = image.slice("sha256:".length);
  return s.subject.filter((x) => x?.digest?.sha256 !== want).map((x) => (x?.digest?.sha256 ? `sha256:${x.digest.sha256}` : JSON.stringify(x?.digest ?? null)));
}

/**
 * The statements of one attestation manifest `att` (an entry of `index`), checked against it:
 * its reference digest must name an image manifest of `index`, every statement's subject that image.
 */
export async function readAttestationManifest(blobs: BlobReader, index: Index, att: Descriptor): Promise<{ image: Digest; statements: ReadStatement[] }> {
  const image = att.annotations?.[REFERENCE_DIGEST_ANNOTATION] as Digest | undefined;
  const images = index.manifests.filter((d) => !isAttestationEntry(d));
  if (!image || !images.some((d) => d.digest === image)) {
    throw new KilnError(
      "ATTESTATION_INVALID",
      `attestation manifest ${att.digest} refers to ${image ?? "no image"} (${REFERENCE_DIGEST_ANNOTATION}), which is not a manifest of its index (${images.map((d) => d.digest).join(", ") || "none"})`,
    );
  }
  const m = await readJSON<Manifest>(blobs, att.digest, "attestation manifest");
  if (!m || !Array.isArray(m.layers)) throw new KilnError("MANIFEST_INVALID", `attestation manifest ${att.digest} has no layers`);
  const statements: ReadStatement[] = [];
  for (const layer of m.layers) {
    if (layer.mediaType !== IN_TOTO_MEDIA_TYPE) continue;
    const statement = await readJSON<ReadableStatement>(blobs, layer.digest, "in-toto statement");
    const foreign = foreignSubjects(statement, image);
    if (foreign.length > 0) {
      throw new KilnError(
        "ATTESTATION_INVALID",
        `statement ${layer.digest} in attestation manifest ${att.digest} is about ${foreign.join(", ")}, but the manifest is attached to image ${image}`,
      );
    }
    statements.push({ predicateType: layer.annotations?.[PREDICATE_TYPE_ANNOTATION] ?? statement.predicateType ?? "", digest: layer.digest, statement });
  }
  return { image, statements };
}

