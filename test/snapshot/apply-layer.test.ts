import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, writeFileSync, symlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { applyLayer } from "../../src/snapshot/apply-layer.js";
import { KilnError } from "../../src/errors.js";
import { tempDir, tarStream, type TarSpec } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
let root: string;
let outside: string;

beforeEach(() => {
  t = tempDir();
  root = join(t.dir, "root");
  outside = join(t.dir, "outside");
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, "sentinel"), "untouched");
});
afterEach(() => t.cleanup());

const apply = (entries: TarSpec[], privileged = true, warnings: string[] = []) =>
  applyLayer(root, tarStream(entries), { layerName: "L1", privileged, onWarning: (m) => warnings.push(m) });

function sentinelIntact(): void {
  expect(readFileSync(join(outside, "sentinel"), "utf8")).toBe("untouched");
  expect(readdirSync(outside)).toEqual(["sentinel"]);
}

describe("applyLayer", () => {
  it("extracts files, dirs, symlinks with modes, owners and mtimes", async () => {
    await apply([
      { name: "etc/", type: "dir", mode: 0o755, mtime: 1_500_000_000 },
      { name: "etc/conf", content: "hello", mode: 0o640, uid: 12, gid: 34, mtime: 1_400_000_000 },
      { name: "usr/bin/tool", content: "#!x", mode: 0o4755, uid: 0, gid: 0 },
      { name: "usr/bin/sgid", content: "x", mode: 0o2755, uid: 5, gid: 6 },
      { name: "tmp/", type: "dir", mode: 0o1777 },
      { name: "link", type: "symlink", linkname: "/etc/conf" },
    ]);
    expect(readFileSync(join(root, "etc/conf"), "utf8")).toBe("hello");
    const st = statSync(join(root, "etc/conf"));
    expect(st.mode & 0o7777).toBe(0o640);
    expect([st.uid, st.gid]).toEqual([12, 34]);
    expect(st.mtimeMs).toBe(1_400_000_000_000);
    expect(statSync(join(root, "etc")).mtimeMs).toBe(1_500_000_000_000);
    expect(statSync(join(root, "usr/bin/tool")).mode & 0o7777).toBe(0o4755);
    const sg = statSync(join(root, "usr/bin/sgid"));
    expect(sg.mode & 0o7777).toBe(0o2755);
    expect(sg.uid).toBe(5);
    expect(statSync(join(root, "tmp")).mode & 0o7777).toBe(0o1777);
    expect(readlinkSync(join(root, "link"))).toBe("/etc/conf");
  });

  it("refuses entries that climb out with ..", async () => {
    await expect(apply([{ name: "../../outside/x", content: "bad" }])).rejects.toThrow(
      new KilnError("LAYER_APPLY_FAILED", 'layer L1: entry "../../outside/x" escapes the root'),
    );
    await expect(apply([{ name: "a/../../x", content: "bad" }])).rejects.toThrow(/escapes the root/);
    sentinelIntact();
  });

  it("treats absolute names as rooted", async () => {
    await apply([{ name: "/abs/file", content: "in" }]);
    expect(readFileSync(join(root, "abs/file"), "utf8")).toBe("in");
  });

  it("keeps writes through planted symlinks inside the root", async () => {
    await apply([
      { name: "x", type: "symlink", linkname: "../../.." },
      { name: "x/sentinel", content: "evil" },
      { name: "y", type: "symlink", linkname: outside },
      { name: "y/sentinel", content: "evil" },
    ]);
    sentinelIntact();
    expect(readFileSync(join(root, "sentinel"), "utf8")).toBe("evil");
    expect(readFileSync(join(root, outside, "sentinel"), "utf8")).toBe("evil");
  });

  it("keeps writes through a symlink from an earlier layer inside the root", async () => {
    await apply([{ name: "etc", type: "symlink", linkname: outside }]);
    await apply([{ name: "etc/sentinel", content: "evil" }]);
    sentinelIntact();
    expect(readFileSync(join(root, outside, "sentinel"), "utf8")).toBe("evil");
  });

  it("replaces a symlink entry instead of writing through it", async () => {
    symlinkSync(join(outside, "sentinel"), join(root, "f"));
    await apply([{ name: "f", content: "new" }]);
    sentinelIntact();
    expect(lstatSync(join(root, "f")).isFile()).toBe(true);
  });

  it("creates hardlinks inside the root and refuses ones that escape", async () => {
    await apply([
      { name: "a", content: "data" },
      { name: "b", type: "hardlink", linkname: "a" },
    ]);
    expect(statSync(join(root, "a")).ino).toBe(statSync(join(root, "b")).ino);
    await expect(apply([{ name: "c", type: "hardlink", linkname: "../outside/sentinel" }])).rejects.toThrow(/escapes the root/);
    // an absolute target counts from the root: /outside/... does not exist inside
    await expect(apply([{ name: "d", type: "hardlink", linkname: join(outside, "sentinel") }])).rejects.toThrow(/not found/);
    // through a symlink that points outside: resolves inside the root
    symlinkSync(outside, join(root, "out"));
    await expect(apply([{ name: "e", type: "hardlink", linkname: "out/sentinel" }])).rejects.toThrow(/not found/);
    expect(statSync(join(outside, "sentinel")).nlink).toBe(1);
    sentinelIntact();
  });

  it("applies whiteouts and opaque directories", async () => {
    await apply([
      { name: "d/", type: "dir" },
      { name: "d/a", content: "a" },
      { name: "d/sub/b", content: "b" },
      { name: "keep/x", content: "x" },
      { name: "gone/y", content: "y" },
    ]);
    await apply([
      { name: ".wh.gone" },
      { name: "keep/.wh.x" },
      { name: "d/", type: "dir" },
      { name: "d/.wh..wh..opq" },
      { name: "d/new", content: "n" },
    ]);
    expect(existsSync(join(root, "gone"))).toBe(false);
    expect(readdirSync(join(root, "keep"))).toEqual([]);
    expect(readdirSync(join(root, "d")).sort()).toEqual(["new"]);
    // opaque marker after an added sibling keeps it
    await apply([{ name: "d/later", content: "l" }, { name: "d/.wh..wh..opq" }]);
    expect(readdirSync(join(root, "d"))).toEqual(["later"]);
  });

  it("whiteouts cannot remove anything outside the root", async () => {
    symlinkSync(outside, join(root, "o"));
    await apply([{ name: "o/.wh.sentinel" }]);
    sentinelIntact();
    await expect(apply([{ name: "../.wh.outside" }])).rejects.toThrow(/escapes the root/);
    sentinelIntact();
  });

  it("replaces a dir with a file and a file with a dir", async () => {
    await apply([{ name: "p/q", content: "1" }, { name: "f", content: "2" }]);
    await apply([{ name: "p", content: "now a file" }, { name: "f/", type: "dir" }, { name: "f/inner", content: "3" }]);
    expect(readFileSync(join(root, "p"), "utf8")).toBe("now a file");
    expect(readFileSync(join(root, "f/inner"), "utf8")).toBe("3");
  });

  it("sets xattrs including binary security.capability after chown", async () => {
    const cap = Buffer.from("0100000200040080000000000000000000000000", "hex");
    await apply([
      { name: "bin/ping", content: "x", mode: 0o755, uid: 0, gid: 0, xattrs: { "security.capability": cap, "user.note": Buffer.from("hi") } },
    ]);
    const out = execFileSync("getfattr", ["-d", "-m", "-", "-e", "hex", join(root, "bin/ping")], { encoding: "utf8" });
    expect(out).toContain("security.capability=0x0100000200040080000000000000000000000000");
    expect(out).toContain("user.note=0x6869");
  });

  it("creates devices and fifos only when privileged", async () => {
    const warnings: string[] = [];
    await apply([{ name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 }, { name: "p", type: "fifo" }], false, warnings);
    expect(existsSync(join(root, "dev/null"))).toBe(false);
    expect(warnings.length).toBe(2);
    await apply([{ name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 }, { name: "p", type: "fifo" }], true);
    const st = lstatSync(join(root, "dev/null"));
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(statSync("/dev/null").rdev);
    expect(lstatSync(join(root, "p")).isFIFO()).toBe(true);
  });

  it("deviceNodes skip: block and character devices stay off the disk, fifos are made", async () => {
    const warnings: string[] = [];
    await applyLayer(root, tarStream([{ name: "dev/sda", type: "block", devmajor: 8, devminor: 0, mode: 0o660 }, { name: "dev/mem", type: "char", devmajor: 1, devminor: 1 }, { name: "p", type: "fifo" }]), {
      layerName: "L1",
      privileged: true,
      deviceNodes: "skip",
      onWarning: (m) => warnings.push(m),
    });
    expect(existsSync(join(root, "dev/sda"))).toBe(false);
    expect(existsSync(join(root, "dev/mem"))).toBe(false);
    expect(lstatSync(join(root, "p")).isFIFO()).toBe(true);
    expect(warnings).toEqual([]);
  });

  it("reports a truncated tar as one-line KilnError", async () => {
    const { makeTar } = await import("./helpers.js");
    const { Readable } = await import("node:stream");
    const buf = makeTar([{ name: "big", content: "x".repeat(5000) }]).subarray(0, 1500);
    await expect(applyLayer(root, Readable.from([buf]), { layerName: "L9" })).rejects.toThrow(KilnError);
  });
});

