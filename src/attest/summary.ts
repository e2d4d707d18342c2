// What `--metadata-file` records of a build's attestations: per platform the image manifest, its
// attestation manifest, each statement's predicate type and blob digest, and (with
// --attest-referrers) the referrer artifacts pushed about that image.
import type { Digest, Manifest } from "../image/oci.js";
import type { Referrer } from "../registry/referrers.js";
import type { BlobStore } from "../store/blob-store.js";
import { PREDICATE_TYPE_ANNOTATION } from "./statement.js";
import type { StoredAttestations } from "./store.js";

export interface AttestationRecord {
  platform: string;
  image: Digest;
  /** The attestation manifest listed in the index. */
  manifest: Digest;
  statements: Array<{ predicateType: string; digest: Digest }>;
  /** Referrer artifact manifests about `image` (--attest-referrers). */
  referrers?: Digest[];
}

/** One record per stored attestation manifest; `platforms[i]` is the platform of `attestations[i]`. */
export async function attestationRecords(store: BlobStore, attestations: StoredAttestations[], platforms: string[], referrers: Referrer[] = []): Promise<AttestationRecord[]> {
  return Promise.all(attestations.map(async (a, i) => {
    const m = a.stored?.manifest ?? await store.readJSON<Manifest>(a.manifest.digest);
    const mine = referrers.filter((r) => r.subject.digest === a.subject.digest).map((r) => r.descriptor.digest);
    return {
      platform: platforms[i] ?? "",
      image: a.subject.digest,
      manifest: a.manifest.digest,
      statements: m.layers.map((l) => ({ predicateType: l.annotations?.[PREDICATE_TYPE_ANNOTATION] ?? "", digest: l.digest })),
      ...(mine.length > 0 ? { referrers: mine } : {}),
    };
  }));
}
