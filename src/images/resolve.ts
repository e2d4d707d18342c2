// The one resolver from an image argument to an ImageSource, for every command that takes an
// image (run, push, inspect, history, tag): `oci-layout://DIR[:TAG|@DIGEST]`, a name in the local
// store (`app:1`, `app` = `app:latest`, `NAME@sha256:...` by digest), or a registry reference
// pulled on demand as the pull policy says (and then stored under its name, as docker does).
// `resolveRoot` is the same lookup stopping at the top (an index and what it lists, not one
// platform's image), for commands that read a whole index (kiln attestations).
// A stored name may record an index of which only some platforms were pulled (kiln pull keeps the
// index, downloading one platform): the platform wanted is selected from it, and when its blobs
// are not in the store it is pulled ("missing", "always") or named as not pulled ("never").
import { resolve as resolvePath } from "node:path";
import { KilnError } from "../errors.js";
import type { Descriptor, Index, Platform } from "../image/oci.js";
import { isIndexType } from "../image/oci.js";
import { formatPlatform, hostPlatform, selectManifest } from "../image/platform.js";
import { hasManifestBlobs } from "../image/stored-blobs.js";
import { isAttestationEntry } from "../image/attestation-entry.js";
import { familiarName, parseReference, type Reference } from "../image/reference.js";
import { layoutBlobs, layoutImage, storeBlobs, storeImage, type BlobReader, type ImageSource } from "../image/source.js";
import { OciLayout, splitLayoutRef } from "../image/layout.js";
import type { RegistryOptions } from "../registry/options.js";
import { BlobStore } from "../store/blob-store.js";
import { getName, listNames, setName, type NamedTarget } from "../store/names.js";

export type PullPolicy = "always" | "missing" | "never";

export interface ResolveOptions extends RegistryOptions {
  cacheDir: string;
  /** For an index and for pulls (default: the host's). */
  platform?: Platform;
  /** Registry references: "missing" (default) uses the stored image when there is one. */
  pull?: PullPolicy;
}

export interface ResolvedImage {
  source: ImageSource;
  /** How messages name it: the stored name, the layout argument, or the reference. */
  name: string;
  from: "layout" | "store" | "registry";
  /** What the name records (an index, or the manifest itself), for a stored or pulled image: what kiln tag names. */
  root?: Descriptor;
}

const LAYOUT_PREFIX = "oci-layout://";

/** `oci-layout://DIR[:TAG|@sha256:...]` split into the directory and the selector. */
export function splitLayoutArgument(arg: string): { dir: string; selector?: string } {
  const { dir, selector } = splitLayoutRef(arg.startsWith(LAYOUT_PREFIX) ? arg.slice(LAYOUT_PREFIX.length) : arg);
  if (dir === "") throw new KilnError("OPTION_INVALID", `${arg}: missing layout directory`);
  return { dir: resolvePath(dir), ...(selector ? { selector } : {}) };
}

export function isLayoutArgument(arg: string): boolean {
  return arg.startsWith(LAYOUT_PREFIX);
}

/** An IMAGE argument that is not a layout, as a reference; REFERENCE_INVALID naming it otherwise. */
function imageReference(arg: string): Reference {
  try {
    return parseReference(arg);
  } catch (err) {
    throw new KilnError("REFERENCE_INVALID", `${arg}: not an image name, reference or oci-layout:// path (${(err as Error).message})`);
  }
}

/** The single-platform manifest a stored target names (following an index to `platform`). */
async function storedManifest(store: BlobStore, target: NamedTarget, platform: Platform, name: string): Promise<Descriptor> {
  if (!(await store.has(target.digest))) throw new KilnError("BLOB_MISSING", `image ${name}: its manifest ${target.digest} is no longer in the store (pull or build it again)`);
  if (isIndexType(target.mediaType)) {
    const index = await store.readJSON<Index>(target.digest);
    try {
      return selectManifest(index, platform);
    } catch (err) {
      throw new KilnError("PLATFORM_MISMATCH", `image ${name}: ${(err as Error).message}`);
    }
  }
  return target;
}

