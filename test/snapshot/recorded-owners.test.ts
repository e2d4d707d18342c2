// The fake root's record (faked's save file) and how a layer entry takes it: owners and modes,
// a mknod'd node (an empty file on disk) as a device or fifo entry, an unreadable record refused.
import { describe, expect, it } from "vitest";
import { inodeKey, parseFakedSave, withRecorded } from "../../src/snapshot/recorded-owners.js";
import type { LayerEntry } from "../../src/layer/entry.js";

const file: LayerEntry = { path: "f", type: "file", mode: 0o644, uid: 1000, gid: 1000, mtime: 1, size: 0, open: () => { throw new Error("unread"); } };

describe("recorded owners", () => {
  it("parses faked's save file by (device, inode)", () => {
    const m = parseFakedSave("dev=fe00,ino=2213704,mode=100644,uid=100,gid=101,nlink=1,rdev=0\ndev=fe00,ino=7,mode=20644,uid=0,gid=9,nlink=1,rdev=259\n");
    expect(m.get(inodeKey(0xfe00, 2213704))).toEqual({ mode: 0o100644, uid: 100, gid: 101, rdev: 0 });
    expect(m.get(inodeKey(65024n, 7n))).toEqual({ mode: 0o20644, uid: 0, gid: 9, rdev: 259 });
  });

  it("refuses a line it cannot read", () => {
    expect(() => parseFakedSave("dev=fe00,ino=1,mode=x\n")).toThrow(/fake root's record cannot be read/);
  });

  it("gives an entry the recorded owner and mode, and a recorded node its type and numbers", () => {
    expect(withRecorded(file, { mode: 0o100750, uid: 7, gid: 8, rdev: 0 })).toMatchObject({ type: "file", mode: 0o750, uid: 7, gid: 8 });
    const dev = withRecorded(file, { mode: 0o20600, uid: 0, gid: 9, rdev: (1 << 8) | 3 });
    expect(dev).toMatchObject({ type: "char", mode: 0o600, uid: 0, gid: 9, devmajor: 1, devminor: 3 });
    expect(dev.open).toBeUndefined();
    expect(withRecorded(file, { mode: 0o10644, uid: 0, gid: 0, rdev: 0 }).type).toBe("fifo");
    expect(() => withRecorded({ ...file, type: "dir" }, { mode: 0o100644, uid: 1, gid: 1, rdev: 0 })).toThrow(/OWNER|cannot be recorded/);
  });
});
