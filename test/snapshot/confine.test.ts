import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanImagePath, resolveInRoot, resolveParentInRoot } from "../../src/snapshot/confine.js";
import { tempDir } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
let root: string;
beforeEach(() => {
  t = tempDir();
  root = join(t.dir, "root");
  mkdirSync(join(root, "a/b"), { recursive: true });
  writeFileSync(join(root, "a/b/f"), "x");
});
afterEach(() => t.cleanup());

describe("confined path resolution", () => {
  it("cleans paths lexically and rejects climbing names", () => {
    expect(cleanImagePath("/a/./b//c/")).toBe("a/b/c");
    expect(cleanImagePath("a/../b")).toBe("b");
    expect(cleanImagePath("../x")).toBeNull();
    expect(cleanImagePath("a/../../x")).toBeNull();
    expect(cleanImagePath("/")).toBe("");
  });

  it("looks again at components reached by .. after a missing one (a symlink's text cannot smuggle one through)", async () => {
    symlinkSync("/etc", join(root, "hostlink"));
    symlinkSync("/nonexistent/../hostlink", join(root, "l"));
    // hostlink is resolved inside the root: <root>/etc/y, never <root>/hostlink/y (= the host's /etc/y)
    expect(await resolveInRoot(root, "/l/y", { followFinal: true })).toBe(join(root, "etc/y"));
  });

  it("never climbs above the root with ..", async () => {
    expect(await resolveInRoot(root, "../../../etc/passwd")).toBe(join(root, "etc/passwd"));
    expect(await resolveInRoot(root, "a/../../..")).toBe(root);
  });

  it("resolves absolute symlinks from the root and relative ones in place", async () => {
    symlinkSync("/a/b", join(root, "abs"));
    symlinkSync("../../../../../..", join(root, "a/up"));
    symlinkSync("b/f", join(root, "a/rel"));
    expect(await resolveInRoot(root, "abs/f")).toBe(join(root, "a/b/f"));
    expect(await resolveInRoot(root, "a/up/etc/shadow")).toBe(join(root, "etc/shadow"));
    expect(await resolveInRoot(root, "a/rel", { followFinal: true })).toBe(join(root, "a/b/f"));
    expect(await resolveInRoot(root, "a/rel")).toBe(join(root, "a/rel"));
    symlinkSync("/etc", join(root, "hostetc"));
    expect(await resolveInRoot(root, "hostetc/passwd")).toBe(join(root, "etc/passwd"));
  });

  it("reports symlink loops", async () => {
    symlinkSync("loop2", join(root, "loop1"));
    symlinkSync("loop1", join(root, "loop2"));
    await expect(resolveInRoot(root, "loop1/x")).rejects.toThrow(/too many levels of symbolic links/);
  });

  it("resolves the parent but not the final component", async () => {
    symlinkSync("/a", join(root, "l"));
    const r = await resolveParentInRoot(root, "l/b");
    expect(r.parent).toBe(join(root, "a"));
    expect(r.host).toBe(join(root, "a/b"));
  });
});
