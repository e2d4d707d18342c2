// The one image value every writer takes: ImageSource (manifest and config descriptors, the layers
// with digest/diffID/size/mediaType, and a way to open any of its blobs), and its constructors for
// a built or pulled image (blobs in the BlobStore) and an image in an OCI layout on disk. The
// format comes from the manifest's exact media type, never from a substring.
import { readFile, stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { KilnError } from "../errors.js";
import type { BlobStore } from "../store/blob-store.js";
import { OciLayout } from "./layout.js";
import { MediaType, type Descriptor, type Digest, type ImageConfig, type ImageFormat, type Manifest, type Platform } from "./oci.js";

/** Read access to the blobs of an image, wherever they are kept. */
export interface BlobReader {
  /** A stream of the blob's bytes. */
  open(digest: Digest): Readable;
  size(digest: Digest): Promise<number>;
  /** The whole blob (for manifests and configs). */
  readBytes(digest: Digest): Promise<Buffer>;
  /** A file holding the blob, when blobs are files: writers may hardlink it instead of copying. */
  path?(digest: Digest): string;
}

export interface SourceLayer {
  /** The layer's descriptor exactly as the manifest lists it. */
  descriptor: Descriptor;
  digest: Digest;
  size: number;
  mediaType: string;
  /** sha256 of the uncompressed tar, from the config's rootfs.diff_ids (absent when the config is not an image config, e.g. a cache manifest). */
  diffID?: Digest;
}

/** One single-platform image: what the OCI layout, docker archive and registry writers consume. */
export interface ImageSource extends BlobReader {
  format: ImageFormat;
  /** The manifest blob's descriptor (its digest is the image digest). */
  manifest: Descriptor;
  config: Descriptor;
  layers: SourceLayer[];
}

/** The format of a manifest media type; anything but the two image manifest types is refused. */
export function manifestFormat(mediaType: string, where: string): ImageFormat {
  if (mediaType === MediaType.ociManifest) return "oci";
  if (mediaType === MediaType.dockerManifest) return "docker";
  throw new KilnError("MANIFEST_INVALID", `${where}: ${mediaType || "(no media type)"} is not an image manifest`);
}

const IMAGE_CONFIG_TYPES = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);

/**
 * The ImageSource for the manifest `manifestDesc` whose blobs `blobs` serves. diffIDs are read
 * from the config when it is an image config (and must then match the layer count).
 */
export async function imageSource(blobs: BlobReader, manifestDesc: Descriptor, where = `image ${manifestDesc.digest}`): Promise<ImageSource> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse((await blobs.readBytes(manifestDesc.digest)).toString("utf8")) as Manifest;
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError("MANIFEST_INVALID", `${where}: manifest ${manifestDesc.digest} is not valid JSON`);
  }
  return imageSourceOf(blobs, manifestDesc, manifest, undefined, where);
}

/**
 * imageSource for a manifest already in memory (`manifest` is what `manifestDesc` names; `config`,
 * when given, is what its config descriptor names): what was just stored is not read back.
 */
export async function imageSourceOf(blobs: BlobReader, manifestDesc: Descriptor, manifest: Manifest, config?: ImageConfig, where = `image ${manifestDesc.digest}`): Promise<ImageSource> {
  if (!manifest || typeof manifest !== "object" || !manifest.config || !Array.isArray(manifest.layers)) {
    throw new KilnError("MANIFEST_INVALID", `${where}: manifest ${manifestDesc.digest} is malformed`);
  }
  const mediaType = manifest.mediaType ?? manifestDesc.mediaType;
  const format = manifestFormat(mediaType, where);
  let diffIDs: Digest[] | undefined;
  let configBytes: Buffer | undefined;
  if (IMAGE_CONFIG_TYPES.has(manifest.config.mediaType)) {
    if (config === undefined) configBytes = await blobs.readBytes(manifest.config.digest);
    const cfg = config ?? JSON.parse(configBytes!.toString("utf8")) as ImageConfig;
    diffIDs = cfg.rootfs?.diff_ids;
    if (!Array.isArray(diffIDs) || diffIDs.length !== manifest.layers.length) {
      throw new KilnError("MANIFEST_INVALID", `${where}: config lists ${Array.isArray(diffIDs) ? diffIDs.length : 0} layers but the manifest has ${manifest.layers.length}`);
    }
  }
  const layers = manifest.layers.map((d, i): SourceLayer => {
    const layer: SourceLayer = { descriptor: d, digest: d.digest, size: d.size, mediaType: d.mediaType };
    if (diffIDs) layer.diffID = diffIDs[i]!;
    return layer;
  });
  const reader: ImageSource = {
    format,
    manifest: { mediaType, digest: manifestDesc.digest, size: manifestDesc.size },
    config: manifest.config,
    layers,
    open: (d) => blobs.open(d),
    size: (d) => blobs.size(d),
    // the config was read above: handed out again (a copy) without another read
    readBytes: (d) => (configBytes !== undefined && d === manifest.config.digest ? Promise.resolve(Buffer.from(configBytes)) : blobs.readBytes(d)),
  };
  if (blobs.path) reader.path = blobs.path.bind(blobs);
  return reader;
}

/** Blob access over the BlobStore (built and pulled images keep their blobs there). */
export function storeBlobs(store: BlobStore): BlobReader {
  return {
    open: (d) => store.open(d),
    size: (d) => store.size(d),
    readBytes: async (d) => {
      try {
        return await store.readBytes(d);
      } catch {
        throw new KilnError("BLOB_MISSING", `blob ${d} is not in the store ${store.root}`);
      }
    },
    path: (d) => store.path(d),
  };
}

/** Blob access over an OCI image layout directory. */
export function layoutBlobs(layout: OciLayout): BlobReader {
  return {
    open: (d) => layout.openBlob(d),
    size: async (d) => (await stat(layout.blobPath(d))).size,
    readBytes: async (d) => {
      try {
        return await readFile(layout.blobPath(d));
      } catch {
        throw new KilnError("BLOB_MISSING", `${layout.dir}: blob ${d} is missing`);
      }
    },
    path: (d) => layout.blobPath(d),
  };
}

/** A built or pulled image: the manifest `manifestDesc` with all its blobs in `store`. */
export function storeImage(store: BlobStore, manifestDesc: Descriptor): Promise<ImageSource> {
  return imageSource(storeBlobs(store), manifestDesc);
}

/**
 * The image `selector` (tag or digest; optional when the layout holds one image) names in the
 * OCI layout at `dir`, following an index to `platform` (default: the only image, else the host's).
 */
export async function layoutImage(dir: string | OciLayout, selector?: string, platform?: Platform): Promise<ImageSource> {
  const layout = typeof dir === "string" ? await OciLayout.open(dir) : dir;
  const read = await layout.readImage(await layout.resolve(selector), platform);
  return imageSource(layoutBlobs(layout), read.manifestDescriptor, layout.dir);
}
