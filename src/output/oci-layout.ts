// The OCI image layout destination: a directory (blobs hardlinked or copied from the store,
// index.json replaced atomically, tags merged into an existing layout) or the same layout as a
// tar file written to a temp name and renamed; an image index (multi-platform) is written with
// all its images' blobs and named in index.json like a single image. Also the tar-of-a-layout helper docker-archive uses.
// A directory's small operations (the checks, the directories, a hardlink per blob, the two JSON
// files) are synchronous calls: a few dozen of them take less than their promise forms'
// thread-pool round trips, one after another (~5 ms for a small image's layout); copies and
// streams (another file system) stay asynchronous.
import { existsSync, linkSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { copyFile, link, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KilnError, UsageError, abortable, throwIfAborted } from "../errors.js";
import { descriptorJSON } from "../image/materialize.js";
import { isIndexSource, type OutputImage } from "../image/image-index.js";
import { MediaType, REF_NAME_ANNOTATION, type Descriptor, type Digest, type Index } from "../image/oci.js";
import type { LayerEntry } from "../layer/entry.js";
import { tarStream } from "../layer/tar-writer.js";
import { createdWriteStream, tempNameFor, writeFileAtomicSync } from "../store/atomic-file.js";

export const OCI_LAYOUT_FILE = JSON.stringify({ imageLayoutVersion: "1.0.0" });
const CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name";

export interface ParsedTag {
  /** Full normalized name, e.g. docker.io/library/hello:latest */
  full: string;
  /** Docker's familiar form, e.g. hello:latest */
  familiar: string;
  /** Familiar repository without tag, e.g. hello */
  repository: string;
  /** The tag alone, e.g. latest (what ref.name holds, as `oci:DIR:TAG` expects) */
  tag: string;
}

/**
 * The tags to record for a list of references: "name:tag@digest" keeps its tag; digest-only
 * references ("name@sha256:...") name no tag and are left out (the image is then untagged).
 */
export function tagsFrom(refs: string[] | undefined): ParsedTag[] {
  const out: ParsedTag[] = [];
  for (const ref of refs ?? []) {
    const at = ref.indexOf("@");
    if (at < 0) {
      out.push(parseTag(ref));
      continue;
    }
    const name = ref.slice(0, at);
    if (name.lastIndexOf(":") > name.lastIndexOf("/")) out.push(parseTag(name));
  }
  return out;
}

/** Parse "name[:tag]" (default tag latest) into the forms layouts and archives record. */
export function parseTag(ref: string): ParsedTag {
  if (ref.includes("@")) throw new UsageError("TAG_INVALID", `invalid tag "${ref}": digests cannot be used as tags`);
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  let name = ref;
  let tag = "latest";
  if (colon > slash) {
    name = ref.slice(0, colon);
    tag = ref.slice(colon + 1);
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) throw new UsageError("TAG_INVALID", `invalid tag "${ref}"`);
  const parts = name.split("/");
  if (name === "" || parts.some((p) => p === "")) throw new UsageError("TAG_INVALID", `invalid tag "${ref}"`);
  const first = parts[0]!;
  const hasHost = parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost");
  let host = hasHost ? first : "docker.io";
  let path = hasHost ? parts.slice(1).join("/") : name;
  if (host === "index.docker.io") host = "docker.io";
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(path)) {
    throw new UsageError("TAG_INVALID", `invalid tag "${ref}": repository names must be lowercase`);
  }
  if (host === "docker.io" && !path.includes("/")) path = `library/${path}`;
  let repository = `${host}/${path}`;
  if (host === "docker.io") repository = path.startsWith("library/") ? path.slice("library/".length) : path;
  return { full: `${host}/${path}:${tag}`, familiar: `${repository}:${tag}`, repository, tag };
}

/** The index.json entry for `img` under one tag (or untagged). */
function indexEntry(img: OutputImage, tag: ParsedTag | undefined): Descriptor {
  const d: Descriptor = { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size };
  if (tag) d.annotations = { [CONTAINERD_NAME_ANNOTATION]: tag.full, [REF_NAME_ANNOTATION]: tag.tag };
  return d;
}

function indexJSON(manifests: Descriptor[]): string {
  return JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: manifests.map(descriptorJSON) });
}

