// Snapshot differ: records a cheap lstat baseline of a root directory before a RUN step and,
// afterwards, turns what changed into LayerEntry values (new/modified objects, `.wh.` whiteouts,
// opaque directories for recreated dirs, in-layer hardlinks, parents of every change).
// Cost follows the tree once and the change otherwise: the baseline is one compact record per
// path (names plus a Float64Array per directory), the diff is one lstat walk that merges each
// directory's sorted children with the baseline's, emitting entries already in tar order (no
// global maps or sorts). File content is never read here (the tar writer reads it lazily) and
// xattrs are read by batched getfattr runs in the background while the walk goes on.
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from "node:fs";
import { posix } from "node:path";
import { XattrReader } from "./xattr.js";
import { OPAQUE_MARKER, WHITEOUT_PREFIX, type EntryType, type LayerEntry } from "../layer/entry.js";
import { compareNames } from "../layer/order.js";
import { hostFileOpener } from "../layer/file-content.js";
import { inodeKey, withRecorded, type RecordedOwners } from "./recorded-owners.js";
import type { IdMap, IdMapping } from "./idmap.js";
import { containerID } from "./owners.js";

/** Paths kiln mounts or injects during a RUN: never part of a layer (relative to the root). */
export const DEFAULT_EXCLUDES = ["proc", "sys", "dev", "etc/hosts", "etc/resolv.conf"];

// Per-child numbers kept in the baseline (all exact as doubles: times split into whole
// milliseconds plus the nanoseconds below them; inode and device numbers below 2^53).
const F_MODE = 0;
const F_UID = 1;
const F_GID = 2;
const F_NLINK = 3;
const F_SIZE = 4;
const F_INO = 5;
const F_RDEV = 6;
const F_MTIME_MS = 7;
const F_MTIME_NS = 8;
const F_CTIME_MS = 9;
const F_CTIME_NS = 10;
// Birth time (statx btime; 0 where the file system has none): an inode number the file system
// reused for a directory removed and recreated within the step still tells it apart.
const F_BTIME_MS = 11;
const F_BTIME_NS = 12;
const FIELDS = 13;

/** One directory of the baseline: its children in tar order and their lstat numbers. */
interface BaseDir {
  readonly names: string[];
  /** FIELDS numbers per child, in the order of `names`. */
  readonly stats: Float64Array;
  /** Baseline content of the child directories, by child index. */
  readonly dirs: Map<number, BaseDir>;
}

