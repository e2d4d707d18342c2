import { describe, it, expect, afterEach } from "vitest";
import { chown, lstat } from "node:fs/promises";
import { join } from "node:path";
import { DirContext } from "../../src/context/build-context.js";
import { parseChmod } from "../../src/context/chmod.js";
import { copyEntries, type CopySpec } from "../../src/context/copy-entries.js";
import { createIgnoreMatcher } from "../../src/context/dockerignore.js";
import { resolveChown } from "../../src/context/owner.js";
import { selectSources } from "../../src/context/select.js";
import { LayerView } from "../../src/layer/view.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { byPath, putLayer, readEntry, tempDir, writeTree, type TarMember } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(tree: Parameters<typeof writeTree>[1], layer: TarMember[] = [], ignore: string[] = []) {
  const { dir, cleanup } = await tempDir();
  cleanups.push(cleanup);
  await writeTree(join(dir, "ctx"), tree);
  const ctx = new DirContext(join(dir, "ctx"), createIgnoreMatcher(ignore));
  const store = new BlobStore(join(dir, "store"));
  const view = layer.length > 0 ? await LayerView.load(store, [await putLayer(store, layer)]) : LayerView.empty();
  return { ctx, view, dir };
}

type Rest = Omit<Partial<CopySpec>, "sources">;
async function copy(ctx: DirContext, view: LayerView, sources: string[], dest: string, rest: Rest & { exclude?: string[] } = {}) {
  const selected = await selectSources(ctx, sources, { exclude: rest.exclude, parents: rest.parents });
  const { exclude: _e, ...spec } = rest;
  return copyEntries({ kind: "COPY", workdir: "/", view, sources: selected, dest, sourceCount: sources.length, ...spec });
}

const summary = (entries: Awaited<ReturnType<typeof copyEntries>>) =>
  entries.map((e) => `${e.path}${e.type === "dir" ? "/" : e.type === "symlink" ? `->${e.linkname}` : ""}`);

