// Stores attestations as BuildKit does, so that buildx imagetools, docker scout and other tools
// read them: the in-toto statements become the layers (application/vnd.in-toto+json, annotated
// with their predicate type) of an attestation manifest whose config is an unknown/unknown image
// config, and an OCI index holds the image manifest (with its platform) and that manifest
// (platform unknown/unknown, vnd.docker.reference.type attestation-manifest and
// vnd.docker.reference.digest the image manifest's digest). Every blob lands in the BlobStore.
import { descriptorJSON, manifestJSON } from "../image/materialize.js";
import { MediaType, type Descriptor, type Manifest, type Platform } from "../image/oci.js";
import type { BlobStore } from "../store/blob-store.js";
import { IN_TOTO_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION, type Statement } from "./statement.js";

export const REFERENCE_TYPE_ANNOTATION = "vnd.docker.reference.type";
export const REFERENCE_DIGEST_ANNOTATION = "vnd.docker.reference.digest";
export const ATTESTATION_MANIFEST_TYPE = "attestation-manifest";

export interface StoredAttestations {
  /** The index holding the image and its attestation manifest (what outputs write and push). */
  index: Descriptor;
  /** The attestation manifest. */
  manifest: Descriptor;
  /** Every blob written besides the image's own: statements, config, attestation manifest, index. */
  blobs: Descriptor[];
}

/** Put the statements about `image` (a manifest for `platform`) into `store` as an index. */
export async function storeAttestations(store: BlobStore, image: Descriptor, platform: Platform, statements: Statement[]): Promise<StoredAttestations> {
  const layers: Descriptor[] = [];
  for (const s of statements) {
    const blob = await store.putBytes(JSON.stringify(s));
    layers.push({ mediaType: IN_TOTO_MEDIA_TYPE, digest: blob.digest, size: blob.size, annotations: { [PREDICATE_TYPE_ANNOTATION]: s.predicateType } });
  }
  const config = JSON.stringify({ architecture: "unknown", os: "unknown", config: {}, rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) } });
  const cfg = await store.putBytes(config);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: cfg.digest, size: cfg.size },
    layers,
  };
  const m = await store.putBytes(manifestJSON(manifest));
  const attDesc: Descriptor = {
    mediaType: MediaType.ociManifest,
    digest: m.digest,
    size: m.size,
    annotations: { [REFERENCE_DIGEST_ANNOTATION]: image.digest, [REFERENCE_TYPE_ANNOTATION]: ATTESTATION_MANIFEST_TYPE },
    platform: { architecture: "unknown", os: "unknown" },
  };
  const imageDesc: Descriptor = { mediaType: image.mediaType, digest: image.digest, size: image.size, platform };
  const index = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [descriptorJSON(imageDesc), descriptorJSON(attDesc)] });
  const i = await store.putBytes(index);
  const indexDesc: Descriptor = { mediaType: MediaType.ociIndex, digest: i.digest, size: i.size };
  return { index: indexDesc, manifest: attDesc, blobs: [...layers, manifest.config, attDesc, indexDesc] };
}