export interface Baseline {
  readonly root: string;
  readonly excludes: ReadonlySet<string>;
  /** The root's children as they were (null when the root could not be read). */
  readonly tree: BaseDir | null;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

function lstatOrNull(p: string): BigIntStats | null {
  try {
    return lstatSync(p, { bigint: true, throwIfNoEntry: false }) ?? null;
  } catch {
    return null;
  }
}

function putStats(dst: Float64Array, off: number, st: BigIntStats): void {
  dst[off + F_MODE] = Number(st.mode);
  dst[off + F_UID] = Number(st.uid);
  dst[off + F_GID] = Number(st.gid);
  dst[off + F_NLINK] = Number(st.nlink);
  dst[off + F_SIZE] = Number(st.size);
  dst[off + F_INO] = Number(st.ino);
  dst[off + F_RDEV] = Number(st.rdev);
  dst[off + F_MTIME_MS] = Number(st.mtimeMs);
  dst[off + F_MTIME_NS] = Number(st.mtimeNs % 1_000_000n);
  dst[off + F_CTIME_MS] = Number(st.ctimeMs);
  dst[off + F_CTIME_NS] = Number(st.ctimeNs % 1_000_000n);
  dst[off + F_BTIME_MS] = Number(st.birthtimeMs);
  dst[off + F_BTIME_NS] = Number(st.birthtimeNs % 1_000_000n);
}

/** Another object than the baseline's at this index: a different inode, or the same number reborn. */
function reborn(st: BigIntStats, old: Float64Array, o: number): boolean {
  return (
    Number(st.ino) !== old[o + F_INO] ||
    Number(st.birthtimeMs) !== old[o + F_BTIME_MS] ||
    Number(st.birthtimeNs % 1_000_000n) !== old[o + F_BTIME_NS]
  );
}

/** Excluded paths grouped by parent directory (relative, "" = root) -> excluded child names. */
type ExcludeIndex = Map<string, Set<string>>;

function indexExcludes(excludes: ReadonlySet<string>): ExcludeIndex {
  const index: ExcludeIndex = new Map();
  for (const e of excludes) {
    const slash = e.lastIndexOf("/");
    const parent = slash < 0 ? "" : e.slice(0, slash);
    const set = index.get(parent) ?? new Set<string>();
    set.add(slash < 0 ? e : e.slice(slash + 1));
    index.set(parent, set);
  }
  return index;
}

/** A directory's child names (not excluded), in tar order; null when it cannot be read. */
function readNames(host: string, rel: string, excl: ExcludeIndex): string[] | null {
  let names: string[];
  try {
    names = readdirSync(host);
  } catch {
    return null;
  }
  const skip = excl.get(rel);
  if (skip) names = names.filter((n) => !skip.has(n));
  return names.sort(compareNames);
}

export const childRel = (dirRel: string, name: string): string => (dirRel === "" ? name : `${dirRel}/${name}`);

/** The default excludes plus mount targets (relative or absolute in-image paths), as clean relative paths. */
export function snapshotExcludes(extraExcludes: string[] = []): Set<string> {
  const excludes = new Set(DEFAULT_EXCLUDES);
  for (const e of extraExcludes) {
    const clean = posix.normalize(`/${e}`).slice(1).replace(/\/$/, "");
    if (clean !== "") excludes.add(clean);
  }
  return excludes;
}

/** Record the baseline of `root`. `extraExcludes` adds mount targets (relative or absolute in-image paths). */
export function takeBaseline(root: string, extraExcludes: string[] = []): Baseline {
  const excludes = snapshotExcludes(extraExcludes);
  const abs = posix.resolve(root);
  const excl = indexExcludes(excludes);
  const rootSt = lstatOrNull(abs);
  if (!rootSt || (Number(rootSt.mode) & S_IFMT) !== S_IFDIR) return { root: abs, excludes, tree: null };
  const tree = baselineDir(abs, "", excl);
  return { root: abs, excludes, tree };
}

/** Iterative (deep trees must not exhaust the JS stack): parents link to children as they are read. */
function baselineDir(rootHost: string, rootRel: string, excl: ExcludeIndex): BaseDir {
  const make = (host: string, rel: string): { dir: BaseDir; pending: Array<[number, string, string]> } => {
    const names = readNames(host, rel, excl) ?? [];
    const full = new Float64Array(names.length * FIELDS);
    const dirs = new Map<number, BaseDir>();
    const pending: Array<[number, string, string]> = [];
    let n = 0;
    for (const name of names) {
      const h = `${host}/${name}`;
      const st = lstatOrNull(h);
      if (!st) continue;
      names[n] = name;
      putStats(full, n * FIELDS, st);
      if ((Number(st.mode) & S_IFMT) === S_IFDIR) pending.push([n, h, childRel(rel, name)]);
      n++;
    }
    names.length = n;
    const stats = n === names.length && full.length === n * FIELDS ? full : full.slice(0, n * FIELDS);
    return { dir: { names, stats, dirs }, pending };
  };
  const top = make(rootHost, rootRel);
  const work: Array<{ parent: BaseDir; index: number; host: string; rel: string }> = top.pending.map(([index, host, rel]) => ({ parent: top.dir, index, host, rel }));
  while (work.length > 0) {
    const w = work.pop() as { parent: BaseDir; index: number; host: string; rel: string };
    const made = make(w.host, w.rel);
    w.parent.dirs.set(w.index, made.dir);
    for (const [index, host, rel] of made.pending) work.push({ parent: made.dir, index, host, rel });
  }
  return top.dir;
}

function typeOf(mode: number): EntryType | null {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return "dir";
    case S_IFREG:
      return "file";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return "char";
    case S_IFBLK:
      return "block";
    case S_IFIFO:
      return "fifo";
    default:
      return null; // sockets never enter a layer
  }
}

