// Stores attestations as BuildKit does, so that buildx imagetools, docker scout and other tools
// read them: the in-toto statements become the layers (application/vnd.in-toto+json, annotated
// with their predicate type) of an attestation manifest whose config is an unknown/unknown image
// config. The build lists it in the output's image index (src/image/image-index.ts storeIndex)
// after the platform images, as `attestationEntry` gives it: platform unknown/unknown,
// vnd.docker.reference.type attestation-manifest and vnd.docker.reference.digest the image
// manifest's digest. Every blob lands in the BlobStore.
import { manifestJSON } from "../image/materialize.js";
import type { PlatformImage } from "../image/image-index.js";
import { MediaType, type Descriptor, type Digest, type ImageConfig, type Manifest, type Platform } from "../image/oci.js";
import { imageSourceOf, storeBlobs, storeImage } from "../image/source.js";
import type { BlobStore } from "../store/blob-store.js";
import { ATTESTATION_MANIFEST_TYPE, IN_TOTO_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION, REFERENCE_DIGEST_ANNOTATION, REFERENCE_TYPE_ANNOTATION } from "../image/attestation-entry.js";
import type { Statement } from "./statement.js";

export { ATTESTATION_MANIFEST_TYPE, REFERENCE_DIGEST_ANNOTATION, REFERENCE_TYPE_ANNOTATION } from "../image/attestation-entry.js";

export interface StoredAttestations {
  /** The attestation manifest (OCI), its blobs in the store. */
  manifest: Descriptor;
  /** The image manifest the statements are about. */
  subject: Descriptor;
  /** The attestation manifest as stored (what `manifest` names), and its config: not read back from the store. */
  stored?: { manifest: Manifest; config: ImageConfig };
}

/**
 * A statement as its JSON text in UTF-8 (what is stored; parts are one after another), or as the
 * blob the store holds already, with its predicate type (what the layer is annotated with).
 */
export type EncodedStatement = { predicateType: string; json: Buffer | readonly Buffer[] } | { predicateType: string; blob: { digest: Digest; size: number } };

export function encodeStatement(s: Statement): EncodedStatement {
  return { predicateType: s.predicateType, json: Buffer.from(JSON.stringify(s), "utf8") };
}

/**
 * Put the statements about `image` (a manifest) into `store` as an attestation manifest (each
 * blob hashed once, by the store as it keeps it).
 */
export async function storeAttestations(store: BlobStore, image: Descriptor, statements: Array<Statement | EncodedStatement>): Promise<StoredAttestations> {
  const encoded = statements.map((s) => ("json" in s || "blob" in s ? s : encodeStatement(s)));
  const blobs = await Promise.all(encoded.map((s) => ("blob" in s ? s.blob : store.putBytes(s.json))));
  const layers: Descriptor[] = encoded.map((s, i) => ({ mediaType: IN_TOTO_MEDIA_TYPE, digest: blobs[i]!.digest, size: blobs[i]!.size, annotations: { [PREDICATE_TYPE_ANNOTATION]: s.predicateType } }));
  const config: ImageConfig = { architecture: "unknown", os: "unknown", config: {}, rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) } };
  const cfg = await store.putBytes(JSON.stringify(config));
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: cfg.digest, size: cfg.size },
    layers,
  };
  const m = await store.putBytes(manifestJSON(manifest));
  return { manifest: { mediaType: MediaType.ociManifest, digest: m.digest, size: m.size }, subject: image, stored: { manifest, config } };
}

const UNKNOWN_PLATFORM: Platform = { architecture: "unknown", os: "unknown" };

/** The index entry of stored attestations: unknown/unknown, annotated with the image it is about. */
export async function attestationEntry(store: BlobStore, stored: StoredAttestations): Promise<PlatformImage> {
  return {
    platform: UNKNOWN_PLATFORM,
    image: stored.stored ? await imageSourceOf(storeBlobs(store), stored.manifest, stored.stored.manifest, stored.stored.config) : await storeImage(store, stored.manifest),
    annotations: { [REFERENCE_DIGEST_ANNOTATION]: stored.subject.digest, [REFERENCE_TYPE_ANNOTATION]: ATTESTATION_MANIFEST_TYPE },
  };
}
