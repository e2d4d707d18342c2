// Owners a RUN's fake root recorded instead of setting them: a non-root proot step runs under
// Debian's fakeroot (src/run/fakeroot.ts), whose daemon keeps, per (device, inode), the owner,
// mode and device number the step's chown/chmod/mknod set; its save file is parsed here and the
// snapshotters put those values on the step's layer entries (the same ids a user-namespace
// build records). A recorded mknod is an empty regular file on disk: its entry becomes the node.
import { lstatSync } from "node:fs";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { WHITEOUT_PREFIX, type EntryType, type LayerEntry } from "../layer/entry.js";

/** What the fake root recorded for one inode: st_mode (type bits included), ids, st_rdev. */
export interface RecordedOwner {
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
}

/** Recorded inodes by inodeKey(dev, ino). */
export type RecordedOwners = ReadonlyMap<string, RecordedOwner>;

export function inodeKey(dev: bigint | number, ino: bigint | number): string {
  return `${dev}:${ino}`;
}

/**
 * faked's save file (`faked --save-file`): one line per inode,
 * `dev=<hex>,ino=<dec>,mode=<oct>,uid=<dec>,gid=<dec>,nlink=<dec>,rdev=<dec>`. Lines of another
 * form are refused: a record kiln cannot read must not turn into a wrong owner.
 */
export function parseFakedSave(text: string): Map<string, RecordedOwner> {
  const out = new Map<string, RecordedOwner>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const m = /^dev=([0-9a-f]+),ino=(\d+),mode=([0-7]+),uid=(\d+),gid=(\d+),nlink=\d+,rdev=(\d+)$/.exec(line.trim());
    if (!m) throw new KilnError("OWNER_UNRECORDABLE", `the fake root's record cannot be read (line ${JSON.stringify(line.slice(0, 120))})`);
    out.set(inodeKey(BigInt(`0x${m[1]!}`), BigInt(m[2]!)), {
      mode: Number.parseInt(m[3]!, 8),
      uid: Number(m[4]),
      gid: Number(m[5]),
      rdev: Number(m[6]),
    });
  }
  return out;
}

const S_IFMT = 0o170000;
const TYPES: Record<number, EntryType> = { 0o040000: "dir", 0o100000: "file", 0o120000: "symlink", 0o020000: "char", 0o060000: "block", 0o010000: "fifo" };

function devMajor(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | Math.floor(rdev / 2 ** 32) & ~0xfff;
}

function devMinor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >>> 12) & ~0xff & 0xfffff);
}

/**
 * `e` (made from the inode on disk) with what the fake root recorded for it: owner, permission
 * bits, and for a recorded device node or fifo (an empty regular file on disk) that type. A
 * hardlink entry takes the owner only. Any other disagreement of types is refused.
 */
export function withRecorded(e: LayerEntry, r: RecordedOwner, step = "RUN"): LayerEntry {
  const out: LayerEntry = { ...e, uid: r.uid, gid: r.gid };
  if (e.type === "hardlink") return out;
  out.mode = r.mode & 0o7777;
  const recorded = TYPES[r.mode & S_IFMT];
  if (recorded === e.type) return out;
  if (e.type === "file" && e.size === 0 && (recorded === "char" || recorded === "block" || recorded === "fifo")) {
    delete out.open;
    out.type = recorded;
    if (recorded !== "fifo") {
      out.devmajor = devMajor(r.rdev);
      out.devminor = devMinor(r.rdev);
    }
    return out;
  }
  throw new KilnError("OWNER_UNRECORDABLE", `${step} left /${e.path} as a ${e.type} while its fake root recorded a ${recorded ?? "different object"}: its owner cannot be recorded`);
}

/**
 * For a differ that does not see inodes (the overlay one, which walks the upper directory):
 * `entries` with the records of the inodes their paths have in `root` (the merged view) applied,
 * each such entry added to `applied`. A record no entry took is a chown or chmod the differ did
 * not see as a change (the fake root left the inode as it was): refused, since the layer would
 * carry the old owner.
 */
export function applyRecordedByPath(entries: LayerEntry[], root: string, recorded: RecordedOwners, applied: Set<LayerEntry>, step = "RUN"): LayerEntry[] {
  const used = new Set<string>();
  const out = entries.map((e) => {
    if (e.path.startsWith(WHITEOUT_PREFIX, e.path.lastIndexOf("/") + 1)) return e;
    const st = lstatSync(join(root, e.path), { bigint: true, throwIfNoEntry: false });
    const key = st ? inodeKey(st.dev, st.ino) : "";
    const r = st ? recorded.get(key) : undefined;
    if (!r) return e;
    used.add(key);
    const w = withRecorded(e, r, step);
    applied.add(w);
    return w;
  });
  const missed = [...recorded.keys()].filter((k) => !used.has(k)).length;
  if (missed > 0) {
    throw new KilnError("OWNER_UNRECORDABLE", `${step} changed the owner or mode of ${missed} file(s) that the overlay snapshotter cannot see as changed under a fake root (use --snapshotter dir)`);
  }
  return out;
}
