// copyTreeNoFollow: the writable copy behind `RUN --mount=type=bind,rw` copies symlinks as they
// are (never their targets, wherever they point) and keeps modes and times.
import { lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, symlinkSync, utimesSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { copyTreeNoFollow } from "../../src/snapshot/copy-tree.js";
import { tempDir } from "./helpers.js";

describe("copyTreeNoFollow", () => {
  it("copies files, directories and symlinks verbatim, never what a symlink points at", async () => {
    const t = tempDir("kiln-copytree-");
    try {
      const src = join(t.dir, "src");
      const host = join(t.dir, "host");
      mkdirSync(join(src, "d"), { recursive: true });
      mkdirSync(host);
      writeFileSync(join(host, "secret"), "host");
      writeFileSync(join(src, "d", "f"), "data");
      chmodSync(join(src, "d", "f"), 0o604);
      symlinkSync(host, join(src, "to-host"));
      symlinkSync(join(host, "secret"), join(src, "d", "to-file"));
      const old = new Date("2001-01-01T00:00:00Z");
      utimesSync(join(src, "d", "f"), old, old);
      utimesSync(join(src, "d"), old, old);
      const dest = join(t.dir, "copy");
      await copyTreeNoFollow(src, dest);
      expect(readdirSync(dest).sort()).toEqual(["d", "to-host"]);
      expect(readlinkSync(join(dest, "to-host"))).toBe(host);
      expect(readlinkSync(join(dest, "d", "to-file"))).toBe(join(host, "secret"));
      expect(readFileSync(join(dest, "d", "f"), "utf8")).toBe("data");
      expect(lstatSync(join(dest, "d", "f")).mode & 0o7777).toBe(0o604);
      expect(lstatSync(join(dest, "d")).mtimeMs).toBe(old.getTime());
      expect(readdirSync(host)).toEqual(["secret"]);
      await expect(copyTreeNoFollow(join(src, "to-host"), join(t.dir, "copy2"))).rejects.toThrow(/is a symlink/);
    } finally {
      t.cleanup();
    }
  });
});