describe("copyEntries: destination rules", () => {
  it("a single file to a new path, to a dir with trailing slash, and relative to WORKDIR", async () => {
    const { ctx, view } = await setup({ "a.txt": { content: "A", mode: 0o640, mtime: 1_500_000_000 } });
    expect(summary(await copy(ctx, view, ["a.txt"], "/opt/b.txt"))).toEqual(["opt/", "opt/b.txt"]);
    expect(summary(await copy(ctx, view, ["a.txt"], "/opt/"))).toEqual(["opt/", "opt/a.txt"]);
    const rel = await copy(ctx, view, ["a.txt"], "sub/", { workdir: "/work" });
    expect(summary(rel)).toEqual(["work/", "work/sub/", "work/sub/a.txt"]);
    const f = byPath(rel).get("work/sub/a.txt")!;
    expect(f).toMatchObject({ type: "file", mode: 0o640, uid: 0, gid: 0, mtime: 1_500_000_000, size: 1 });
    expect(await readEntry(f)).toBe("A");
    expect(summary(await copy(ctx, view, ["a.txt"], ".", { workdir: "/w" }))).toEqual(["w/", "w/a.txt"]);
  });

  it("context owners are not kept; --chown and --chmod apply", async () => {
    const { ctx, view } = await setup({ "d/x": { content: "x", mode: 0o600 }, "d/sub/y": "y" });
    const out = byPath(await copy(ctx, view, ["d"], "/app/", { chown: { uid: 1000, gid: 1001 }, chmod: parseChmod("a+rX") }));
    expect(out.get("app/x")).toMatchObject({ uid: 1000, gid: 1001, mode: 0o644 });
    expect(out.get("app/sub")).toMatchObject({ type: "dir", uid: 1000, mode: 0o755 });
    // the directory COPY creates for the destination gets the chown owner too (BuildKit)
    expect(out.get("app")).toMatchObject({ type: "dir", uid: 1000, gid: 1001 });
  });

  it("a directory source copies its contents; symlinks inside are kept as symlinks", async () => {
    const { ctx, view } = await setup({ "src/a": "a", "src/lib/b": "b", "src/link": { symlink: "lib/b" } });
    expect(summary(await copy(ctx, view, ["src"], "/dst"))).toEqual(["dst/", "dst/a", "dst/lib/", "dst/lib/b", "dst/link->lib/b"]);
    expect(summary(await copy(ctx, view, ["."], "/"))).toEqual(["src/", "src/a", "src/lib/", "src/lib/b", "src/link->lib/b"]);
  });

  it("several sources need a directory destination ending in /", async () => {
    const { ctx, view } = await setup({ "a": "", "b": "" }, [{ name: "existing/", type: "directory" }]);
    await expect(copy(ctx, view, ["a", "b"], "/x")).rejects.toThrow(
      "When using COPY with more than one source file, the destination must be a directory and end with a /",
    );
    await expect(copy(ctx, view, ["*"], "/x")).rejects.toThrow("more than one source file");
    expect(summary(await copy(ctx, view, ["a", "b"], "/x/"))).toEqual(["x/", "x/a", "x/b"]);
    // one file into an existing directory (no slash) lands inside it
    expect(summary(await copy(ctx, view, ["a"], "/existing"))).toEqual(["existing/", "existing/a"]);
  });

  it("existing parents keep their metadata; missing ones are created 0755", async () => {
    const { ctx, view } = await setup({ "f": "f" }, [
      { name: "srv/", type: "directory", mode: 0o750, uid: 7, gid: 8, mtime: 1000 },
      { name: "tmp/", type: "directory", mode: 0o1777, mtime: 1000 },
    ]);
    const out = byPath(await copy(ctx, view, ["f"], "/srv/new/deeper/", { timestamp: 42 }));
    expect(out.get("srv")).toMatchObject({ mode: 0o750, uid: 7, gid: 8, mtime: 1000 });
    expect(out.get("srv/new")).toMatchObject({ mode: 0o755, uid: 0, gid: 0, mtime: 42 });
    expect(out.get("srv/new/deeper")).toMatchObject({ mode: 0o755, mtime: 42 });
    const tmp = byPath(await copy(ctx, view, ["f"], "/tmp/"));
    expect(tmp.get("tmp")).toMatchObject({ mode: 0o1777 });
  });

  it("symlinks in the destination path resolve inside the image", async () => {
    const { ctx, view } = await setup({ "f": "f" }, [
      { name: "srv/www/", type: "directory" },
      { name: "app", type: "symlink", linkname: "/srv/www" },
      { name: "file", content: "x" },
    ]);
    expect(summary(await copy(ctx, view, ["f"], "/app/"))).toEqual(["srv/", "srv/www/", "srv/www/f"]);
    expect(summary(await copy(ctx, view, ["f"], "/app"))).toEqual(["srv/", "srv/www/", "srv/www/f"]);
    await expect(copy(ctx, view, ["f"], "/file/x")).rejects.toThrow(/not a directory/);
    // --link ignores the image below
    expect(summary(await copy(ctx, view, ["f"], "/app/", { link: true }))).toEqual(["app/", "app/f"]);
  });

  it("--exclude and --parents", async () => {
    const { ctx, view } = await setup({ "x/a.txt": "", "x/b.md": "", "x/y/c.txt": "", "z.md": "" });
    expect(summary(await copy(ctx, view, ["x"], "/d/", { exclude: ["*.md"] }))).toEqual(["d/", "d/a.txt", "d/y/", "d/y/c.txt"]);
    expect(summary(await copy(ctx, view, ["*"], "/d/", { exclude: ["*.md", "y"] }))).toEqual(["d/", "d/a.txt"]);
    expect(summary(await copy(ctx, view, ["x/a.txt", "x/y/*.txt"], "/p/", { parents: true }))).toEqual([
      "p/",
      "p/x/",
      "p/x/a.txt",
      "p/x/y/",
      "p/x/y/c.txt",
    ]);
    expect(summary(await copy(ctx, view, ["x/./y"], "/p/", { parents: true }))).toEqual(["p/", "p/y/", "p/y/c.txt"]);
    // the directories between the pivot and the source keep their context metadata
    const { ctx: ctx2, view: v2 } = await setup({ "a/b/f": "", "a": { dir: true, mode: 0o700, mtime: 1_000_000 } });
    const out = byPath(await copy(ctx2, v2, ["a/b/f"], "/p/", { parents: true, timestamp: 5 }));
    expect(out.get("p/a")).toMatchObject({ mode: 0o700, mtime: 1_000_000 });
    expect(out.get("p")).toMatchObject({ mode: 0o755, mtime: 5 });
  });

  it("--chown by name uses the image's passwd and group", async () => {
    const { ctx, view } = await setup({ "f": "f" }, [
      { name: "etc/passwd", content: "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n" },
      { name: "etc/group", content: "root:x:0:\napp:x:1000:\nwww:x:33:\n" },
    ]);
    const owner = resolveChown("app:www", view.readSmallFile("/etc/passwd"), view.readSmallFile("/etc/group"));
    expect(owner).toEqual({ uid: 1000, gid: 33 });
    const out = byPath(await copy(ctx, view, ["f"], "/home/app/", { chown: owner }));
    expect(out.get("home/app/f")).toMatchObject({ uid: 1000, gid: 33 });
    expect(() => resolveChown("nobody", view.readSmallFile("/etc/passwd"))).toThrow(
      'unable to find user "nobody": no matching entries in passwd file',
    );
  });

  it("heredoc files are 0644, owned by --chown, with the step's timestamp", async () => {
    const { view } = await setup({});
    const out = await copyEntries({
      kind: "COPY",
      sources: [{ kind: "heredoc", name: "run.sh", content: "echo hi\n" }],
      dest: "/usr/local/bin/",
      workdir: "/",
      view,
      timestamp: 7,
    });
    const f = byPath(out).get("usr/local/bin/run.sh")!;
    expect(f).toMatchObject({ mode: 0o644, uid: 0, gid: 0, mtime: 7, size: 8 });
    expect(await readEntry(f)).toBe("echo hi\n");
    const named = await copyEntries({
      kind: "COPY",
      sources: [{ kind: "heredoc", name: "EOF", content: "x" }],
      dest: "/etc/motd",
      workdir: "/",
      view,
      chmod: parseChmod("600"),
    });
    expect(byPath(named).get("etc/motd")).toMatchObject({ mode: 0o600 });
  });

  it(".dockerignore'd files are not copied; outward symlinks inside a directory stay symlinks", async () => {
    const { ctx, view } = await setup(
      { "app/main.js": "", "app/node_modules/x.js": "", "app/.env": "", "app/passwd": { symlink: "/etc/passwd" } },
      [],
      ["**/node_modules", "**/.env"],
    );
    expect(summary(await copy(ctx, view, ["app"], "/srv/"))).toEqual(["srv/", "srv/main.js", "srv/passwd->/etc/passwd"]);
  });

  it("COPY --from a root file system keeps owners and scopes absolute symlinks to that root", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    await writeTree(join(dir, "rootfs"), { "home/app/.profile": "p", "usr/bin/tool": "t", "bin": { symlink: "/usr/bin" } });
    if (process.getuid?.() === 0) {
      await chown(join(dir, "rootfs", "home/app"), 1000, 1000);
      await chown(join(dir, "rootfs", "home/app/.profile"), 1000, 1001);
    }
    const st = await lstat(join(dir, "rootfs", "home/app/.profile"));
    const stage = new DirContext(join(dir, "rootfs"), () => false, { symlinks: "scope" });
    const view = LayerView.empty();
    const out = byPath(await copy(stage, view, ["/home/app", "/bin/tool"], "/dst/"));
    expect(out.get("dst/.profile")).toMatchObject({ uid: st.uid, gid: st.gid });
    expect(out.get("dst/tool")).toMatchObject({ size: 1 });
    const chowned = byPath(await copy(stage, view, ["/home/app"], "/dst/", { chown: { uid: 5, gid: 5 } }));
    expect(chowned.get("dst/.profile")).toMatchObject({ uid: 5, gid: 5 });
  });

  it("a directory source onto an existing file is an error", async () => {
    const { ctx, view } = await setup({ "d/x": "" }, [{ name: "etc/hosts", content: "h" }]);
    await expect(copy(ctx, view, ["d"], "/etc/hosts")).rejects.toThrow(/^cannot copy directory "d" to "\/etc\/hosts": not a directory$/);
  });

  it("content is streamed from the context file", async () => {
    const { ctx, view, dir } = await setup({ "big.bin": "0123456789".repeat(100_000) });
    const [e] = (await copy(ctx, view, ["big.bin"], "/b")).filter((x) => x.type === "file");
    expect(e!.size).toBe((await lstat(join(dir, "ctx", "big.bin"))).size);
    expect((await readEntry(e!)).length).toBe(1_000_000);
  });
});

