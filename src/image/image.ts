// The image a build assembles: a config plus ordered layers whose blobs live in the BlobStore,
// and its serialized form (materialize.ts). Writers take an ImageSource (source.ts) instead, so
// they never know where an image came from.
import type { Descriptor, Digest, ImageConfig, ImageFormat } from "./oci.js";

export interface Layer {
  /** The compressed blob as stored (mediaType in OCI form; outputs convert for docker format). */
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar. */
  diffID: Digest;
}

export interface Image {
  config: ImageConfig;
  layers: Layer[];
}

/** The serialized form of an Image: config and manifest blobs, written to the store. */
export interface MaterializedImage {
  format: ImageFormat;
  config: Descriptor;
  manifest: Descriptor;
  layers: Descriptor[];
}
