// `--attest-referrers`: each in-toto statement of an attestation manifest also as an OCI 1.1
// artifact manifest whose `subject` is the platform image manifest, so registries with the
// referrers API (and clients of the referrers tag schema) find it without reading the index.
// The artifact: artifactType `application/vnd.in-toto+json` (a media type, as OCI requires; the
// predicate type URL is not one), the empty config, the statement blob as its one layer, and the
// predicate type as the `in-toto.io/predicate-type` annotation of the manifest (and so of its
// entry in the referrers index). The blobs land in the BlobStore; registry/referrers.ts pushes.
import { KilnError } from "../errors.js";
import { manifestJSON } from "../image/materialize.js";
import { MediaType, type Descriptor, type Manifest } from "../image/oci.js";
import type { Referrer } from "../registry/referrers.js";
import type { BlobStore } from "../store/blob-store.js";
import { IN_TOTO_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION } from "./statement.js";
import type { StoredAttestations } from "./store.js";

/** The referrer artifacts of stored attestations, one per statement, in their order. */
export async function referrerArtifacts(store: BlobStore, attestations: StoredAttestations[]): Promise<Referrer[]> {
  const empty = await store.putBytes("{}");
  const config: Descriptor = { mediaType: MediaType.ociEmpty, digest: empty.digest, size: empty.size };
  const out: Referrer[] = [];
  for (const a of attestations) {
    const am = await store.readJSON<Manifest>(a.manifest.digest);
    const subject: Descriptor = { mediaType: a.subject.mediaType, digest: a.subject.digest, size: a.subject.size };
    for (const layer of am.layers) {
      if (layer.mediaType !== IN_TOTO_MEDIA_TYPE) continue;
      const predicateType = layer.annotations?.[PREDICATE_TYPE_ANNOTATION];
      if (!predicateType) throw new KilnError("INTERNAL", `internal: statement ${layer.digest} has no predicate type annotation`);
      const manifest: Manifest = {
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        artifactType: IN_TOTO_MEDIA_TYPE,
        config,
        layers: [layer],
        subject,
        annotations: { [PREDICATE_TYPE_ANNOTATION]: predicateType },
      };
      const blob = await store.putBytes(manifestJSON(manifest));
      out.push({
        descriptor: { mediaType: MediaType.ociManifest, artifactType: IN_TOTO_MEDIA_TYPE, digest: blob.digest, size: blob.size, annotations: { [PREDICATE_TYPE_ANNOTATION]: predicateType } },
        subject,
        blobs: [config, layer],
      });
    }
  }
  return out;
}
