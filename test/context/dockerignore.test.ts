import { describe, it, expect, afterEach } from "vitest";
import { join } from "node:path";
import { writeFile, mkdir } from "node:fs/promises";
import { createIgnoreMatcher, parseIgnoreFile, readIgnoreFile } from "../../src/context/dockerignore.js";
import { tempDir } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe("parseIgnoreFile", () => {
  it("drops comments and blank lines, cleans patterns and leading slashes", () => {
    expect(parseIgnoreFile("# comment\n\n  node_modules  \n/build/\n!  keep.txt\n./a/../b\n\uFEFF")).toEqual([
      "node_modules",
      "build",
      "!keep.txt",
      "b",
    ]);
  });
  it("keeps a # that is not at the start of the line", () => {
    expect(parseIgnoreFile("a#b\n #c")).toEqual(["a#b", "#c"]);
  });
});

describe("createIgnoreMatcher", () => {
  it("a directory pattern excludes everything beneath it", () => {
    const m = createIgnoreMatcher(["node_modules", "build/"]);
    expect(m("node_modules")).toBe(true);
    expect(m("node_modules/x/y.js")).toBe(true);
    expect(m("build/out.o")).toBe(true);
    expect(m("src/node_modules")).toBe(false);
    expect(m("node_modules_x")).toBe(false);
  });
  it("* stays within one segment, ** crosses directories", () => {
    const m = createIgnoreMatcher(["*.log", "**/*.tmp", "docs/**"]);
    expect(m("a.log")).toBe(true);
    expect(m("dir/a.log")).toBe(false);
    expect(m("a.tmp")).toBe(true);
    expect(m("x/y/z.tmp")).toBe(true);
    expect(m("docs/a/b.md")).toBe(true);
    expect(m("docs")).toBe(false);
  });
  it("exceptions re-include and later patterns win", () => {
    const m = createIgnoreMatcher(["*.md", "!README.md", "README.md"]);
    expect(m("README.md")).toBe(true);
    const m2 = createIgnoreMatcher(["*.md", "!README.md"]);
    expect(m2("README.md")).toBe(false);
    expect(m2("CHANGES.md")).toBe(true);
  });
  it("an exception below an excluded directory keeps it walkable", () => {
    const m = createIgnoreMatcher(["vendor", "!vendor/keep"]);
    expect(m("vendor/a")).toBe(true);
    expect(m("vendor/keep")).toBe(false);
    expect(m.canSkipDir("vendor")).toBe(false);
    const m2 = createIgnoreMatcher(["vendor", "!src/keep"]);
    expect(m2.canSkipDir("vendor")).toBe(true);
    expect(createIgnoreMatcher(["vendor"]).canSkipDir("vendor")).toBe(true);
    expect(createIgnoreMatcher(["vendor"]).canSkipDir("src")).toBe(false);
  });
  it("? and character classes match one character", () => {
    const m = createIgnoreMatcher(["file?.txt", "[ab].c", "[!x]y"]);
    expect(m("file1.txt")).toBe(true);
    expect(m("file12.txt")).toBe(false);
    expect(m("a.c")).toBe(true);
    expect(m("c.c")).toBe(false);
    expect(m("zy")).toBe(true);
    expect(m("xy")).toBe(false);
  });
  it("regex metacharacters are literal", () => {
    const m = createIgnoreMatcher(["a+b.(c)"]);
    expect(m("a+b.(c)")).toBe(true);
    expect(m("aab.(c)")).toBe(false);
  });
});

describe("readIgnoreFile", () => {
  it("prefers <Dockerfile>.dockerignore next to the Dockerfile", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    await writeFile(join(dir, ".dockerignore"), "from-context\n");
    await mkdir(join(dir, "build"));
    await writeFile(join(dir, "build", "app.Dockerfile"), "FROM scratch\n");
    await writeFile(join(dir, "build", "app.Dockerfile.dockerignore"), "from-dockerfile\n!keep\n");
    expect(await readIgnoreFile(dir, join(dir, "build", "app.Dockerfile"))).toEqual(["from-dockerfile", "!keep"]);
    expect(await readIgnoreFile(dir, join(dir, "Dockerfile"))).toEqual(["from-context"]);
    expect(await readIgnoreFile(dir)).toEqual(["from-context"]);
    expect(await readIgnoreFile(join(dir, "build"))).toEqual([]);
    expect(await readIgnoreFile(undefined)).toEqual([]);
  });
});
