// Reading an OCI image layout on disk (oci-layout, index.json, blobs/<alg>/<hex>): resolving a
// tag or digest, following an index to a platform, and importing an image's blobs into the store;
// splitting `DIR[:TAG|@sha256:...]` (what follows `oci-layout://`) into directory and selector.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, link, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import { KilnError } from "../errors.js";
import { HashCounter, type BlobStore } from "../store/blob-store.js";
import type { Image, Layer } from "./image.js";
import {
  MediaType,
  REF_NAME_ANNOTATION,
  isDigest,
  type Descriptor,
  type Digest,
  type ImageConfig,
  type Index,
  type Manifest,
  type Platform,
} from "./oci.js";

import { hostPlatform, platformMatches } from "./platform.js";

const INDEX_TYPES = new Set<string>([MediaType.ociIndex, MediaType.dockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MediaType.ociManifest, MediaType.dockerManifest]);

function platformString(p: Platform | undefined): string {
  if (!p) return "unknown";
  return [p.os, p.architecture, p.variant].filter((x) => x).join("/");
}

/**
 * `DIR[:TAG|@sha256:...]` (an `oci-layout://` value without its prefix) split into the directory and
 * the selector: `@sha256:` wins, else a `:` after the last `/` starts a tag. The directory may be ""
 * (callers say what is missing) and is not resolved.
 */
export function splitLayoutRef(rest: string): { dir: string; selector?: string } {
  const at = rest.lastIndexOf("@sha256:");
  if (at >= 0) return { dir: rest.slice(0, at), selector: rest.slice(at + 1) };
  const colon = rest.lastIndexOf(":");
  if (colon >= 0 && colon > rest.lastIndexOf("/")) return { dir: rest.slice(0, colon), selector: rest.slice(colon + 1) };
  return { dir: rest };
}

/** The tag part of a reference-like string ("repo:tag" -> "tag"; a bare word is itself). */
function tagPart(ref: string): string | undefined {
  const at = ref.indexOf("@");
  const base = at >= 0 ? ref.slice(0, at) : ref;
  const colon = base.lastIndexOf(":");
  if (colon < 0 || colon < base.lastIndexOf("/")) return undefined;
  return base.slice(colon + 1);
}

