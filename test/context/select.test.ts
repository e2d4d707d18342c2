import { describe, it, expect, afterEach } from "vitest";
import { execFileSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { DirContext, contextFromTar, type ContextEntry } from "../../src/context/build-context.js";
import { createIgnoreMatcher } from "../../src/context/dockerignore.js";
import { selectSources } from "../../src/context/select.js";
import { KilnError } from "../../src/errors.js";
import { makeTar, tempDir, writeTree } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function context(tree: Parameters<typeof writeTree>[1], ignore: string[] = []): Promise<DirContext> {
  const { dir, cleanup } = await tempDir();
  cleanups.push(cleanup);
  await writeTree(dir, tree);
  return new DirContext(dir, createIgnoreMatcher(ignore));
}

async function walkPaths(ctx: DirContext, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of ctx.walk(rel)) out.push(e.type === "dir" ? `${e.path}/` : e.path);
  return out;
}

describe("DirContext", () => {
  it("walks sorted, applies .dockerignore, reports symlinks without following them", async () => {
    const ctx = await context(
      {
        "b.txt": "b",
        "a/z.txt": "z",
        "a/y.log": "y",
        "node_modules/x/index.js": "x",
        "link": { symlink: "a" },
        "vendor/drop": "d",
        "vendor/keep/k": "k",
      },
      ["node_modules", "*.log", "a/*.log", "vendor", "!vendor/keep"],
    );
    expect(await walkPaths(ctx)).toEqual(["a/", "a/z.txt", "b.txt", "link", "vendor/", "vendor/keep/", "vendor/keep/k"]);
    expect(await ctx.stat("node_modules/x/index.js")).toBeUndefined();
    expect(await ctx.stat("a/y.log")).toBeUndefined();
    expect((await ctx.stat("link"))?.type).toBe("symlink");
    expect((await ctx.stat("vendor"))?.type).toBe("dir");
    expect(await ctx.stat("vendor/drop")).toBeUndefined();
  });

  it("extracts a context tar (gzip too) and refuses entries escaping it", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const good = await makeTar([
      { name: "./Dockerfile", content: "FROM scratch\n" },
      { name: "src/", type: "directory" },
      { name: "src/main.c", content: "int main;", mode: 0o640 },
      { name: "link", type: "symlink", linkname: "src/main.c" },
    ]);
    const ctx = await contextFromTar(Readable.from([good]), join(dir, "work"));
    expect(await walkPaths(ctx)).toEqual(["Dockerfile", "link", "src/", "src/main.c"]);
    expect((await ctx.stat("src/main.c"))?.mode).toBe(0o640);
    const { gzipSync } = await import("node:zlib");
    const ctx2 = await contextFromTar(Readable.from([gzipSync(good)]), join(dir, "work"));
    expect(await readFile(join(ctx2.root, "src/main.c"), "utf8")).toBe("int main;");

    const evil = await makeTar([{ name: "../escape", content: "x" }]);
    await expect(contextFromTar(Readable.from([evil]), join(dir, "work"))).rejects.toThrow(/points outside the context/);
    const through = await makeTar([
      { name: "l", type: "symlink", linkname: "/tmp" },
      { name: "l/pwned", content: "x" },
    ]);
    await expect(contextFromTar(Readable.from([through]), join(dir, "work"))).rejects.toThrow(/through a symlink/);
  });

  it("a tar made by the tar command extracts as a directory context", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    await writeTree(join(dir, "src"), { "x/y.txt": "yy", "top": "t" });
    execFileSync("tar", ["-C", join(dir, "src"), "-cf", join(dir, "ctx.tar"), "."]);
    const ctx = await contextFromTar(createReadStream(join(dir, "ctx.tar")), join(dir, "work"));
    expect(await walkPaths(ctx)).toEqual(["top", "x/", "x/y.txt"]);
  });
});

describe("selectSources", () => {
  const names = (sel: Array<{ entry: ContextEntry; name: string }>) => sel.map((s) => `${s.name}:${s.entry.path}`);

  it("wildcards match per segment (Go filepath.Match), sorted, ignore applied", async () => {
    const ctx = await context(
      { "a1.txt": "", "a2.txt": "", "b.txt": "", "sub/a3.txt": "", ".hidden.txt": "", "skip.txt": "" },
      ["skip.txt"],
    );
    expect(names(await selectSources(ctx, ["*.txt"]))).toEqual([
      ".hidden.txt:.hidden.txt",
      "a1.txt:a1.txt",
      "a2.txt:a2.txt",
      "b.txt:b.txt",
    ]);
    expect(names(await selectSources(ctx, ["a?.txt", "s*/a[0-9].txt"]))).toEqual([
      "a1.txt:a1.txt",
      "a2.txt:a2.txt",
      "a3.txt:sub/a3.txt",
    ]);
    // BuildKit allows a wildcard that matches nothing; opting out makes it an error.
    expect(await selectSources(ctx, ["*.none"])).toEqual([]);
    await expect(selectSources(ctx, ["*.none"], { allowEmptyWildcard: false })).rejects.toThrow(/no source files were specified/);
  });

  it("missing sources, ignored sources and ../ escapes are one-line errors", async () => {
    const ctx = await context({ "a.txt": "", "secret.key": "" }, ["*.key"]);
    await expect(selectSources(ctx, ["nope"])).rejects.toThrow('source "nope" not found in build context');
    await expect(selectSources(ctx, ["secret.key"])).rejects.toThrow('source "secret.key" not found in build context');
    const err = await selectSources(ctx, ["../x"]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as Error).message).toBe('source "../x" is outside the build context');
    await expect(selectSources(ctx, ["a/../../x"])).rejects.toThrow("outside the build context");
    // A leading "/" is the context root.
    expect(names(await selectSources(ctx, ["/a.txt", "./a.txt"]))).toEqual(["a.txt:a.txt", "a.txt:a.txt"]);
  });

  it("follows a symlink named as the source; refuses one that leaves the context", async () => {
    const ctx = await context({
      "real/file": "x",
      "dirlink": { symlink: "real" },
      "filelink": { symlink: "real/file" },
      "abs": { symlink: "/etc/passwd" },
      "up": { symlink: "../../outside" },
      "dangling": { symlink: "missing" },
    });
    const sel = await selectSources(ctx, ["dirlink", "filelink"]);
    expect(sel.map((s) => [s.name, s.entry.path, s.entry.type])).toEqual([
      ["dirlink", "real", "dir"],
      ["filelink", "real/file", "file"],
    ]);
    await expect(selectSources(ctx, ["abs"])).rejects.toThrow('source "abs" is outside the build context (symlink to /etc/passwd)');
    await expect(selectSources(ctx, ["up"])).rejects.toThrow('source "up" is outside the build context (symlink to ../../outside)');
    await expect(selectSources(ctx, ["dangling"])).rejects.toThrow('source "dangling" not found in build context');
  });

  it("--parents keeps the path from the context root or from a /./ pivot", async () => {
    const ctx = await context({ "x/a.txt": "", "x/y/b.txt": "" });
    const sel = await selectSources(ctx, ["x/a.txt", "x/./y/*.txt"], { parents: true });
    expect(sel.map((s) => s.parentsPath)).toEqual(["x/a.txt", "y/b.txt"]);
  });

  it("--exclude is carried to the copy (matched relative to the source)", async () => {
    const ctx = await context({ "d/a.txt": "", "d/b.md": "" });
    const [sel] = await selectSources(ctx, ["d"], { exclude: ["*.md"] });
    expect(sel!.exclude?.("b.md")).toBe(true);
    expect(sel!.exclude?.("a.txt")).toBe(false);
  });
});