describe("copyEntries: hard links among the sources", () => {
  it("keeps files linked to one another linked (one carries the content), in a directory and across sources", async () => {
    const { link, mkdir, writeFile: wf } = await import("node:fs/promises");
    const { ctx, view, dir } = await setup({ "d/a": { content: "linked" }, "d/c": { content: "alone" } });
    await link(join(dir, "ctx/d/a"), join(dir, "ctx/d/b"));
    await link(join(dir, "ctx/d/a"), join(dir, "ctx/top"));
    const tree = await copy(ctx, view, ["d"], "/app/");
    const m = byPath(tree);
    expect(m.get("app/a")).toMatchObject({ type: "file", size: 6 });
    expect(m.get("app/b")).toMatchObject({ type: "hardlink", linkname: "app/a", size: 0 });
    expect(m.get("app/c")).toMatchObject({ type: "file", size: 5 });
    // two sources: the second links to where the first was copied
    const two = byPath(await copy(ctx, view, ["d/a", "top"], "/x/"));
    expect(two.get("x/a")).toMatchObject({ type: "file", size: 6 });
    expect(two.get("x/top")).toMatchObject({ type: "hardlink", linkname: "x/a" });
    // a later source overwriting the first copy: the link carries its own content again
    await mkdir(join(dir, "ctx/sub"));
    await wf(join(dir, "ctx/sub/a"), "different");
    const over = byPath(await copy(ctx, view, ["d/a", "top", "sub/"], "/y/"));
    expect(over.get("y/a")).toMatchObject({ type: "file", size: 9 });
    expect(over.get("y/top")).toMatchObject({ type: "file", size: 6 });
    expect(await readEntry(over.get("y/top")!)).toBe("linked");
    const clash = byPath(await copy(ctx, view, ["d/b", "d/a"], "/z/"));
    expect(clash.get("z/b")).toMatchObject({ type: "file", size: 6 });
    expect(clash.get("z/a")).toMatchObject({ type: "hardlink", linkname: "z/b" });
  });
});