export class OciLayout {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Open a layout, checking its `oci-layout` marker and `index.json`. */
  static async open(dir: string): Promise<OciLayout> {
    let marker: unknown;
    try {
      marker = JSON.parse(await readFile(join(dir, "oci-layout"), "utf8"));
    } catch (err) {
      throw new KilnError("LAYOUT_INVALID", `${dir}: not an OCI layout (oci-layout file missing or unreadable)`, { cause: err });
    }
    const version = (marker as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
    if (typeof version !== "string" || !version.startsWith("1.")) {
      throw new KilnError("LAYOUT_INVALID", `${dir}: unsupported oci-layout imageLayoutVersion ${JSON.stringify(version)}`);
    }
    const layout = new OciLayout(dir);
    await layout.readIndex();
    return layout;
  }

  blobPath(digest: Digest): string {
    if (!isDigest(digest)) throw new KilnError("DIGEST_INVALID", `invalid digest ${JSON.stringify(digest)}`);
    return join(this.dir, "blobs", "sha256", digest.slice("sha256:".length));
  }

  openBlob(digest: Digest): Readable {
    return createReadStream(this.blobPath(digest));
  }

  /** Read a JSON blob, verifying that its bytes hash to `digest`. */
  async readJSON<T>(digest: Digest): Promise<T> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.blobPath(digest));
    } catch (err) {
      throw new KilnError("BLOB_MISSING", `${this.dir}: blob ${digest} is missing`, { cause: err });
    }
    const actual = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (actual !== digest) throw new KilnError("BLOB_DIGEST_MISMATCH", `${this.dir}: blob ${digest} is corrupt (its content hashes to ${actual})`);
    try {
      return JSON.parse(bytes.toString("utf8")) as T;
    } catch {
      throw new KilnError("MANIFEST_INVALID", `${this.dir}: blob ${digest} is not valid JSON`);
    }
  }

  async readIndex(): Promise<Index> {
    let index: Index;
    try {
      index = JSON.parse(await readFile(join(this.dir, "index.json"), "utf8")) as Index;
    } catch (err) {
      throw new KilnError("LAYOUT_INVALID", `${this.dir}: index.json missing or not valid JSON`, { cause: err });
    }
    if (index === null || typeof index !== "object" || index.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
      throw new KilnError("LAYOUT_INVALID", `${this.dir}: index.json is not an OCI image index`);
    }
    for (const d of index.manifests) {
      if (!d || typeof d !== "object" || !isDigest(d.digest) || typeof d.mediaType !== "string" || !Number.isInteger(d.size)) {
        throw new KilnError("LAYOUT_INVALID", `${this.dir}: index.json has a malformed descriptor`);
      }
    }
    return index;
  }

  /**
   * The index.json entry named by `selector`: a tag (ref.name annotation; "name:tag" forms match
   * by tag when the annotation holds only a tag), a "sha256:" digest, or nothing (the only entry).
   */
  async resolve(selector?: string): Promise<Descriptor> {
    const index = await this.readIndex();
    const entries = index.manifests;
    const tags = entries.map((d) => d.annotations?.[REF_NAME_ANNOTATION]).filter((t): t is string => !!t);
    const listing = tags.length > 0 ? `available tags: ${tags.join(", ")}` : "the layout has no tags";
    if (selector === undefined || selector === "") {
      const distinct = new Set(entries.map((d) => d.digest));
      if (distinct.size === 1) return entries[0]!; // one image, possibly under several tags
      if (entries.length === 0) throw new KilnError("LAYOUT_INVALID", `${this.dir}: the layout's index.json lists no images`);
      throw new KilnError("LAYOUT_IMAGE_NOT_FOUND", `${this.dir}: the layout holds ${distinct.size} images; name one (${listing})`);
    }
    if (selector.startsWith("sha256:")) {
      if (!isDigest(selector)) throw new KilnError("DIGEST_INVALID", `invalid digest ${selector}`);
      const found = entries.find((d) => d.digest === selector);
      if (!found) throw new KilnError("LAYOUT_IMAGE_NOT_FOUND", `${this.dir}: no image with digest ${selector}`);
      return found;
    }
    const exact = entries.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] === selector);
    let matches = exact;
    if (matches.length === 0) {
      const selTag = tagPart(selector);
      matches = entries.filter((d) => {
        const name = d.annotations?.[REF_NAME_ANNOTATION];
        if (!name) return false;
        if (selTag !== undefined && name === selTag) return true; // "repo:tag" vs annotation "tag"
        if (name.endsWith(`/${selector}`)) return true; // "repo:tag" vs annotation "host/repo:tag"
        const containerdName = d.annotations?.["io.containerd.image.name"];
        if (containerdName !== undefined && (containerdName === selector || containerdName.endsWith(`/${selector}`))) return true;
        return selTag === undefined && tagPart(name) === selector; // "tag" vs annotation "repo:tag"
      });
    }
    const unique = [...new Map(matches.map((d) => [d.digest, d])).values()];
    if (unique.length === 1) return unique[0]!;
    if (unique.length === 0) throw new KilnError("LAYOUT_IMAGE_NOT_FOUND", `${this.dir}: no image tagged "${selector}" (${listing})`);
    throw new KilnError("LAYOUT_IMAGE_NOT_FOUND", `${this.dir}: tag "${selector}" is ambiguous (${unique.length} images)`);
  }

  /** Read the image a descriptor names, following an index to the platform wanted. */
  async readImage(
    desc: Descriptor,
    platform?: Platform,
  ): Promise<{ manifestDescriptor: Descriptor; manifest: Manifest; config: ImageConfig; configDescriptor: Descriptor }> {
    let current = desc;
    for (let depth = 0; ; depth++) {
      if (depth > 4) throw new KilnError("MANIFEST_INVALID", `${this.dir}: image indexes nested too deeply`);
      const doc = await this.readJSON<Index & Manifest>(current.digest);
      const mt = doc.mediaType ?? current.mediaType;
      if (INDEX_TYPES.has(mt) || (Array.isArray(doc.manifests) && !doc.config)) {
        current = this.pickPlatform(doc as Index, platform);
        continue;
      }
      if (!MANIFEST_TYPES.has(mt) && !(doc.config && Array.isArray(doc.layers))) {
        throw new KilnError("MANIFEST_INVALID", `${this.dir}: ${current.digest} has unsupported media type ${mt}`);
      }
      const manifest = doc as Manifest;
      if (!manifest.config || !isDigest(manifest.config.digest) || !Array.isArray(manifest.layers)) {
        throw new KilnError("MANIFEST_INVALID", `${this.dir}: manifest ${current.digest} is malformed`);
      }
      const config = await this.readJSON<ImageConfig>(manifest.config.digest);
      if (!config || typeof config !== "object" || !config.rootfs || !Array.isArray(config.rootfs.diff_ids)) {
        throw new KilnError("MANIFEST_INVALID", `${this.dir}: config ${manifest.config.digest} is not an image config`);
      }
      if (platform && config.os && config.architecture && !platformMatches(platform, config)) {
        throw new KilnError("PLATFORM_MISMATCH", `${this.dir}: image is ${platformString(config)}, not ${platformString(platform)}`);
      }
      return { manifestDescriptor: current, manifest, config, configDescriptor: manifest.config };
    }
  }

  private pickPlatform(index: Index, platform: Platform | undefined): Descriptor {
    const candidates = index.manifests.filter(
      (d) => !(d.platform?.os === "unknown" && d.platform?.architecture === "unknown") &&
        d.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest",
    );
    if (!platform && candidates.length === 1) return candidates[0]!;
    const want = platform ?? hostPlatform();
    const found = candidates.find((d) => d.platform !== undefined && platformMatches(want, d.platform));
    if (found) return found;
    const have = candidates.map((d) => platformString(d.platform)).join(", ");
    throw new KilnError("PLATFORM_MISMATCH", `${this.dir}: no image for platform ${platformString(want)} (index has: ${have || "none"})`);
  }
}

