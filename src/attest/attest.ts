// The attestations of one build: the SLSA provenance statement and/or the SPDX SBOM statement
// about the image manifest, stored as BuildKit stores them (store.ts). The build calls
// `attestImage` after materializing each platform's image and lists the returned manifest in the
// output's index (store.ts attestationEntry).
import { createHash } from "node:crypto";
import { KilnError } from "../errors.js";
import type { Image } from "../image/image.js";
import type { Descriptor, Platform } from "../image/oci.js";
import { formatPlatform } from "../image/platform.js";
import type { BlobStore } from "../store/blob-store.js";
import { findPackages } from "./packages.js";
import { SLSA_PROVENANCE_V1, provenancePredicate, type ProvenanceInput } from "./provenance.js";
import type { AttestRequest } from "./request.js";
import { scanFiles } from "./scan-files.js";
import { storeScanCache } from "./scan-cache.js";
import { SPDX_PREDICATE, spdxDocument } from "./spdx.js";
import { imageSubjects, statement, type Statement } from "./statement.js";
import { storeAttestations, type StoredAttestations } from "./store.js";

export interface AttestInput {
  request: AttestRequest;
  store: BlobStore;
  image: Image;
  /** The image manifest's descriptor (the statements' subject). */
  manifest: Descriptor;
  platform: Platform;
  /** Image names (-t / name=), for the subjects. */
  names: string[];
  /** What the provenance records, less the mode and the finish time. */
  provenance: Omit<ProvenanceInput, "mode" | "finishedOn" | "platform">;
  /** SOURCE_DATE_EPOCH, when set: fixes every time recorded. */
  sourceDateEpoch?: number;
  /** What the SBOM scan could not read (e.g. an RPM database kiln does not support). */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

export async function attestImage(input: AttestInput): Promise<StoredAttestations> {
  const platform = formatPlatform(input.platform);
  const subjects = imageSubjects(input.manifest.digest, input.names, platform);
  const fixed = input.sourceDateEpoch !== undefined ? new Date(input.sourceDateEpoch * 1000) : undefined;
  const statements: Statement[] = [];
  if (input.request.sbom) {
    const files = await scanFiles(
      input.image.layers.map((l) => ({ mediaType: l.descriptor.mediaType, key: l.descriptor.digest, open: () => input.store.open(l.descriptor.digest) })),
      { cache: storeScanCache(input.store), ...(input.signal ? { signal: input.signal } : {}) },
    );
    const doc = spdxDocument({
      name: input.names[0] ?? input.manifest.digest,
      namespace: `https://kiln.dev/spdx/${input.manifest.digest.slice("sha256:".length)}`,
      created: fixed ?? new Date(),
      toolVersion: input.provenance.version,
      packages: findPackages(files, input.onWarning),
    });
    statements.push(statement(subjects, SPDX_PREDICATE, doc));
  }
  if (input.request.provenance) {
    const p = input.provenance;
    const predicate = provenancePredicate({
      ...p,
      mode: input.request.provenance,
      platform,
      ...(fixed ? { startedOn: fixed, finishedOn: fixed } : { finishedOn: new Date() }),
    });
    statements.push(statement(subjects, SLSA_PROVENANCE_V1, predicate));
  }
  if (statements.length === 0) throw new KilnError("INTERNAL", "internal: attestImage called with nothing to attest");
  return storeAttestations(input.store, input.manifest, statements);
}

/** sha256 hex of a text (the Dockerfile's digest in the provenance). */
export function sha256Hex(text: string | Buffer): string {
  return createHash("sha256").update(text).digest("hex");
}
