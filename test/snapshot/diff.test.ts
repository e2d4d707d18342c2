import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { text } from "node:stream/consumers";
import { diffSnapshot, takeBaseline } from "../../src/snapshot/diff-lstat.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import { tempDir } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
let root: string;

beforeEach(() => {
  t = tempDir();
  root = join(t.dir, "root");
  mkdirSync(join(root, "etc"), { recursive: true });
  mkdirSync(join(root, "usr/lib/deep/er"), { recursive: true });
  mkdirSync(join(root, "proc"));
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/:/bin/sh\n");
  writeFileSync(join(root, "etc/keep"), "keep");
  writeFileSync(join(root, "usr/lib/a"), "a");
  writeFileSync(join(root, "usr/lib/deep/b"), "b");
  writeFileSync(join(root, "usr/lib/deep/er/c"), "c");
});
afterEach(() => t.cleanup());

/** Compact view of entries: "type path [-> link]". */
function view(entries: LayerEntry[]): string[] {
  return entries.map((e) => `${e.type} ${e.path}${e.linkname !== undefined ? ` -> ${e.linkname}` : ""}`);
}

describe("snapshot differ", () => {
  it("returns no entries when nothing changed", async () => {
    const b = takeBaseline(root);
    expect(await diffSnapshot(b)).toEqual([]);
  });

  it("emits new and modified files with their parents and content", async () => {
    const b = takeBaseline(root);
    writeFileSync(join(root, "usr/lib/deep/er/c"), "changed!");
    mkdirSync(join(root, "opt/app"), { recursive: true });
    writeFileSync(join(root, "opt/app/run.sh"), "#!/bin/sh\n");
    chmodSync(join(root, "opt/app/run.sh"), 0o4755);
    const entries = await diffSnapshot(b);
    expect(view(entries)).toEqual([
      "dir opt",
      "dir opt/app",
      "file opt/app/run.sh",
      "dir usr",
      "dir usr/lib",
      "dir usr/lib/deep",
      "dir usr/lib/deep/er",
      "file usr/lib/deep/er/c",
    ]);
    const c = entries.find((e) => e.path === "usr/lib/deep/er/c") as LayerEntry;
    expect(c.size).toBe(8);
    expect(await text(c.open!())).toBe("changed!");
    const run = entries.find((e) => e.path === "opt/app/run.sh") as LayerEntry;
    expect(run.mode).toBe(0o4755);
    expect(run.mtime).toBeCloseTo(statSync(join(root, "opt/app/run.sh")).mtimeMs / 1000, 3);
  });

  it("whiteouts deleted files, and a deleted directory once", async () => {
    const b = takeBaseline(root);
    unlinkSync(join(root, "etc/keep"));
    rmSync(join(root, "usr/lib/deep"), { recursive: true });
    expect(view(await diffSnapshot(b))).toEqual(["dir etc", "file etc/.wh.keep", "dir usr", "dir usr/lib", "file usr/lib/.wh.deep"]);
  });

  it("handles a directory replaced by a file or symlink and back", async () => {
    const b = takeBaseline(root);
    rmSync(join(root, "usr/lib/deep"), { recursive: true });
    writeFileSync(join(root, "usr/lib/deep"), "file now");
    unlinkSync(join(root, "usr/lib/a"));
    mkdirSync(join(root, "usr/lib/a"));
    writeFileSync(join(root, "usr/lib/a/inner"), "i");
    unlinkSync(join(root, "etc/keep"));
    symlinkSync("passwd", join(root, "etc/keep"));
    expect(view(await diffSnapshot(b))).toEqual([
      "dir etc",
      "symlink etc/keep -> passwd",
      "dir usr",
      "dir usr/lib",
      "dir usr/lib/a",
      "file usr/lib/a/inner",
      "file usr/lib/deep",
    ]);
  });

  it("makes a recreated directory (new inode) opaque with its full new content", async () => {
    const b = takeBaseline(root);
    // move the old directory away (out of the tree) so the new one cannot reuse its inode
    renameSync(join(root, "usr/lib/deep"), join(t.dir, "old-deep"));
    mkdirSync(join(root, "usr/lib/deep"));
    writeFileSync(join(root, "usr/lib/deep/b"), "b");
    expect(view(await diffSnapshot(b))).toEqual([
      "dir usr",
      "dir usr/lib",
      "dir usr/lib/deep",
      "file usr/lib/deep/.wh..wh..opq",
      "file usr/lib/deep/b",
    ]);
  });

  it("makes a recreated directory opaque when the file system reuses its inode number (birth time tells)", async () => {
    // ext4 hands a freed inode to the next mkdir: the same number, a new directory (CI saw this)
    let reused = 0;
    for (let i = 0; i < 20; i++) {
      mkdirSync(join(root, "data/d3"), { recursive: true });
      const before = statSync(join(root, "data"), { bigint: true });
      const b = takeBaseline(root);
      rmSync(join(root, "data"), { recursive: true });
      mkdirSync(join(root, "data"));
      writeFileSync(join(root, "data/fresh"), "fresh");
      if (statSync(join(root, "data"), { bigint: true }).ino === before.ino) reused++;
      expect(view(await diffSnapshot(b))).toEqual(["dir data", "file data/.wh..wh..opq", "file data/fresh"]);
      rmSync(join(root, "data"), { recursive: true });
    }
    const fsType = execFileSync("stat", ["-f", "-c", "%T", root]).toString().trim();
    if (fsType === "ext2/ext3") expect(reused, "ext4 reuses the freed inode, the case under test").toBeGreaterThan(0);
  });

  it("emits hardlinks within the layer as links to the first path", async () => {
    const b = takeBaseline(root);
    writeFileSync(join(root, "etc/x1"), "same");
    linkSync(join(root, "etc/x1"), join(root, "etc/x2"));
    linkSync(join(root, "etc/x1"), join(root, "etc/x3"));
    const entries = await diffSnapshot(b);
    expect(view(entries)).toEqual(["dir etc", "file etc/x1", "hardlink etc/x2 -> etc/x1", "hardlink etc/x3 -> etc/x1"]);
    expect(entries[2].size).toBe(0);
  });

  it("detects mode, owner and xattr changes and reads xattrs", async () => {
    const b = takeBaseline(root);
    chmodSync(join(root, "etc/keep"), 0o600);
    chownSync(join(root, "usr/lib/a"), 123, 456);
    execFileSync("setcap", ["cap_net_bind_service+ep", join(root, "etc/passwd")]);
    const entries = await diffSnapshot(b);
    expect(view(entries)).toEqual(["dir etc", "file etc/keep", "file etc/passwd", "dir usr", "dir usr/lib", "file usr/lib/a"]);
    const p = entries.find((e) => e.path === "etc/passwd") as LayerEntry;
    expect(p.xattrs?.["security.capability"]?.toString("hex")).toBe("0100000200040000000000000000000000000000");
    const a = entries.find((e) => e.path === "usr/lib/a") as LayerEntry;
    expect([a.uid, a.gid]).toEqual([123, 456]);
    expect((entries.find((e) => e.path === "etc/keep") as LayerEntry).mode).toBe(0o600);
  });

  it("never includes kiln-injected paths or mount targets", async () => {
    mkdirSync(join(root, "cache"));
    const b = takeBaseline(root, ["/cache"]);
    writeFileSync(join(root, "etc/hosts"), "127.0.0.1 x\n");
    writeFileSync(join(root, "etc/resolv.conf"), "nameserver 1.1.1.1\n");
    writeFileSync(join(root, "proc/junk"), "j");
    writeFileSync(join(root, "cache/blob"), "c");
    const entries = await diffSnapshot(b);
    // only etc itself (its mtime changed): the injected files are not in the layer
    expect(view(entries)).toEqual(["dir etc"]);
  });

  it("a rename shows as whiteout plus new path", async () => {
    const b = takeBaseline(root);
    renameSync(join(root, "usr/lib/a"), join(root, "usr/lib/z"));
    expect(view(await diffSnapshot(b))).toEqual(["dir usr", "dir usr/lib", "file usr/lib/.wh.a", "file usr/lib/z"]);
    expect(readFileSync(join(root, "usr/lib/z"), "utf8")).toBe("a");
  });

  it("costs little for a one-file change in a 7,000-file tree", async () => {
    for (let d = 0; d < 70; d++) {
      const dir = join(root, "big", `d${d}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(join(dir, `f${f}`), "x");
    }
    // best of three (the machine may be busy with other work)
    let diffMs = Infinity;
    let baselineMs = Infinity;
    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      const b = takeBaseline(root);
      baselineMs = Math.min(baselineMs, performance.now() - t0);
      writeFileSync(join(root, "big/d33/f42"), `changed ${round}`);
      const t1 = performance.now();
      const entries = await diffSnapshot(b);
      diffMs = Math.min(diffMs, performance.now() - t1);
      expect(view(entries)).toEqual(["dir big", "dir big/d33", "file big/d33/f42"]);
    }
    console.log(`7,000 files: baseline ${baselineMs.toFixed(0)} ms, snapshot diff ${diffMs.toFixed(0)} ms`);
    expect(diffMs).toBeLessThan(300);
  });
});
