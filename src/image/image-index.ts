// Multi-platform images: an image index (OCI) or manifest list (Docker schema2) over one
// manifest per platform, each entry carrying its `platform`, stored in the BlobStore; and
// IndexSource, the value writers take for it beside the single-platform ImageSource. An entry
// may carry annotations: attestation manifests (platform unknown/unknown, annotated with the
// image manifest they are about) are entries like any other.
import { KilnError } from "../errors.js";
import type { BlobStore } from "../store/blob-store.js";
import { descriptorJSON } from "./materialize.js";
import { MediaType, type Descriptor, type ImageFormat, type Platform } from "./oci.js";
import { formatPlatform } from "./platform.js";
import { storeBlobs, type BlobReader, type ImageSource } from "./source.js";

/** An image index and the platform images it lists (their blobs readable through the same reader). */
export interface IndexSource extends BlobReader {
  kind: "index";
  format: ImageFormat;
  /** The index blob's descriptor (its digest is what a registry reports for the whole image). */
  manifest: Descriptor;
  /** Every manifest the index lists, in its order (platform images and attestation manifests). */
  images: ImageSource[];
}

/** What every output writer takes: one platform's image, or an index over several. */
export type OutputImage = ImageSource | IndexSource;

export function isIndexSource(img: OutputImage): img is IndexSource {
  return (img as IndexSource).kind === "index";
}

/** One platform's image for an index: its ImageSource and the platform its entry records. */
export interface PlatformImage {
  platform: Platform;
  image: ImageSource;
  /**
   * The entry's annotations. An annotated entry is not a platform image (an attestation
   * manifest: platform unknown/unknown, several of them in one index), so it is not held to
   * one entry per platform.
   */
  annotations?: Record<string, string>;
}

/**
 * Serialize an index over `entries` (in their order) in `format`'s vocabulary, store it, and
 * return the IndexSource. Every child must be of the same format.
 */
export async function storeIndex(store: BlobStore, entries: PlatformImage[], format: ImageFormat): Promise<IndexSource> {
  if (entries.length === 0) throw new KilnError("INTERNAL", "internal: an image index needs at least one manifest");
  const seen = new Set<string>();
  const manifests = entries.map(({ platform, image, annotations }) => {
    if (image.format !== format) throw new KilnError("INTERNAL", `internal: ${formatPlatform(platform)} image is ${image.format}, the index ${format}`);
    const text = formatPlatform(platform);
    if (annotations === undefined) {
      if (seen.has(text)) throw new KilnError("INTERNAL", `internal: platform ${text} listed twice in an index`);
      seen.add(text);
    }
    const p: Platform = { architecture: platform.architecture, os: platform.os };
    if (platform.variant) p.variant = platform.variant;
    const d: Descriptor = { mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.size, platform: p };
    if (annotations !== undefined) d.annotations = { ...annotations };
    return descriptorJSON(d);
  });
  const mediaType = format === "oci" ? MediaType.ociIndex : MediaType.dockerManifestList;
  const info = await store.putBytes(JSON.stringify({ schemaVersion: 2, mediaType, manifests }));
  return { kind: "index", format, manifest: { mediaType, digest: info.digest, size: info.size }, images: entries.map((e) => e.image), ...storeBlobs(store) };
}
