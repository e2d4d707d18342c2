// Snapshot differ: records a cheap lstat baseline of a root directory before a RUN step and,
// afterwards, turns what changed into LayerEntry values (new/modified objects, `.wh.` whiteouts,
// opaque directories for recreated dirs, in-layer hardlinks, parents of every change).
// Cost follows the change: the walk is lstat only; file content is opened lazily by the tar
// writer and xattrs are read (batched) only for the entries that go into the layer.
import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from "node:fs";
import { posix } from "node:path";
import { readXattrs } from "../fs/xattr.js";
import { OPAQUE_MARKER, WHITEOUT_PREFIX, type EntryType, type LayerEntry } from "./entry.js";
import { hostFileOpener } from "./file-content.js";

/** Paths kiln mounts or injects during a RUN: never part of a layer (relative to the root). */
export const DEFAULT_EXCLUDES = ["proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname"];

interface Rec {
  ino: bigint;
  dev: bigint;
  mode: number; // full st_mode
  uid: number;
  gid: number;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  nlink: number;
  rdev: bigint;
}

export interface Baseline {
  readonly root: string;
  readonly excludes: ReadonlySet<string>;
  /** relative path ("" = root) -> record */
  readonly records: Map<string, Rec>;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

function toRec(st: BigIntStats): Rec {
  return {
    ino: st.ino,
    dev: st.dev,
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: st.size,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    nlink: Number(st.nlink),
    rdev: st.rdev,
  };
}

function lstatRec(p: string): Rec | null {
  try {
    return toRec(lstatSync(p, { bigint: true }));
  } catch {
    return null;
  }
}

/** Walk `root` (lstat only), calling `visit` for each path; excluded paths are not visited. */
function walk(root: string, excludes: ReadonlySet<string>, visit: (rel: string, rec: Rec) => boolean | void): void {
  const rootRec = lstatRec(root);
  if (!rootRec) return;
  if (visit("", rootRec) === false) return;
  const stack: string[] = [""];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    let names: string[];
    try {
      names = readdirSync(dir === "" ? root : `${root}/${dir}`);
    } catch {
      continue;
    }
    for (const n of names) {
      const rel = dir === "" ? n : `${dir}/${n}`;
      if (excludes.has(rel)) continue;
      const rec = lstatRec(`${root}/${rel}`);
      if (!rec) continue;
      const descend = visit(rel, rec);
      if ((rec.mode & S_IFMT) === S_IFDIR && descend !== false) stack.push(rel);
    }
  }
}

/** Record the baseline of `root`. `extraExcludes` adds mount targets (relative or absolute in-image paths). */
export function takeBaseline(root: string, extraExcludes: string[] = []): Baseline {
  const excludes = new Set(DEFAULT_EXCLUDES);
  for (const e of extraExcludes) {
    const clean = posix.normalize(`/${e}`).slice(1).replace(/\/$/, "");
    if (clean !== "") excludes.add(clean);
  }
  const records = new Map<string, Rec>();
  walk(root, excludes, (rel, rec) => {
    records.set(rel, rec);
  });
  return { root, excludes, records };
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

function changed(a: Rec, b: Rec): boolean {
  return (
    a.ino !== b.ino ||
    a.mode !== b.mode ||
    a.uid !== b.uid ||
    a.gid !== b.gid ||
    a.size !== b.size ||
    a.mtimeNs !== b.mtimeNs ||
    a.rdev !== b.rdev
  );
}

function devMajor(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}
function devMinor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

/** Sort key so a directory precedes its children and, among siblings, opaque marker, then whiteouts, then the rest. */
function compareEntries(a: string, b: string): number {
  const pa = a.split("/");
  const pb = b.split("/");
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    if (pa[i] === pb[i]) continue;
    const rank = (s: string): number => (s === OPAQUE_MARKER ? 0 : s.startsWith(WHITEOUT_PREFIX) ? 1 : 2);
    const ra = rank(pa[i]);
    const rb = rank(pb[i]);
    if (ra !== rb) return ra - rb;
    return Buffer.compare(Buffer.from(pa[i]), Buffer.from(pb[i]));
  }
  return pa.length - pb.length;
}

/**
 * Compare the current state of `baseline.root` with the baseline and return the layer entries
 * for the change, in tar order. Nothing changed => [].
 */