function devMajor(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}
function devMinor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

/** A directory being walked by the differ (one per level of the current path). */
interface Frame {
  rel: string;
  host: string;
  /** The baseline of this directory when it is compared; null when all its content is new. */
  base: BaseDir | null;
  /** Current children in tar order, and for each its index in `base.names` (or -1). */
  names: string[];
  baseIdx: Int32Array | null;
  /** Whiteout names for deleted children, in tar order. */
  whiteouts: string[];
  i: number;
  w: number;
  /** This directory's entry (null for the root) and where its children start in the output. */
  entry: LayerEntry | null;
  mark: number;
  /** The entry goes into the layer whatever its children do. */
  keep: boolean;
  /** Only ctime/nlink changed: in the layer when it has children there or carries xattrs. */
  metaOnly: boolean;
  /** A child changed but produced no entry (a socket): the directory still counts as a parent. */
  forced: boolean;
  /** xattrs of the whole subtree are read by one recursive getfattr. */
  treeXattrs: boolean;
}

/** Walk state shared by the frames of one diff. */
interface DiffState {
  readonly excl: ExcludeIndex;
  readonly excludes: ReadonlySet<string>;
  readonly out: LayerEntry[];
  readonly firstOfInode: Map<string, string>;
  readonly xattrs: XattrReader;
  /** Directory entries kept only as parents of other entries. */
  readonly parentOnly: Set<LayerEntry>;
  /** metaOnly directory entries with nothing below them in the layer: kept only with xattrs. */
  readonly conditional: LayerEntry[];
  /** What a fake root recorded (owners it did not set on disk), and the entries that took it. */
  readonly recorded: RecordedOwners | undefined;
  readonly applied: Set<LayerEntry> | undefined;
  readonly idMap: IdMap | undefined;
}

function makeEntry(s: DiffState, rel: string, host: string, st: BigIntStats): LayerEntry | null {
  const e = entryFromStat(s.firstOfInode, rel, host, st);
  const r = e && s.recorded && s.recorded.size > 0 ? s.recorded.get(inodeKey(st.dev, st.ino)) : undefined;
  if (!e || !r || rel.startsWith(WHITEOUT_PREFIX, rel.lastIndexOf("/") + 1)) return e;
  const out = withRecorded(e, r);
  s.applied?.add(out);
  return out;
}

/**
 * The layer entry for host object `host` (at image path `rel`) with lstat `st`; null for a
 * socket. A regular file with more links than one becomes a hardlink to the first path of its
 * inode met so far (recorded in `firstOfInode`).
 */
export function entryFromStat(firstOfInode: Map<string, string>, rel: string, host: string, st: BigIntStats): LayerEntry | null {
  const mode = Number(st.mode);
  const type = typeOf(mode);
  if (!type) return null;
  // A real object named like a whiteout cannot be carried by a layer: it is written as one
  // (as kiln always has), and a directory's content still follows it.
  if (rel.startsWith(WHITEOUT_PREFIX, rel.lastIndexOf("/") + 1)) return whiteoutEntry(rel);
  const e: LayerEntry = {
    path: rel,
    type,
    mode: mode & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: Number(st.mtimeNs / 1000n) / 1e6,
    size: 0,
  };
  if (type === "file") {
    const nlink = Number(st.nlink);
    const key = nlink > 1 ? `${st.dev}:${st.ino}` : "";
    const first = nlink > 1 ? firstOfInode.get(key) : undefined;
    if (first !== undefined) {
      e.type = "hardlink";
      e.linkname = first;
    } else {
      if (nlink > 1) firstOfInode.set(key, rel);
      e.size = Number(st.size);
      e.open = hostFileOpener(host);
    }
  } else if (type === "symlink") {
    e.linkname = readlinkSync(host);
  } else if (type === "char" || type === "block") {
    e.devmajor = devMajor(st.rdev);
    e.devminor = devMinor(st.rdev);
  }
  return e;
}