/** A platform of a stored index whose blobs are not (all) in the store: pulled for one platform, not this one. */
class PlatformNotPulled {
  constructor(readonly platform: string) {}
}

/**
 * The image manifest of `platform` in the stored index `target` (the manifest itself when `target`
 * is one), with all its blobs in the store; IMAGE_NOT_LOCAL naming the platform when it was not pulled.
 */
export async function storedPlatformManifest(store: BlobStore, target: NamedTarget, platform: Platform, name: string): Promise<Descriptor> {
  const manifest = await pulledManifest(store, target, platform, name);
  if (manifest instanceof PlatformNotPulled) throw notPulledError(name, manifest.platform);
  return manifest;
}

/** storedManifest, or PlatformNotPulled when it is an index entry whose blobs are not all in the store. */
async function pulledManifest(store: BlobStore, target: NamedTarget, platform: Platform, name: string): Promise<Descriptor | PlatformNotPulled> {
  const manifest = await storedManifest(store, target, platform, name);
  if (manifest === target || (await hasManifestBlobs(store, manifest))) return manifest;
  return new PlatformNotPulled(formatPlatform(manifest.platform ?? platform));
}

function notPulledError(name: string, platform: string, policy?: string): KilnError {
  return new KilnError("IMAGE_NOT_LOCAL", `image ${name}: platform ${platform} of its index was not pulled (${policy ? `pull policy "${policy}"; ` : ""}kiln pull --platform ${platform} ${name} fetches it)`);
}

async function fromStore(store: BlobStore, target: NamedTarget, platform: Platform, name: string): Promise<ImageSource | PlatformNotPulled> {
  const manifest = await pulledManifest(store, target, platform, name);
  if (manifest instanceof PlatformNotPulled) return manifest;
  try {
    const source = await storeImage(store, manifest);
    const blobs = [source.config, ...source.layers];
    const present = await Promise.all(blobs.map((d) => store.has(d.digest))); // one round of stats, not one per layer
    const missing = blobs.find((_, i) => !present[i]);
    if (missing) throw new KilnError("BLOB_MISSING", `blob ${missing.digest} is no longer in the store (pull or build it again)`);
    return source;
  } catch (err) {
    const code = err instanceof KilnError ? err.code : "MANIFEST_INVALID";
    throw new KilnError(code, `image ${name}: ${(err as Error).message}`);
  }
}

function rootOf(d: NamedTarget): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/**
 * The stored image whose manifest (or index) digest is `digest`, when a name reaches it: what a
 * name records, else a platform manifest listed by a stored index (and itself in the store).
 */
async function byDigest(cacheDir: string, ref: Reference): Promise<NamedTarget | undefined> {
  const repo = familiarName({ registry: ref.registry, repository: ref.repository });
  const names = await listNames(cacheDir);
  const hit = names.find((n) => n.target.digest === ref.digest && n.name.startsWith(`${repo}:`)) ?? names.find((n) => n.target.digest === ref.digest);
  if (hit) return hit.target;
  const store = new BlobStore(cacheDir);
  const indexes = names.filter((n) => isIndexType(n.target.mediaType));
  for (const n of [...indexes.filter((x) => x.name.startsWith(`${repo}:`)), ...indexes.filter((x) => !x.name.startsWith(`${repo}:`))]) {
    const index = await store.readJSON<Index>(n.target.digest).catch(() => undefined);
    const child = Array.isArray(index?.manifests) ? index.manifests.find((d) => d.digest === ref.digest && !isAttestationEntry(d)) : undefined;
    if (child && (await store.has(child.digest))) return { mediaType: child.mediaType, digest: child.digest, size: child.size };
  }
  return undefined;
}

