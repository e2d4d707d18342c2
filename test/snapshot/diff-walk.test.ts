// The differ's walk on awkward trees: very deep nesting, names whose tar order differs from
// UTF-16 order, xattrs inside new trees and under mount targets, and directories whose only
// change is their ctime. Real files, real getfattr/setfattr.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, rmSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { diffSnapshot, takeBaseline } from "../../src/snapshot/diff-lstat.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import { compareLayerPaths } from "../../src/layer/tar-writer.js";
import { tempDir } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
let root: string;
beforeEach(() => {
  t = tempDir("kiln-diff-walk-");
  root = join(t.dir, "root");
  mkdirSync(join(root, "etc"), { recursive: true });
  writeFileSync(join(root, "etc/keep"), "k");
});
afterEach(() => t.cleanup());

const view = (entries: LayerEntry[]): string[] => entries.map((e) => `${e.type} ${e.path}`);
const setx = (p: string, name: string, value: string): void => {
  execFileSync("setfattr", ["-h", "-n", name, "-v", value, p]);
};

describe("snapshot differ walk", () => {
  it("handles trees nested far deeper than recursion would allow", async () => {
    const depth = 1500;
    const rel = Array.from({ length: depth }, () => "d").join("/");
    mkdirSync(join(root, "old", rel), { recursive: true });
    const b = takeBaseline(root);
    writeFileSync(join(root, "old", rel, "leaf"), "x");
    mkdirSync(join(root, "new", rel), { recursive: true });
    const entries = await diffSnapshot(b);
    // "new" and its 1500 new directories; "old" and its 1500 directories as parents of the leaf
    expect(entries.length).toBe(1 + depth + 1 + depth + 1);
    expect(entries[0]).toMatchObject({ path: "new", type: "dir" });
    expect(entries[depth]?.path).toBe(`new/${rel}`);
    expect(entries[depth + 1]).toMatchObject({ path: "old", type: "dir" });
    expect(entries.at(-1)).toMatchObject({ path: `old/${rel}/leaf`, type: "file", size: 1 });
  });

  it("emits entries in layer order for names whose UTF-16 and UTF-8 orders differ", async () => {
    const names = ["z", "Z", "é", "𝄞", "\uffee", "a b", "10", "2", ".hidden", "\u00a0"];
    mkdirSync(join(root, "d"));
    for (const n of names) writeFileSync(join(root, "d", `old-${n}`), n);
    const b = takeBaseline(root);
    for (const n of names) {
      writeFileSync(join(root, "d", n), n);
      mkdirSync(join(root, "d", `${n}-dir`));
      writeFileSync(join(root, "d", `${n}-dir`, n), n);
    }
    for (const n of names.slice(0, 5)) unlinkSync(join(root, "d", `old-${n}`));
    const entries = await diffSnapshot(b);
    const paths = entries.map((e) => e.path);
    expect(paths).toEqual([...paths].sort(compareLayerPaths));
    expect(paths.filter((p) => p.startsWith("d/.wh."))).toEqual(
      names
        .slice(0, 5)
        .map((n) => `d/.wh.old-${n}`)
        .sort(compareLayerPaths),
    );
    expect(entries.length).toBe(1 + names.length * 3 + 5);
  });

  it("reads xattrs in new trees, on changed files and next to mount targets", async () => {
    const b = takeBaseline(root, ["/srv/app/cache"]);
    mkdirSync(join(root, "opt/tool/bin"), { recursive: true });
    writeFileSync(join(root, "opt/tool/bin/run"), "r");
    setx(join(root, "opt/tool/bin/run"), "user.kind", "tool");
    setx(join(root, "opt/tool"), "user.kind", "dir");
    writeFileSync(join(root, "etc/keep"), "changed");
    setx(join(root, "etc/keep"), "user.kind", "conf");
    // a new tree holding a mount target: read per path, never below the target
    mkdirSync(join(root, "srv/app/cache"), { recursive: true });
    writeFileSync(join(root, "srv/app/cache/blob"), "mounted");
    writeFileSync(join(root, "srv/app/main"), "m");
    setx(join(root, "srv/app/main"), "user.kind", "main");
    const entries = await diffSnapshot(b);
    const x = (p: string): string | undefined => entries.find((e) => e.path === p)?.xattrs?.["user.kind"]?.toString();
    expect(view(entries)).toEqual([
      "dir etc",
      "file etc/keep",
      "dir opt",
      "dir opt/tool",
      "dir opt/tool/bin",
      "file opt/tool/bin/run",
      "dir srv",
      "dir srv/app",
      "file srv/app/main",
    ]);
    expect([x("opt/tool/bin/run"), x("opt/tool"), x("etc/keep"), x("srv/app/main"), x("opt/tool/bin")]).toEqual(["tool", "dir", "conf", "main", undefined]);
  });

  it("leaves out directories whose only change is their ctime, unless they now carry xattrs", async () => {
    mkdirSync(join(root, "a/b/c"), { recursive: true });
    mkdirSync(join(root, "x/y"), { recursive: true });
    for (const d of ["a/b", "x/y"]) utimesSync(join(root, d), 1_600_000_000, 1_600_000_000);
    const b = takeBaseline(root);
    // ctime-only changes: mtime put back after adding and removing an entry
    for (const d of ["a/b", "x/y"]) {
      writeFileSync(join(root, d, "tmp"), "t");
      rmSync(join(root, d, "tmp"));
      utimesSync(join(root, d), 1_600_000_000, 1_600_000_000);
      expect(lstatSync(join(root, d)).ctimeMs).toBeGreaterThan(1_600_000_000_000);
    }
    expect(await diffSnapshot(b)).toEqual([]);
    setx(join(root, "x/y"), "user.flag", "1");
    const entries = await diffSnapshot(b);
    expect(view(entries)).toEqual(["dir x", "dir x/y"]);
    expect(entries[1]?.xattrs?.["user.flag"]?.toString()).toBe("1");
  });
});