/** A whiteout (or opaque marker) entry at `path`. */
export function whiteoutEntry(path: string): LayerEntry {
  return { path, type: "file", mode: 0, uid: 0, gid: 0, mtime: 0, size: 0 };
}

/** True when some excluded path lies below `rel` (a recursive xattr read would wander into it). */
function hasExcludedBelow(excludes: ReadonlySet<string>, rel: string): boolean {
  const prefix = rel === "" ? "" : `${rel}/`;
  for (const e of excludes) if (e.startsWith(prefix)) return true;
  return false;
}

function openFrame(s: DiffState, rel: string, host: string, base: BaseDir | null, entry: LayerEntry | null, keep: boolean, metaOnly: boolean, treeXattrs: boolean): Frame {
  const names = readNames(host, rel, s.excl) ?? [];
  let baseIdx: Int32Array | null = null;
  const whiteouts: string[] = [];
  if (base) {
    // merge-join two lists in the same order: matched, new (-1) and deleted (whiteout) names
    baseIdx = new Int32Array(names.length);
    const old = base.names;
    let j = 0;
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      while (j < old.length && compareNames(old[j] as string, name) < 0) whiteouts.push(WHITEOUT_PREFIX + (old[j++] as string));
      if (j < old.length && old[j] === name) baseIdx[i] = j++;
      else baseIdx[i] = -1;
    }
    while (j < old.length) whiteouts.push(WHITEOUT_PREFIX + (old[j++] as string));
    if (whiteouts.length > 1) whiteouts.sort(compareNames);
  }
  return { rel, host, base, names, baseIdx, whiteouts, i: 0, w: 0, entry, mark: s.out.length, keep, metaOnly, forced: false, treeXattrs };
}

/** Push a directory's entry and walk into it. */
function enterDir(s: DiffState, stack: Frame[], e: LayerEntry, host: string, base: BaseDir | null, keep: boolean, metaOnly: boolean, opaque: boolean, parentTree: boolean): void {
  s.out.push(e);
  let tree = parentTree;
  if (!base && !tree && !hasExcludedBelow(s.excludes, e.path)) {
    // all content below is new: one recursive getfattr (running while we walk) covers it
    s.xattrs.addTree(host);
    tree = true;
  }
  if (keep && !tree) s.xattrs.add(host);
  const f = openFrame(s, e.path, host, base, e, keep, metaOnly, tree);
  if (opaque) s.out.push(whiteoutEntry(`${e.path}/${OPAQUE_MARKER}`));
  stack.push(f);
}

/** Finish a directory: drop its entry when nothing below it (and nothing about it) changed. */
function closeFrame(s: DiffState, f: Frame): void {
  if (!f.entry || f.keep) return;
  const hasChildren = s.out.length > f.mark || f.forced;
  if (!hasChildren && !f.metaOnly) {
    s.out.pop(); // the entry is the last element: nothing was pushed after it
    return;
  }
  if (!f.treeXattrs) s.xattrs.add(f.host);
  if (f.forced) return;
  if (hasChildren) s.parentOnly.add(f.entry);
  else s.conditional.push(f.entry);
}

