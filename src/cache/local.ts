// The local build cache: one JSON record per cache key under <store.root>/cache/<keyhex>.json,
// naming the step's layer blob (kept in the BlobStore) and the image config after the step.
// Records are written to a temp name and renamed, so concurrent builds sharing one store each
// leave a whole record; a record's file mtime is its last use (prune's LRU order).
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { isDigest, type Descriptor, type Digest, type ImageConfig } from "../image/oci.js";
import type { BlobStore } from "../store/blob-store.js";

export interface CacheRecord {
  key: Digest;
  layer?: { descriptor: Descriptor; diffID: Digest };
  /** The full config after the step, history included. */
  config: ImageConfig;
  createdBy: string;
  emptyLayer: boolean;
  created: string;
}

/** The cache directory of a store. */
export function cacheDir(store: BlobStore): string {
  return join(store.root, "cache");
}

function keyHex(key: Digest): string {
  if (!isDigest(key)) throw new KilnError("CACHE_KEY_INVALID", `invalid cache key ${JSON.stringify(key)}`);
  return key.slice("sha256:".length);
}

/** Shape check for records read from disk or from a remote cache (anything else is ignored). */
export function isCacheRecord(v: unknown): v is CacheRecord {
  if (!v || typeof v !== "object") return false;
  const r = v as Partial<CacheRecord>;
  if (typeof r.key !== "string" || !isDigest(r.key)) return false;
  if (typeof r.createdBy !== "string" || typeof r.emptyLayer !== "boolean" || typeof r.created !== "string") return false;
  const c = r.config as Partial<ImageConfig> | undefined;
  if (!c || typeof c !== "object" || typeof c.os !== "string" || typeof c.architecture !== "string") return false;
  if (!c.rootfs || !Array.isArray(c.rootfs.diff_ids) || !c.rootfs.diff_ids.every((d) => typeof d === "string" && isDigest(d))) return false;
  if (r.layer !== undefined) {
    const l = r.layer;
    if (!l || typeof l !== "object" || typeof l.diffID !== "string" || !isDigest(l.diffID)) return false;
    const d = l.descriptor;
    if (!d || typeof d.mediaType !== "string" || typeof d.digest !== "string" || !isDigest(d.digest)) return false;
    if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) return false;
  } else if (!r.emptyLayer) {
    return false;
  }
  return true;
}

export class LocalCache {
  readonly dir: string;

  constructor(readonly store: BlobStore) {
    this.dir = cacheDir(store);
  }

  path(key: Digest): string {
    return join(this.dir, `${keyHex(key)}.json`);
  }

  /** The record for `key`, only when it is valid and its layer blob is in the store. */
  async get(key: Digest): Promise<CacheRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(key), "utf8");
    } catch {
      return undefined;
    }
    let rec: unknown;
    try {
      rec = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (!isCacheRecord(rec) || rec.key !== key) return undefined;
    if (rec.layer && !(await this.store.has(rec.layer.descriptor.digest))) return undefined;
    return rec;
  }

  async put(rec: CacheRecord): Promise<void> {
    if (!isCacheRecord(rec)) throw new KilnError("CACHE_KEY_INVALID", `invalid cache record for key ${String((rec as { key?: unknown }).key)}`);
    const path = this.path(rec.key);
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${keyHex(rec.key)}.${process.pid}-${randomBytes(6).toString("hex")}.tmp`);
    try {
      await writeFile(tmp, JSON.stringify(rec));
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Mark `key` as used now (prune removes least recently used records first). */
  async touch(key: Digest): Promise<void> {
    const now = new Date();
    try {
      await utimes(this.path(key), now, now);
    } catch {
      // a record pruned meanwhile: nothing to mark
    }
  }
}
