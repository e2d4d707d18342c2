// Snapshot differ for the overlay snapshotter: the change of a RUN step is what overlayfs put in
// the step's upper directory, so only that directory is walked (the cost follows the change, not
// the image). Each object there is compared with what the layers below hold (a read-only view of
// them): 0/0 character devices become `.wh.` whiteouts when they hide something, directories
// marked `trusted.overlay.opaque` over a lower directory become opaque directories, objects only
// copied up (same type, mode, owner, size, mtime, content, link target and xattrs) are left out
// unless something below them changed. Entries come out in tar order with their parents, the
// same entries the plain-directory differ produces for the same change.
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type BigIntStats } from "node:fs";
import { readXattrs, XattrReader } from "./xattr.js";
import { childRel, entryFromStat, pruneConditional, snapshotExcludes, whiteoutEntry } from "./diff-lstat.js";
import { compareNames } from "../layer/order.js";
import { OPAQUE_MARKER, WHITEOUT_PREFIX, type LayerEntry } from "../layer/entry.js";

export interface UpperDiffInput {
  /** Absolute host path of the step's upper directory. */
  upper: string;
  /** Absolute host path of a view of the layers below (null: there are none). */
  lower: string | null;
  /** Mount targets of the step (in-image paths); the default excludes are always applied. */
  excludes?: string[];
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** overlayfs' own xattrs in an upper directory: bookkeeping, never part of a layer. */
const OVERLAY_XATTR = "trusted.overlay.";
const OPAQUE_XATTR = "trusted.overlay.opaque";

interface Child {
  name: string;
  /** Name in the layer: `.wh.<name>` for a whiteout. */
  display: string;
  st: BigIntStats;
  whiteout: boolean;
}

interface Frame {
  rel: string;
  host: string;
  /** The lower counterpart of this directory; null when everything below is new. */
  lower: string | null;
  children: Child[];
  i: number;
  entry: LayerEntry | null;
  mark: number;
  keep: boolean;
  /** A child changed but produced no entry (a socket): the directory still counts as a parent. */
  forced: boolean;
}

interface Candidate {
  entry: LayerEntry;
  upper: string;
  lower: string;
}

function lstatOrNull(p: string): BigIntStats | null {
  try {
    return lstatSync(p, { bigint: true, throwIfNoEntry: false }) ?? null;
  } catch {
    return null;
  }
}

function listChildren(host: string, rel: string, excludes: ReadonlySet<string>): Child[] {
  let names: string[];
  try {
    names = readdirSync(host);
  } catch {
    return [];
  }
  const out: Child[] = [];
  for (const name of names) {
    if (excludes.has(childRel(rel, name))) continue;
    const st = lstatOrNull(`${host}/${name}`);
    if (!st) continue;
    const whiteout = (Number(st.mode) & S_IFMT) === S_IFCHR && st.rdev === 0n;
    out.push({ name, display: whiteout ? WHITEOUT_PREFIX + name : name, st, whiteout });
  }
  return out.sort((a, b) => compareNames(a.display, b.display));
}

/** Same bytes in two regular files (only asked when their sizes already agree). */
function sameContent(a: string, b: string): boolean {
  let fa = -1;
  let fb = -1;
  try {
    fa = openSync(a, "r");
    fb = openSync(b, "r");
    const ba = Buffer.allocUnsafe(65536);
    const bb = Buffer.allocUnsafe(65536);
    for (;;) {
      const na = readSync(fa, ba, 0, ba.length, null);
      const nb = readSync(fb, bb, 0, bb.length, null);
      if (na !== nb || ba.compare(bb, 0, nb, 0, na) !== 0) return false;
      if (na === 0) return true;
    }
  } catch {
    return false;
  } finally {
    if (fa >= 0) closeSync(fa);
    if (fb >= 0) closeSync(fb);
  }
}

/** Same type, mode, owner and mtime (and for non-directories size, device and link target). */
function sameMeta(up: BigIntStats, low: BigIntStats, upHost: string, lowHost: string): boolean {
  if (up.mode !== low.mode || up.uid !== low.uid || up.gid !== low.gid || up.mtimeNs !== low.mtimeNs) return false;
  const fmt = Number(up.mode) & S_IFMT;
  if (fmt === S_IFDIR) return true;
  if (up.size !== low.size || up.rdev !== low.rdev) return false;
  if (fmt === S_IFLNK) {
    try {
      return readlinkSync(upHost) === readlinkSync(lowHost);
    } catch {
      return false;
    }
  }
  return true;
}

function layerXattrs(all: Record<string, Buffer> | undefined): Record<string, Buffer> | undefined {
  if (!all) return undefined;
  let out: Record<string, Buffer> | undefined;
  for (const [k, v] of Object.entries(all)) {
    if (k.startsWith(OVERLAY_XATTR)) continue;
    (out ??= {})[k] = v;
  }
  return out;
}

function sameXattrs(a: Record<string, Buffer> | undefined, b: Record<string, Buffer> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  const kb = Object.keys(b ?? {});
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    const vb = b?.[k];
    if (!vb || !vb.equals((a as Record<string, Buffer>)[k] as Buffer)) return false;
  }
  return true;
}