/** Visit the next child of the top frame; false when the frame is done. */
function step(s: DiffState, stack: Frame[], f: Frame): boolean {
  const names = f.names;
  if (f.w < f.whiteouts.length && (f.i >= names.length || compareNames(f.whiteouts[f.w] as string, names[f.i] as string) < 0)) {
    s.out.push(whiteoutEntry(childRel(f.rel, f.whiteouts[f.w++] as string)));
    return true;
  }
  if (f.i >= names.length) return false;
  const idx = f.i++;
  const name = names[idx] as string;
  const rel = childRel(f.rel, name);
  const host = `${f.host}/${name}`;
  const st = lstatOrNull(host);
  if (!st) return true;
  const mode = Number(st.mode);
  const isDir = (mode & S_IFMT) === S_IFDIR;
  const bi = f.baseIdx ? (f.baseIdx[idx] as number) : -1;
  const addFile = (e: LayerEntry | null): void => {
    if (!e) {
      f.forced = true;
      return;
    }
    s.out.push(e);
    if (!f.treeXattrs && e.type !== "symlink" && e.type !== "hardlink") s.xattrs.add(host);
  };
  if (bi < 0) {
    // new (or everything below a new/recreated directory)
    const e = makeEntry(s, rel, host, st);
    if (isDir && e) enterDir(s, stack, e, host, null, true, false, false, f.treeXattrs);
    else addFile(e);
    return true;
  }
  const base = f.base as BaseDir;
  const o = bi * FIELDS;
  const old = base.stats;
  const oldMode = old[o + F_MODE] as number;
  const wasDir = (oldMode & S_IFMT) === S_IFDIR;
  const other = reborn(st, old, o);
  if (isDir && (!wasDir || other)) {
    // a directory where there was none, or deleted and recreated: everything below is new, and
    // a recreated one hides what lower layers had in it
    const e = makeEntry(s, rel, host, st) as LayerEntry;
    enterDir(s, stack, e, host, null, true, false, wasDir, f.treeXattrs);
    return true;
  }
  const sameRest =
    Number(st.size) === old[o + F_SIZE] &&
    Number(st.mtimeMs) === old[o + F_MTIME_MS] &&
    Number(st.mtimeNs % 1_000_000n) === old[o + F_MTIME_NS] &&
    Number(st.rdev) === old[o + F_RDEV];
  // What a fake root recorded for the inode (it left owner and permission bits on disk as they
  // were) is compared with the baseline as the container saw it
  const rec = s.recorded !== undefined && s.recorded.size > 0 ? s.recorded.get(inodeKey(st.dev, st.ino)) : undefined;
  const sameMeta = rec
    ? sameRest && (rec.mode & S_IFMT) === (oldMode & S_IFMT) && (rec.mode & 0o7777) === (oldMode & 0o7777) &&
      rec.uid === mapId(s.idMap?.uid, old[o + F_UID] as number) && rec.gid === mapId(s.idMap?.gid, old[o + F_GID] as number)
    : sameRest && mode === oldMode && Number(st.uid) === old[o + F_UID] && Number(st.gid) === old[o + F_GID];
  const touched = other || Number(st.ctimeMs) !== old[o + F_CTIME_MS] || Number(st.ctimeNs % 1_000_000n) !== old[o + F_CTIME_NS] || Number(st.nlink) !== old[o + F_NLINK];
  if (isDir) {
    // compared directory: its entry stays when it changed, or as the parent of a change
    const changed = !sameMeta;
    const e = makeEntry(s, rel, host, st) as LayerEntry;
    enterDir(s, stack, e, host, base.dirs.get(bi) ?? null, changed, !changed && touched, false, f.treeXattrs);
    return true;
  }
  if (!sameMeta || (touched && Number(st.nlink) > 1)) {
    // changed; or linked (its other names are in the layer), as the overlay differ keeps it
    addFile(makeEntry(s, rel, host, st));
  } else if (touched) {
    // rewritten (in place, or replaced by rename) with the same type, mode, owner, size and
    // mtime: left out, as buildah's differ leaves it out (it compares these fields, not ctime
    // or the inode; Docker 20.10 on overlay2 keeps the whole upper) and the overlay differ drops
    // such a copy-up; kept when it
    // carries xattrs now (an xattr change moves only ctime). Not a link target of later entries.
    const plain = entryFromStat(new Map(), rel, host, st);
    const e = plain && rec ? withRecorded(plain, rec) : plain;
    if (e) {
      if (rec) s.applied?.add(e);
      s.out.push(e);
      s.conditional.push(e);
      if (!f.treeXattrs) s.xattrs.add(host);
    }
  }
  return true;
}