/** Merge `img` into an existing index: tags replace entries with the same ref.name; others are kept. */
function mergeIndex(existing: Descriptor[], img: OutputImage, tags: ParsedTag[]): Descriptor[] {
  if (tags.length === 0) {
    const already = existing.some((d) => d.digest === img.manifest.digest && !d.annotations?.[REF_NAME_ANNOTATION]);
    return already ? existing : [...existing, indexEntry(img, undefined)];
  }
  const names = new Set(tags.map((t) => t.tag));
  const kept = existing.filter((d) => {
    const n = d.annotations?.[REF_NAME_ANNOTATION];
    return n === undefined || !names.has(n);
  });
  const seen = new Set<string>();
  const added: Descriptor[] = [];
  for (const t of tags) {
    if (seen.has(t.tag)) continue;
    seen.add(t.tag);
    added.push(indexEntry(img, t));
  }
  return [...kept, ...added];
}

/** Every blob `img` needs, unique by digest (an index: its images' blobs, then the index itself). */
function blobDigests(img: OutputImage): Descriptor[] {
  const all = isIndexSource(img)
    ? [...img.images.flatMap((i) => [...i.layers.map((l) => l.descriptor), i.config, i.manifest]), img.manifest]
    : [...img.layers.map((l) => l.descriptor), img.config, img.manifest];
  return [...new Map(all.map((d) => [d.digest, d])).values()];
}

/**
 * Put one blob at `dest`: hardlinked straight to its name when the source keeps it in a file on the
 * same file system (a link of a whole file is complete the moment it exists), else copied or
 * streamed to a temp name and renamed (also over a wrong file already at `dest`).
 */
async function placeBlob(img: OutputImage, digest: Digest, dest: string, signal: AbortSignal | undefined): Promise<void> {
  const src = img.path?.(digest);
  if (src !== undefined) {
    try {
      linkSync(src, dest); // (see the header: one quick system call)
      return;
    } catch {
      // another file system, no hardlinks, or something at dest: the temp-name way below
    }
  }
  const tmp = tempNameFor(dest);
  try {
    if (src !== undefined) {
      try {
        await link(src, tmp);
      } catch {
        await copyFile(src, tmp);
      }
    } else {
      await pipeline(img.open(digest), await createdWriteStream(tmp), signal ? { signal } : {});
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true }); // renamed: nothing left to remove
    throw err;
  }
}

/** Every blob of `img` must be there, at its descriptor's size, before anything is written (checked at once; the first in order is reported). */
export async function checkBlobs(img: OutputImage): Promise<void> {
  const sizes = await Promise.all(blobDigests(img).map(async (d) => ({ d, size: await img.size(d.digest).catch(() => undefined) })));
  for (const { d, size } of sizes) {
    if (size === undefined) throw new KilnError("BLOB_MISSING", `blob ${d.digest} is missing from the store`);
    if (size !== d.size) throw new KilnError("BLOB_SIZE_MISMATCH", `blob ${d.digest} in the store is ${size} bytes, expected ${d.size}`);
  }
}

function readExistingIndex(dest: string): Descriptor[] {
  const layoutFile = join(dest, "oci-layout");
  const indexFile = join(dest, "index.json");
  if (!existsSync(indexFile)) {
    if (existsSync(layoutFile)) throw new KilnError("OUTPUT_DEST_INVALID", `${dest}: has an oci-layout file but no index.json`);
    return [];
  }
  let index: Index;
  try {
    index = JSON.parse(readFileSync(indexFile, "utf8")) as Index;
  } catch {
    throw new KilnError("OUTPUT_DEST_INVALID", `${dest}: existing index.json is not valid JSON; refusing to overwrite it`);
  }
  if (!index || index.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
    throw new KilnError("OUTPUT_DEST_INVALID", `${dest}: existing index.json is not an OCI image index; refusing to overwrite it`);
  }
  return index.manifests;
}