describe("applyLayer in overlay mode (one layer of an overlayfs stack)", () => {
  const applyOverlay = (entries: TarSpec[]) => applyLayer(root, tarStream(entries), { layerName: "L1", privileged: true, whiteouts: "overlay" });

  it("records whiteouts as 0/0 character devices and opaque markers as trusted.overlay.opaque", async () => {
    await applyOverlay([
      { name: ".wh.gone" },
      { name: "d/", type: "dir" },
      { name: "d/.wh..wh..opq" },
      { name: "d/new", content: "n" },
      { name: "deep/er/.wh.x" },
    ]);
    for (const p of ["gone", "deep/er/x"]) {
      const st = lstatSync(join(root, p));
      expect(st.isCharacterDevice() && st.rdev === 0, p).toBe(true);
    }
    expect(execFileSync("getfattr", ["--absolute-names", "-n", "trusted.overlay.opaque", "--only-values", join(root, "d")], { encoding: "utf8" })).toBe("y");
    expect(readFileSync(join(root, "d/new"), "utf8")).toBe("n");
  });

  it("a name whited out and re-added in the same layer is the new object only", async () => {
    await applyOverlay([{ name: ".wh.x" }, { name: "x", content: "again" }]);
    expect(lstatSync(join(root, "x")).isFile()).toBe(true);
  });

  it("stays confined: .. names, planted symlinks, whiteouts through symlinks, escaping hardlinks", async () => {
    await expect(applyOverlay([{ name: "../../outside/x", content: "bad" }])).rejects.toThrow(/escapes the root/);
    await expect(applyOverlay([{ name: "c", type: "hardlink", linkname: "../outside/sentinel" }])).rejects.toThrow(/escapes the root/);
    await expect(applyOverlay([{ name: "d", type: "hardlink", linkname: join(outside, "sentinel") }])).rejects.toThrow(/not found/);
    await applyOverlay([
      { name: "x", type: "symlink", linkname: outside },
      { name: "x/sentinel", content: "evil" },
      { name: "x/.wh.other" },
    ]);
    sentinelIntact();
    expect(readFileSync(join(root, outside, "sentinel"), "utf8")).toBe("evil");
    expect(lstatSync(join(root, outside, "other")).isCharacterDevice()).toBe(true);
    expect(statSync(join(outside, "sentinel")).nlink).toBe(1);
  });
});