export async function diffSnapshot(baseline: Baseline): Promise<LayerEntry[]> {
  const { root, records, excludes } = baseline;
  const current = new Map<string, Rec>();
  // changed paths, and directories whose whole content is new (replaced or recreated)
  const emit = new Set<string>();
  const opaque = new Set<string>();
  const metaOnlyDirs: string[] = [];
  // directories that did not exist as directories in the baseline: all content below is new
  const newTree = new Set<string>();

  walk(root, excludes, (rel, rec) => {
    current.set(rel, rec);
    const old = records.get(rel);
    const parent = rel === "" ? null : rel.lastIndexOf("/") < 0 ? "" : rel.slice(0, rel.lastIndexOf("/"));
    const inNewTree = parent !== null && (opaque.has(parent) || newTree.has(parent));
    if (inNewTree) {
      emit.add(rel);
      if ((rec.mode & S_IFMT) === S_IFDIR) newTree.add(rel);
      return;
    }
    if (!old) {
      emit.add(rel);
      if ((rec.mode & S_IFMT) === S_IFDIR) newTree.add(rel);
      return;
    }
    const isDir = (rec.mode & S_IFMT) === S_IFDIR;
    const wasDir = (old.mode & S_IFMT) === S_IFDIR;
    if (isDir && wasDir && rec.ino !== old.ino) {
      // deleted and recreated: hide everything below in lower layers
      emit.add(rel);
      opaque.add(rel);
      return;
    }
    if (isDir && !wasDir) {
      emit.add(rel);
      newTree.add(rel);
      return;
    }
    if (changed(rec, old)) {
      emit.add(rel);
    } else if (rec.ctimeNs !== old.ctimeNs || rec.nlink !== old.nlink) {
      // metadata-only change (xattrs, link count, or touched by kiln's own mount targets)
      if (isDir) metaOnlyDirs.push(rel);
      else emit.add(rel);
    }
  });

  // Deletions: a baseline path gone (or no longer under a surviving directory) whose parent
  // still exists as the same directory gets one whiteout; children of a deleted dir do not.
  const whiteouts: string[] = [];
  for (const rel of records.keys()) {
    if (rel === "" || current.has(rel)) continue;
    const parent = posix.dirname(rel) === "." ? "" : posix.dirname(rel);
    const cur = current.get(parent);
    const old = records.get(parent);
    if (!cur || !old) continue;
    if ((cur.mode & S_IFMT) !== S_IFDIR || cur.ino !== old.ino || opaque.has(parent) || newTree.has(parent)) continue;
    whiteouts.push(rel);
  }
  // A kind change (file -> symlink etc.) needs no whiteout: the new entry replaces the old.

  // Directories whose only change is ctime: include when their xattrs differ from... we keep no
  // baseline xattrs, so include them only if they now carry xattrs (a removed xattr on a
  // directory whose mtime/mode/owner did not change is not detected — documented limitation).
  if (metaOnlyDirs.length > 0) {
    const xs = await readXattrs(metaOnlyDirs.map((r) => posix.join(root, r)));
    for (const r of metaOnlyDirs) if (xs.has(posix.join(root, r))) emit.add(r);
  }

  if (emit.size === 0 && whiteouts.length === 0) return [];

  // Parents of every change, with their current metadata.
  const all = new Set<string>(emit);
  const addParents = (rel: string): void => {
    let p = posix.dirname(rel);
    while (p !== "." && p !== "" && !all.has(p)) {
      all.add(p);
      p = posix.dirname(p);
    }
  };
  for (const r of emit) addParents(r);
  for (const w of whiteouts) addParents(w);
  all.delete("");

  const xattrTargets: string[] = [];
  for (const r of all) {
    const rec = current.get(r);
    if (rec && (rec.mode & S_IFMT) !== S_IFLNK) xattrTargets.push(posix.join(root, r));
  }
  const xattrs = xattrTargets.length > 0 ? await readXattrs(xattrTargets) : new Map<string, Record<string, Buffer>>();

  const paths = [...all];
  for (const w of whiteouts) {
    const d = posix.dirname(w);
    paths.push((d === "." ? "" : d + "/") + WHITEOUT_PREFIX + posix.basename(w));
  }
  for (const o of opaque) paths.push(`${o}/${OPAQUE_MARKER}`);
  paths.sort(compareEntries);

  const entries: LayerEntry[] = [];
  const firstOfInode = new Map<string, string>();
  const whiteoutSet = new Set<string>();
  for (const p of paths) {
    const base = posix.basename(p);
    if (base === OPAQUE_MARKER || base.startsWith(WHITEOUT_PREFIX)) whiteoutSet.add(p);
  }
  for (const p of paths) {
    if (whiteoutSet.has(p)) {
      entries.push({ path: p, type: "file", mode: 0, uid: 0, gid: 0, mtime: 0, size: 0 });
      continue;
    }
    const rec = current.get(p);
    if (!rec) continue;
    const type = typeOf(rec.mode);
    if (!type) continue;
    const host = posix.join(root, p);
    const e: LayerEntry = {
      path: p,
      type,
      mode: rec.mode & 0o7777,
      uid: rec.uid,
      gid: rec.gid,
      mtime: Number(rec.mtimeNs / 1000n) / 1e6,
      size: 0,
    };
    const x = xattrs.get(host);
    if (x) e.xattrs = x;
    if (type === "file") {
      const key = `${rec.dev}:${rec.ino}`;
      const first = rec.nlink > 1 ? firstOfInode.get(key) : undefined;
      if (first !== undefined) {
        e.type = "hardlink";
        e.linkname = first;
        delete e.xattrs;
      } else {
        if (rec.nlink > 1) firstOfInode.set(key, p);
        e.size = Number(rec.size);
        e.open = hostFileOpener(host);
      }
    } else if (type === "symlink") {
      e.linkname = readlinkSync(host);
    } else if (type === "char" || type === "block") {
      e.devmajor = devMajor(rec.rdev);
      e.devminor = devMinor(rec.rdev);
    }
    entries.push(e);
  }
  return entries;
}