async function writeLayoutDir(img: OutputImage, dest: string, tags: ParsedTag[], signal: AbortSignal | undefined): Promise<void> {
  const destStat = statSync(dest, { throwIfNoEntry: false });
  const destExisted = destStat !== undefined;
  if (destStat && !destStat.isDirectory()) throw new KilnError("OUTPUT_DEST_INVALID", `${dest}: exists and is not a directory`);
  const existing = readExistingIndex(dest);
  const blobDir = join(dest, "blobs", "sha256");
  const added: string[] = [];
  try {
    mkdirSync(blobDir, { recursive: true });
    // the blobs at once (each a stat, and a link or copy when missing); every one settles before a failure is handled
    const placed = await Promise.allSettled(blobDigests(img).map(async (d) => {
      const target = join(blobDir, d.digest.slice("sha256:".length));
      if (statSync(target, { throwIfNoEntry: false })?.size === d.size) return;
      throwIfAborted(signal);
      await placeBlob(img, d.digest, target, signal);
      added.push(target);
    }));
    const failed = placed.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const layoutFile = join(dest, "oci-layout");
    if (!existsSync(layoutFile)) writeFileAtomicSync(layoutFile, OCI_LAYOUT_FILE);
    writeFileAtomicSync(join(dest, "index.json"), indexJSON(mergeIndex(existing, img, tags)));
  } catch (err) {
    if (!destExisted) {
      await rm(dest, { recursive: true, force: true });
    } else {
      for (const f of added) await rm(f, { force: true });
    }
    throw err;
  }
}

/** Tar entries for a layout holding `img`: blobs/, oci-layout, index.json plus `extra` files. */
export function layoutTarEntries(
  img: OutputImage,
  indexText: string,
  extra: Record<string, string> = {},
): LayerEntry[] {
  const base = { mode: 0o644, uid: 0, gid: 0, mtime: 0 };
  const text = (path: string, data: string): LayerEntry => {
    const buf = Buffer.from(data, "utf8");
    return { ...base, path, type: "file", size: buf.length, open: () => Readable.from([buf]) };
  };
  const entries: LayerEntry[] = [
    { ...base, path: "blobs", type: "dir", mode: 0o755, size: 0 },
    { ...base, path: "blobs/sha256", type: "dir", mode: 0o755, size: 0 },
    text("oci-layout", OCI_LAYOUT_FILE),
    text("index.json", indexText),
  ];
  for (const [path, data] of Object.entries(extra)) entries.push(text(path, data));
  for (const d of blobDigests(img)) {
    const digest: Digest = d.digest;
    entries.push({ ...base, path: `blobs/sha256/${digest.slice(7)}`, type: "file", size: d.size, open: () => img.open(digest) });
  }
  return entries;
}

/** Stream `entries` as a tar to `dest` via a temp name in the same directory; nothing left on failure. */
export async function writeTarAtomic(entries: LayerEntry[], dest: string, signal?: AbortSignal): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  if (statSync(dest, { throwIfNoEntry: false })?.isDirectory()) throw new KilnError("OUTPUT_DEST_INVALID", `${dest}: is a directory, expected a tar file path`);
  const tmp = tempNameFor(dest);
  try {
    await pipeline(tarStream(entries), await createdWriteStream(tmp), signal ? { signal } : {});
    await rename(tmp, dest);
  } finally {
    await rm(tmp, { force: true });
  }
}

export interface LayoutWriteOptions {
  /** The directory (or, with `tar`, the tar file) to write. */
  dest: string;
  /** References to record in index.json (tags merge into an existing layout directory). */
  tags?: string[];
  tar?: boolean;
  /** Cancels the write; nothing half-written is left at `dest`. */
  signal?: AbortSignal;
}

/** Write `img` as an OCI image layout directory (or, with `tar`, a tar of one) at `dest`. */
export function writeOciLayout(img: OutputImage, options: LayoutWriteOptions): Promise<void> {
  return abortable(options.signal, () => writeLayout(img, options));
}

async function writeLayout(img: OutputImage, options: LayoutWriteOptions): Promise<void> {
  const tags = tagsFrom(options.tags);
  await checkBlobs(img);
  throwIfAborted(options.signal);
  if (options.tar) {
    const text = indexJSON(mergeIndex([], img, tags));
    await writeTarAtomic(layoutTarEntries(img, text), options.dest, options.signal);
    return;
  }
  await writeLayoutDir(img, options.dest, tags, options.signal);
}

