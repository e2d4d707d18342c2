// LayerView: a read-only merged view of an image's file metadata, built by streaming each layer
// blob once (never extracting to disk). Applies whiteouts and opaque directories, resolves
// symlinks confined to "/", and keeps the content of /etc/passwd and /etc/group for --chown.
// Each layer's metadata index is cached in the store as views/<diffID hex>.json, written only
// after the scan hashed the layer to that diffID.
import { readFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { pipeline } from "node:stream/promises";
import * as tar from "tar-stream";
import { KilnError } from "../errors.js";
import type { Layer } from "../image/image.js";
import type { BlobStore } from "../store/blob-store.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import { decompressStream } from "./compress.js";
import { DiffIDCheck } from "./diffid-check.js";
import { OPAQUE_MARKER, WHITEOUT_PREFIX, entryTypeFromTar, type LayerEntry } from "./entry.js";

/** A file's metadata in the view: a LayerEntry without content ("" is the root's path). */
export type ViewEntry = Pick<LayerEntry, "path" | "type" | "mode" | "uid" | "gid" | "mtime" | "size" | "linkname">;

/**
 * Files whose content is kept while scanning (for --chown name lookups): /etc/passwd and
 * /etc/group, and any small file with those base names (a link target, e.g. /etc/passwd ->
 * ../usr/share/passwd, can only be known after the stream has passed it).
 */
const SMALL_FILE_NAMES = new Set(["passwd", "group"]);
const SMALL_FILE_LIMIT = 1024 * 1024;
const INDEX_VERSION = 1;
const MAX_LINK_HOPS = 40;

interface LayerIndex {
  version: number;
  entries: ViewEntry[];
  whiteouts: string[];
  opaques: string[];
  /** path -> base64 content, for SMALL_FILES present in the layer. */
  small: Record<string, string>;
}

interface Node {
  entry?: ViewEntry;
  children: Map<string, Node>;
  content?: Buffer;
}

const ROOT_ENTRY: ViewEntry = { path: "", type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 };

export class LayerView {
  private readonly root: Node = { children: new Map() };

  /** A view with nothing in it (scratch, or `COPY --link`). */
  static empty(): LayerView {
    return new LayerView();
  }

  /** Streams every layer (or reads its cached index) and merges them in order. */
  static async load(store: BlobStore, layers: Layer[]): Promise<LayerView> {
    const view = new LayerView();
    for (const layer of layers) view.apply(await loadIndex(store, layer));
    return view;
  }

  /** Merged metadata of `path` (symlinks not followed); implicit parent dirs appear as 0755 root dirs. */
  lookup(path: string): ViewEntry | undefined {
    const rel = cleanPath(path);
    if (rel === "") return this.root.entry ?? ROOT_ENTRY;
    const node = this.node(rel);
    if (!node) return undefined;
    return node.entry ?? { ...ROOT_ENTRY, path: rel };
  }

  /** Like lookup, but follows symlinks (in every component) inside the view, confined to "/". */
  resolve(path: string): ViewEntry | undefined {
    return this.lookup(this.resolvePath(path, true));
  }

  /**
   * The real path of `path` inside the view: symlinks in the parent components (and in the last
   * one when `followLast`) are followed, absolute targets restart at "/", `..` stops at "/".
   * Components that do not exist are kept as written.
   */
  resolvePath(path: string, followLast: boolean): string {
    let pending = cleanPath(path).split("/").filter((s) => s !== "");
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === ".") continue;
      if (part === "..") {
        done.pop();
        continue;
      }
      const cur = [...done, part].join("/");
      const entry = this.node(cur)?.entry;
      const isLast = pending.length === 0;
      if (entry?.type === "symlink" && (!isLast || followLast)) {
        if (++hops > MAX_LINK_HOPS) throw new KilnError("PATH_UNRESOLVABLE", `/${cleanPath(path)}: too many levels of symbolic links`);
        const target = entry.linkname ?? "";
        if (target.startsWith("/")) done.length = 0;
        pending = [...target.split("/").filter((s) => s !== ""), ...pending];
        continue;
      }
      done.push(part);
    }
    return done.join("/");
  }

  /** Content of /etc/passwd or /etc/group as the merged image has it (symlinks followed). */
  readSmallFile(path: string): Buffer | undefined {
    const rel = this.resolvePath(path, true);
    return this.node(rel)?.content;
  }

  private node(rel: string): Node | undefined {
    let n: Node | undefined = this.root;
    for (const part of rel.split("/")) {
      if (part === "") continue;
      n = n.children.get(part);
      if (!n) return undefined;
    }
    return n;
  }

  private ensure(rel: string): Node {
    let n = this.root;
    for (const part of rel.split("/")) {
      if (part === "") continue;
      let c = n.children.get(part);
      if (!c) {
        c = { children: new Map() };
        n.children.set(part, c);
      } else if (c.entry && c.entry.type !== "dir") {
        // A non-directory in a parent position is replaced by an implicit directory.
        c.entry = undefined;
        c.content = undefined;
      }
      n = c;
    }
    return n;
  }

  private remove(rel: string): void {
    const parent = posix.dirname(rel);
    const p = this.node(parent === "." ? "" : parent);
    p?.children.delete(posix.basename(rel));
  }

  private apply(index: LayerIndex): void {
    // Whiteouts and opaque markers hide what lower layers had; then this layer's entries land.
    for (const dir of index.opaques) this.node(dir)?.children.clear();
    for (const p of index.whiteouts) this.remove(p);
    for (const e of index.entries) {
      if (e.path === "") {
        this.root.entry = e;
        continue;
      }
      const parent = posix.dirname(e.path);
      const pnode = this.ensure(parent === "." ? "" : parent);
      const name = posix.basename(e.path);
      let entry = e;
      let content: Buffer | undefined;
      if (e.type === "hardlink" && e.linkname !== undefined) {
        // A hard link shares its target's inode: report the target's metadata as a file.
        const target = this.node(e.linkname);
        if (target?.entry) {
          entry = { ...target.entry, path: e.path };
          content = target.content;
        }
      }
      if (index.small[e.path] !== undefined) content = Buffer.from(index.small[e.path]!, "base64");
      const existing = pnode.children.get(name);
      if (existing && entry.type === "dir" && existing.entry?.type !== "symlink") {
        existing.entry = entry;
        existing.content = undefined;
      } else {
        pnode.children.set(name, { entry, children: new Map(), content });
      }
    }
  }
}