/** The layer entries for the change recorded in an overlay upper directory, in tar order. */
export async function diffUpper(input: UpperDiffInput): Promise<LayerEntry[]> {
  const upper = input.upper;
  const excludes = snapshotExcludes(input.excludes ?? []);
  // One recursive getfattr over the upper: opaque markers for the walk, xattrs for the entries.
  const reader = new XattrReader();
  reader.addTree(upper);
  const found = await reader.finish();

  const out: LayerEntry[] = [];
  const firstOfInode = new Map<string, string>();
  const parentOnly = new Set<LayerEntry>();
  const candidates: Candidate[] = [];

  const open = (rel: string, host: string, lower: string | null, entry: LayerEntry | null, keep: boolean): Frame => ({
    rel,
    host,
    lower,
    children: listChildren(host, rel, excludes),
    i: 0,
    entry,
    mark: out.length,
    keep,
    forced: false,
  });
  const stack: Frame[] = [open("", upper, input.lower, null, false)];

  while (stack.length > 0) {
    const f = stack[stack.length - 1] as Frame;
    if (f.i >= f.children.length) {
      stack.pop();
      if (!f.entry || f.keep) continue;
      if (out.length > f.mark || f.forced) parentOnly.add(f.entry);
      else candidates.push({ entry: f.entry, upper: f.host, lower: f.lower as string });
      continue;
    }
    const c = f.children[f.i++] as Child;
    const rel = childRel(f.rel, c.name);
    const host = `${f.host}/${c.name}`;
    const lowerHost = f.lower === null ? null : `${f.lower}/${c.name}`;
    const low = lowerHost === null ? null : lstatOrNull(lowerHost);
    if (c.whiteout) {
      // a whiteout over nothing (the object was created and removed in this step) is no change
      if (low) out.push(whiteoutEntry(childRel(f.rel, c.display)));
      continue;
    }
    const e = entryFromStat(firstOfInode, rel, host, c.st);
    if (!e) {
      f.forced = true;
      continue;
    }
    const fmt = Number(c.st.mode) & S_IFMT;
    if (fmt === S_IFDIR) {
      out.push(e);
      if (!low || (Number(low.mode) & S_IFMT) !== S_IFDIR) {
        stack.push(open(rel, host, null, e, true)); // new directory (or one replacing a non-directory)
      } else if (found.get(host)?.[OPAQUE_XATTR]?.toString() === "y") {
        out.push(whiteoutEntry(`${rel}/${OPAQUE_MARKER}`)); // removed and recreated: hides the lower content
        stack.push(open(rel, host, null, e, true));
      } else {
        stack.push(open(rel, host, lowerHost, e, !sameMeta(c.st, low, host, lowerHost as string)));
      }
      continue;
    }
    out.push(e);
    if (!low || lowerHost === null) continue;
    // a copy-up leaves the object as it was: such objects are in the layer only when their
    // xattrs changed (decided below); linked ones always are (their other names are in the layer)
    if (c.st.nlink > 1n || !sameMeta(c.st, low, host, lowerHost)) continue;
    if (fmt === S_IFREG && c.st.size > 0n && !sameContent(host, lowerHost)) continue;
    candidates.push({ entry: e, upper: host, lower: lowerHost });
  }

  // Copied-up objects stay only when their xattrs differ from the lower ones.
  const dropped = new Set<LayerEntry>();
  if (candidates.length > 0) {
    const lowerX = await readXattrs(candidates.map((c) => c.lower));
    for (const c of candidates) {
      if (sameXattrs(layerXattrs(found.get(c.upper)), layerXattrs(lowerX.get(c.lower)))) dropped.add(c.entry);
    }
  }
  const prefix = `${upper}/`;
  for (const e of out) {
    if (e.type === "symlink" || e.type === "hardlink" || (e.type === "file" && e.open === undefined)) continue;
    const x = layerXattrs(found.get(prefix + e.path));
    if (x) e.xattrs = x;
  }
  return dropped.size > 0 || parentOnly.size > 0 ? pruneConditional(out, dropped, parentOnly) : out;
}