/** Hash a file, returning digest and size. */
async function hashFile(path: string): Promise<{ digest: Digest; size: number }> {
  const counter = new HashCounter();
  await pipeline(createReadStream(path), counter, new Writable({ write: (_c, _e, cb) => cb() }));
  return { digest: counter.digest(), size: counter.size };
}

/** Put one layout blob into the store byte-identically (hardlink, else copy) after verifying it. */
async function importBlob(layout: OciLayout, desc: Descriptor, store: BlobStore): Promise<void> {
  if (await store.has(desc.digest)) return;
  const src = layout.blobPath(desc.digest);
  try {
    await stat(src);
  } catch {
    throw new KilnError("BLOB_MISSING", `${layout.dir}: blob ${desc.digest} is missing`);
  }
  const tmp = await store.tempPath();
  try {
    try {
      await link(src, tmp);
    } catch {
      await copyFile(src, tmp);
    }
    const got = await hashFile(tmp);
    if (got.digest !== desc.digest) throw new KilnError("BLOB_DIGEST_MISMATCH", `${layout.dir}: blob ${desc.digest} is corrupt (its content hashes to ${got.digest})`);
    if (got.size !== desc.size) throw new KilnError("BLOB_SIZE_MISMATCH", `${layout.dir}: blob ${desc.digest} is ${got.size} bytes, its descriptor says ${desc.size}`);
    await store.commit(tmp, desc.digest);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Import the image `desc` names from `layout` into `store`; returns the Image value. */
export async function importImage(
  layout: OciLayout,
  desc: Descriptor,
  store: BlobStore,
  platform?: Platform,
): Promise<{ image: Image; manifestDescriptor: Descriptor }> {
  const read = await layout.readImage(desc, platform);
  const diffIDs = read.config.rootfs.diff_ids;
  if (diffIDs.length !== read.manifest.layers.length) {
    throw new KilnError("MANIFEST_INVALID", `${layout.dir}: manifest ${read.manifestDescriptor.digest} has ${read.manifest.layers.length} layers but its config lists ${diffIDs.length} diff_ids`);
  }
  await importBlob(layout, read.configDescriptor, store);
  const layers: Layer[] = [];
  for (let i = 0; i < read.manifest.layers.length; i++) {
    const d = read.manifest.layers[i]!;
    await importBlob(layout, d, store);
    layers.push({ descriptor: { ...d }, diffID: diffIDs[i]! });
  }
  return { image: { config: read.config, layers }, manifestDescriptor: read.manifestDescriptor };
}