function cleanPath(p: string): string {
  let n = posix.normalize(`/${p}`).slice(1);
  if (n.endsWith("/")) n = n.slice(0, -1);
  return n === "." ? "" : n;
}

function tarPath(name: string): string {
  return cleanPath(name.replace(/^(\.\/)+/, ""));
}

/**
 * Indexes recently used in this process (a build loads the same base layers for every COPY),
 * bounded by their total entry count so memory stays modest.
 */
const recent = new Map<string, LayerIndex>();
const RECENT_MAX_ENTRIES = 400_000;
let recentEntries = 0;

/** Drops the in-process index cache (the on-disk cache in the store is kept). */
export function clearRecentViewIndexes(): void {
  recent.clear();
  recentEntries = 0;
}

function remember(key: string, index: LayerIndex): void {
  if (recent.has(key)) return;
  recent.set(key, index);
  recentEntries += index.entries.length;
  for (const [k, v] of recent) {
    if (recentEntries <= RECENT_MAX_ENTRIES || k === key) break;
    recent.delete(k);
    recentEntries -= v.entries.length;
  }
}

async function loadIndex(store: BlobStore, layer: Layer): Promise<LayerIndex> {
  const key = `${store.root}\0${layer.diffID}`;
  const hit = recent.get(key);
  if (hit) {
    recent.delete(key);
    recent.set(key, hit);
    return hit;
  }
  const index = await loadIndexUncached(store, layer);
  remember(key, index);
  return index;
}

async function loadIndexUncached(store: BlobStore, layer: Layer): Promise<LayerIndex> {
  const hex = layer.diffID.slice("sha256:".length);
  const cacheFile = join(store.root, "views", `${hex}.json`);
  try {
    const cached = JSON.parse(await readFile(cacheFile, "utf8")) as LayerIndex;
    if (cached.version === INDEX_VERSION) return cached;
  } catch {
    // no cache yet (or unreadable): scan the blob
  }
  const index = await scanLayer(store, layer);
  // The index is only a cache: failing to write it costs the next build a re-scan, nothing more.
  await writeFileAtomic(cacheFile, JSON.stringify(index), { mkdirMode: 0o755 }).catch(() => undefined);
  return index;
}

async function scanLayer(store: BlobStore, layer: Layer): Promise<LayerIndex> {
  const index: LayerIndex = { version: INDEX_VERSION, entries: [], whiteouts: [], opaques: [], small: {} };
  const extract = tar.extract();
  const check = new DiffIDCheck({ diffID: layer.diffID, digest: layer.descriptor.digest });
  const done = pipeline(store.open(layer.descriptor.digest), decompressStream(layer.descriptor.mediaType), check, extract);
  done.catch(() => undefined); // observed below; avoids an unhandled rejection while iterating
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const path = tarPath(h.name);
      const base = posix.basename(path);
      const dir = path.includes("/") ? posix.dirname(path) : "";
      if (base === OPAQUE_MARKER) {
        index.opaques.push(dir);
        entry.resume();
        continue;
      }
      if (base.startsWith(WHITEOUT_PREFIX)) {
        index.whiteouts.push(dir === "" ? base.slice(WHITEOUT_PREFIX.length) : `${dir}/${base.slice(WHITEOUT_PREFIX.length)}`);
        entry.resume();
        continue;
      }
      const type = entryTypeFromTar(h.type);
      if (!type) {
        entry.resume();
        continue;
      }
      const ve: ViewEntry = {
        path,
        type,
        mode: (h.mode ?? 0) & 0o7777,
        uid: h.uid ?? 0,
        gid: h.gid ?? 0,
        mtime: h.mtime ? h.mtime.getTime() / 1000 : 0,
        size: type === "file" ? h.size ?? 0 : 0,
      };
      if (type === "symlink") ve.linkname = h.linkname ?? "";
      if (type === "hardlink") ve.linkname = tarPath(h.linkname ?? "");
      index.entries.push(ve);
      if (type === "file" && SMALL_FILE_NAMES.has(posix.basename(path)) && (h.size ?? 0) <= SMALL_FILE_LIMIT) {
        index.small[path] = (await collect(entry)).toString("base64");
      } else {
        entry.resume();
      }
    }
    await done;
  } catch (err) {
    extract.destroy();
    await done.catch(() => undefined);
    if (err instanceof KilnError) throw err;
    throw new KilnError("LAYER_READ_FAILED", `cannot read layer ${layer.descriptor.digest}: ${(err as Error).message}`, { cause: err });
  }
  return index;
}


async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