/** Drop metaOnly directories without xattrs, and parents that were there only for them. */
export function pruneConditional(out: LayerEntry[], dropped: Set<LayerEntry>, parentOnly: Set<LayerEntry>): LayerEntry[] {
  const needed = new Set<string>();
  for (const e of out) {
    if (dropped.has(e) || parentOnly.has(e)) continue;
    let p = e.path;
    for (let slash = p.lastIndexOf("/"); slash > 0; slash = p.lastIndexOf("/")) {
      p = p.slice(0, slash);
      if (needed.has(p)) break;
      needed.add(p);
    }
  }
  return out.filter((e) => !dropped.has(e) && (!parentOnly.has(e) || needed.has(e.path)));
}

export interface DiffOptions {
  /**
   * Owners a fake root recorded (src/snapshot/recorded-owners.ts): a recorded inode counts as
   * changed and its entry carries the recorded owner, mode and type.
   */
  recorded?: RecordedOwners;
  /** Filled with the entries that took a recorded owner (their ids are container ids). */
  applied?: Set<LayerEntry>;
  /** How the baseline's host ids map to container ids, to compare them with recorded ones. */
  idMap?: IdMap;
}

function mapId(maps: readonly IdMapping[] | undefined, id: number): number {
  return maps ? containerID(maps, id) ?? -1 : id;
}

/**
 * Compare the current state of `baseline.root` with the baseline and return the layer entries
 * for the change, in tar order. Nothing changed => [].
 */
export async function diffSnapshot(baseline: Baseline, options: DiffOptions = {}): Promise<LayerEntry[]> {
  const { root, excludes } = baseline;
  const rootSt = lstatOrNull(root);
  if (!rootSt || (Number(rootSt.mode) & S_IFMT) !== S_IFDIR) return [];
  const s: DiffState = {
    excl: indexExcludes(excludes),
    excludes,
    out: [],
    firstOfInode: new Map(),
    xattrs: new XattrReader(),
    parentOnly: new Set(),
    conditional: [],
    recorded: options.recorded,
    applied: options.applied,
    idMap: options.idMap,
  };
  const stack: Frame[] = [openFrame(s, "", root, baseline.tree, null, false, false, false)];
  try {
    while (stack.length > 0) {
      const f = stack[stack.length - 1] as Frame;
      if (step(s, stack, f)) continue;
      stack.pop();
      closeFrame(s, f);
    }
  } catch (err) {
    await s.xattrs.finish().catch(() => undefined);
    throw err;
  }
  const found = await s.xattrs.finish();
  let out = s.out;
  if (found.size > 0 || s.conditional.length > 0) {
    const prefix = `${root}/`;
    const byRel = new Map<string, Record<string, Buffer>>();
    for (const [host, x] of found) if (host.startsWith(prefix)) byRel.set(host.slice(prefix.length), x);
    if (byRel.size > 0) {
      for (const e of out) {
        if (e.type === "symlink" || e.type === "hardlink" || (e.type === "file" && e.open === undefined)) continue;
        const x = byRel.get(e.path);
        if (x) e.xattrs = x;
      }
    }
    const dropped = new Set(s.conditional.filter((e) => !byRel.has(e.path)));
    if (dropped.size > 0) out = pruneConditional(out, dropped, s.parentOnly);
  }
  return out;
}
