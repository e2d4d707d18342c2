// Reading attestations back: from an image index (wherever its blobs are: a layout, the store, a
// registry fetched into the store), each platform image and the in-toto statements of the
// attestation manifest that names it, checked as they are read (image/attestation-entry.ts:
// the reference digest inside the index, every subject the image's; else ATTESTATION_INVALID).
import { KilnError } from "../errors.js";
import { REFERENCE_DIGEST_ANNOTATION, isAttestationEntry, readAttestationManifest, readJSON, type ReadStatement } from "../image/attestation-entry.js";
import { MediaType, type Descriptor, type Digest, type Index } from "../image/oci.js";
import { formatPlatform } from "../image/platform.js";
import type { BlobReader } from "../image/source.js";

export type { ReadStatement } from "../image/attestation-entry.js";

export interface PlatformAttestations {
  platform: string;
  /** The image manifest the statements are about. */
  image: Digest;
  /** The attestation manifest; absent when this image has none. */
  manifest?: Digest;
  statements: ReadStatement[];
  /** True when this platform's image (or its attestation manifest) is not where the blobs are: an index pulled for other platforms. */
  notPulled?: boolean;
}

/**
 * Every platform image under `root` with its attestations, in index order (a plain manifest, or an
 * index without attestation manifests, gives entries without statements). With `present`, an
 * image whose manifest it does not hold, or whose attestation manifest it does not hold, is
 * marked notPulled and its statements are not read (a stored index pulled for one platform).
 */
export async function readAttestations(root: Descriptor, blobs: BlobReader, present?: (digest: Digest) => Promise<boolean>): Promise<PlatformAttestations[]> {
  if (root.mediaType !== MediaType.ociIndex && root.mediaType !== MediaType.dockerManifestList) {
    return [{ platform: "", image: root.digest, statements: [] }];
  }
  const index = await readJSON<Index>(blobs, root.digest, "index");
  if (!index || !Array.isArray(index.manifests)) throw new KilnError("MANIFEST_INVALID", `index ${root.digest} has no manifests list`);
  const out: PlatformAttestations[] = index.manifests
    .filter((d) => !isAttestationEntry(d))
    .map((d) => ({ platform: d.platform ? formatPlatform(d.platform) : "", image: d.digest, statements: [] }));
  if (present) for (const e of out) if (!(await present(e.image))) e.notPulled = true;
  for (const att of index.manifests.filter(isAttestationEntry)) {
    const attached = out.find((e) => e.image === att.annotations?.[REFERENCE_DIGEST_ANNOTATION]);
    if (present && attached && (attached.notPulled || !(await present(att.digest)))) {
      attached.notPulled = true;
      continue;
    }
    const { image, statements } = await readAttestationManifest(blobs, index, att);
    const entry = out.find((e) => e.image === image)!;
    entry.manifest = att.digest;
    entry.statements.push(...statements);
  }
  return out;
}
