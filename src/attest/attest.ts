// The attestations of one build: the SLSA provenance statement and/or the SPDX SBOM statements
// (the image's, then one per extra scan: BUILDKIT_SBOM_SCAN_STAGE stages, the context) about the
// image manifest, stored as BuildKit stores them (store.ts). An image's SBOM findings are kept by
// its layers (sbom-cache.ts; per-layer scans in scan-cache.ts): a warm build scans nothing; an SBOM
// document is a function of its image (its namespace the manifest digest, its creation time the
// image's): a warm build of the same image makes the same statement, stored once. The build calls
// `attestImage` after materializing each platform's image and lists the returned manifest in the
// output's index (store.ts attestationEntry).
import { createHash } from "node:crypto";
import { KilnError } from "../errors.js";
import type { Image } from "../image/image.js";
import type { Descriptor, Digest, Platform } from "../image/oci.js";
import { formatPlatform } from "../image/platform.js";
import type { BlobStore } from "../store/blob-store.js";
import { findPackages } from "./packages.js";
import { SLSA_PROVENANCE_V1, provenancePredicate, type ProvenanceInput } from "./provenance.js";
import type { AttestRequest } from "./request.js";
import { scanDirectory } from "./scan-dir.js";
import { scanFiles } from "./scan-files.js";
import { storeScanCache } from "./scan-cache.js";
import { cachedImageSbom, cachedSbomStatement, rememberSbomStatement, type ImageSbom, type SbomLayer } from "./sbom-cache.js";
import { SPDX_PREDICATE, spdxPackagesJSON, spdxStatementHead, spdxStatementJSON, type SpdxInput } from "./spdx.js";
import { imageSubjects, statement } from "./statement.js";
import { encodeStatement, storeAttestations, type EncodedStatement, type StoredAttestations } from "./store.js";

/** An extra SBOM scan (BUILDKIT_SBOM_SCAN_STAGE / _CONTEXT): a stage's image or the build context directory. */
export type ExtraScan =
  | { name: string; image: Image }
  | { name: string; directory: string; ignore?: (relPath: string) => boolean };

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
  /** Stages and the context scanned too: one more SPDX statement each, after the image's. */
  extraScans?: ExtraScan[];
  /** What the SBOM scan could not read (e.g. an RPM database kiln does not support). */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

export async function attestImage(input: AttestInput): Promise<StoredAttestations> {
  const platform = formatPlatform(input.platform);
  const subjects = imageSubjects(input.manifest.digest, input.names, platform);
  const fixed = input.sourceDateEpoch !== undefined ? new Date(input.sourceDateEpoch * 1000) : undefined;
  const statements: EncodedStatement[] = [];
  if (input.request.sbom) {
    const signal = input.signal ? { signal: input.signal } : {};
    const cache = storeScanCache(input.store);
    const version = input.provenance.version;
    const findings = (files: Map<string, Buffer>): ImageSbom => {
      const warnings: string[] = [];
      return { ...spdxPackagesJSON(findPackages(files, (w) => warnings.push(w))), warnings };
    };
    // an image's findings are kept by its layers (sbom-cache.ts): a warm build scans nothing
    const layersOf = (image: Image): SbomLayer[] => image.layers.map((l) => ({ mediaType: l.descriptor.mediaType, digest: l.descriptor.digest }));
    const imageSbom = (image: Image): Promise<ImageSbom> => cachedImageSbom(
      input.store,
      layersOf(image),
      version,
      async () => findings(await scanFiles(
        image.layers.map((l) => ({ mediaType: l.descriptor.mediaType, key: l.descriptor.digest, open: () => input.store.open(l.descriptor.digest) })),
        { cache, tempPath: () => input.store.tempPath(), ...signal },
      )),
    );
    const name = input.names[0] ?? input.manifest.digest;
    const namespace = `https://kiln.dev/spdx/${input.manifest.digest.slice("sha256:".length)}`;
    const when = input.image.config?.created ? new Date(input.image.config.created) : undefined;
    const imageCreated = when && !Number.isNaN(when.getTime()) ? when : undefined;
    const document = (scan?: string): Omit<SpdxInput, "packages"> => ({
      // the image's document first; each extra named as BuildKit names the scan (sbom-<stage>, sbom-context)
      name: scan ? `${name} sbom-${scan}` : name,
      namespace: scan ? `${namespace}/sbom-${scan}` : namespace,
      // the image's own creation time: the same image gives the same document (stored once)
      created: fixed ?? imageCreated ?? new Date(),
      toolVersion: version,
    });
    const sbom = (found: ImageSbom, scan?: string): EncodedStatement => {
      for (const w of found.warnings) input.onWarning?.(w);
      return { predicateType: SPDX_PREDICATE, json: spdxStatementJSON(subjects, document(scan), found) };
    };
    // An image's statement: the one stored when this image was attested before (remembered by its
    // findings' entry and the document's own text), else made and stored now, and remembered.
    const imageStatement = async (image: Image, scan?: string): Promise<EncodedStatement> => {
      const doc = document(scan);
      const head = spdxStatementHead(subjects, doc);
      const known = await cachedSbomStatement(input.store, layersOf(image), version, head);
      if (known) {
        for (const w of known.warnings) input.onWarning?.(w);
        return { predicateType: SPDX_PREDICATE, blob: { digest: known.digest as Digest, size: known.size } };
      }
      const found = await imageSbom(image);
      for (const w of found.warnings) input.onWarning?.(w);
      const blob = await input.store.putBytes(spdxStatementJSON(subjects, doc, found, head));
      await rememberSbomStatement(input.store, layersOf(image), version, head, { ...blob, warnings: found.warnings });
      return { predicateType: SPDX_PREDICATE, blob };
    };
    statements.push(await imageStatement(input.image));
    for (const extra of input.extraScans ?? []) {
      statements.push("image" in extra
        ? await imageStatement(extra.image, extra.name)
        : sbom(findings(await scanDirectory(extra.directory, { ...(extra.ignore ? { ignore: extra.ignore } : {}), ...signal })), extra.name));
    }
  }
  if (input.request.provenance) {
    const p = input.provenance;
    const predicate = provenancePredicate({
      ...p,
      mode: input.request.provenance,
      platform,
      ...(fixed ? { startedOn: fixed, finishedOn: fixed } : { finishedOn: new Date() }),
    });
    statements.push(encodeStatement(statement(subjects, SLSA_PROVENANCE_V1, predicate)));
  }
  if (statements.length === 0) throw new KilnError("INTERNAL", "internal: attestImage called with nothing to attest");
  return storeAttestations(input.store, input.manifest, statements);
}

/** sha256 hex of a text (the Dockerfile's digest in the provenance). */
export function sha256Hex(text: string | Buffer): string {
  return createHash("sha256").update(text).digest("hex");
}