/** Resolve `arg` (see the header) to an image; a one-line KilnError naming `arg` when it is none. */
export async function resolveImage(arg: string, options: ResolveOptions): Promise<ResolvedImage> {
  const platform = options.platform ?? hostPlatform();
  if (isLayoutArgument(arg)) {
    const { dir, selector } = splitLayoutArgument(arg);
    return { source: await layoutImage(dir, selector, platform), name: arg, from: "layout" };
  }
  const ref = imageReference(arg);
  const store = new BlobStore(options.cacheDir);
  const policy = options.pull ?? "missing";
  const name = familiarName(ref);
  let notPulled: string | undefined;
  if (policy !== "always") {
    const target = ref.digest ? await byDigest(options.cacheDir, ref) : (await getName(options.cacheDir, name))?.target;
    if (target) {
      const source = await fromStore(store, target, platform, name);
      if (!(source instanceof PlatformNotPulled)) return { source, name, from: "store", root: rootOf(target) };
      notPulled = source.platform;
      if (policy === "never") throw notPulledError(name, notPulled, policy);
    } else if (policy === "never") throw new KilnError("IMAGE_NOT_LOCAL", `image ${name} is not in the local store (pull policy "never")`);
  }
  const { pullImage } = await import("../registry/pull.js"); // undici only when pulling
  let pulled;
  try {
    pulled = await pullImage(ref, { ...options, store, platform, pull: policy === "always" ? "always" : "missing", attestations: true });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    const msg = (err as Error).message;
    const code = err instanceof KilnError ? err.code : "REGISTRY_UNREACHABLE";
    const what = notPulled ? `platform ${notPulled} of its index is not in the local store` : "not in the local store";
    throw new KilnError(code, msg.includes(name) && !notPulled ? msg : `image ${name}: ${what}, and pulling it failed: ${msg}`);
  }
  // the name records what the reference names (an index too, as docker keeps it)
  if (!ref.digest) await setName(options.cacheDir, name, pulled.root);
  return { source: pulled.source, name, from: "registry", root: rootOf(pulled.root) };
}

export interface ResolvedRoot {
  /** The top manifest or index the argument names. */
  root: Descriptor;
  /** Reads its manifests (and, for a registry image, the blobs `wantBlob` chose). */
  blobs: BlobReader;
  name: string;
  from: "layout" | "store" | "registry";
}

/**
 * `arg` (as resolveImage takes it) to its top manifest or index. A registry reference is read
 * afresh with pull "always" (the index and the manifests it lists, and the blobs `wantBlob`
 * picks), otherwise from the store first; nothing is named in the store.
 */
export async function resolveRoot(arg: string, options: ResolveOptions & { wantBlob?: (blob: Descriptor, manifest: Descriptor) => boolean }): Promise<ResolvedRoot> {
  if (isLayoutArgument(arg)) {
    const { dir, selector } = splitLayoutArgument(arg);
    const layout = await OciLayout.open(dir);
    return { root: await layout.resolve(selector), blobs: layoutBlobs(layout), name: arg, from: "layout" };
  }
  const ref = imageReference(arg);
  const store = new BlobStore(options.cacheDir);
  const name = familiarName(ref);
  const policy = options.pull ?? "missing";
  if (policy !== "always") {
    const target = ref.digest ? await byDigest(options.cacheDir, ref) : (await getName(options.cacheDir, name))?.target;
    if (target && (await store.has(target.digest))) return { root: target, blobs: storeBlobs(store), name, from: "store" };
    if (policy === "never") throw new KilnError("IMAGE_NOT_LOCAL", `image ${name} is not in the local store (pull policy "never")`);
  }
  const { fetchManifestTree } = await import("../registry/tree.js"); // undici only when fetching
  try {
    const { root } = await fetchManifestTree(ref, { ...options, store, ...(options.wantBlob ? { wantBlob: options.wantBlob } : {}) });
    return { root, blobs: storeBlobs(store), name, from: "registry" };
  } catch (err) {
    if (options.signal?.aborted) throw err;
    const msg = (err as Error).message;
    const code = err instanceof KilnError ? err.code : "REGISTRY_UNREACHABLE";
    throw new KilnError(code, msg.includes(name) ? msg : `image ${name}: ${msg}`);
  }
}