describe("copyEntries: extended attributes", () => {
  it("keeps xattrs (file capabilities) of files and directories copied from a root file system, not of context files", async () => {
    const { writeXattrs } = await import("../../src/snapshot/xattr.js");
    const { ctx, view, dir } = await setup({ "bin/ping": { content: "ping" }, "etc/conf": { content: "c" } });
    const cap = Buffer.from("0100000200200000000000000000000000000000", "hex");
    await writeXattrs([
      { path: join(dir, "ctx/bin/ping"), xattrs: { "security.capability": cap } },
      { path: join(dir, "ctx/etc"), xattrs: { "user.kiln": Buffer.from("dir") } },
    ]);
    // the build context: owners and xattrs are not carried
    const fromContext = byPath(await copy(ctx, view, ["bin", "etc"], "/x/"));
    expect(fromContext.get("x/ping")?.xattrs).toBeUndefined();
    // another stage's root file system (owners kept, as COPY --from reads it)
    const stage = new DirContext(join(dir, "ctx"), createIgnoreMatcher([]), { owners: "keep" });
    const fromStage = byPath(await copy(stage, view, ["bin/ping", "etc"], "/y/"));
    expect(fromStage.get("y/ping")?.xattrs).toEqual({ "security.capability": cap });
    expect(fromStage.get("y/conf")?.xattrs).toBeUndefined();
    const dirCopy = byPath(await copy(stage, view, ["etc"], "/z"));
    expect(dirCopy.get("z")?.xattrs).toEqual({ "user.kiln": Buffer.from("dir") });
  });
});
