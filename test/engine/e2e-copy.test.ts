// End-to-end: COPY builds checked with umoci (files, modes, owners, symlinks), skopeo and
// `kiln verify`: a base image from an OCI layout made by umoci, --chown by number and by name,
// --chmod, .dockerignore, wildcards, destination rules, --exclude, --parents, --link, context
// symlinks and heredoc files.
import { cp, readFile, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLayout } from "../helpers/build.js";
import { expectBuilt, KILN_BIN, mustRun, verify } from "../helpers/kiln.js";
import { listLayer } from "../helpers/layer-tar.js";
import { casePath, copyCase, TempDirs } from "../helpers/temp.js";
import { skopeoInspect, skopeoRaw, umociUnpack, ociRef } from "../helpers/tools.js";
import { entry, walkTree, type Tree } from "../helpers/tree.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

/** Regular files (not dirs) below `prefix/` in a tree, as paths relative to prefix. */
function filesUnder(tree: Tree, prefix: string): string[] {
  return [...tree.entries()]
    .filter(([p, e]) => p.startsWith(`${prefix}/`) && e.type !== "dir")
    .map(([p]) => p.slice(prefix.length + 1))
    .sort();
}

async function unpackTree(layout: string, tag: string): Promise<{ rootfs: string; tree: Tree }> {
  const rootfs = await umociUnpack(temps, layout, tag);
  return { rootfs, tree: await walkTree(rootfs) };
}

describe("kiln build: FROM an OCI layout (made by umoci) with --chown", () => {
  let baseLayout = "";
  beforeAll(async () => {
    const dir = await temps.make("kiln-umoci-base-");
    baseLayout = join(dir, "layout");
    await mustRun("umoci", ["init", "--layout", baseLayout]);
    await mustRun("umoci", ["new", "--image", `${baseLayout}:base`]);
    // unpack the empty image, add the files, repack (umoci 0.4's `insert` writes a truncated tar)
    const bundle = join(dir, "bundle");
    await mustRun("umoci", ["unpack", "--image", `${baseLayout}:base`, bundle]);
    await cp(join(casePath("base-layout"), "base-rootfs"), join(bundle, "rootfs"), { recursive: true });
    await mustRun("umoci", ["repack", "--image", `${baseLayout}:base`, bundle]);
    await mustRun("umoci", [
      "config", "--image", `${baseLayout}:base`,
      "--config.env=BASEVAR=1", "--config.cmd=/bin/base", "--config.label=base.label=yes",
      "--config.workingdir=/base", "--config.user=app",
    ]);
  });

  it("carries the base config over, keeps base layers byte-identical and resolves owners by name", async () => {
    const base = await skopeoRaw(ociRef(baseLayout, "base"));
    const baseCfg = await skopeoInspect(baseLayout, "base");
    const { layout } = await buildLayout(temps, casePath("base-layout"), [
      "--build-context", `base=oci-layout://${baseLayout}:base`,
      "-t", "child:latest",
    ]);
    await verify(layout);
    const child = await skopeoRaw(ociRef(layout, "latest"));
    expect(child.layers.length).toBe(base.layers.length + 5);
    expect(child.layers.slice(0, base.layers.length)).toEqual(base.layers);

    const { config } = await skopeoInspect(layout, "latest");
    expect(config.rootfs.diff_ids.slice(0, 1)).toEqual(baseCfg.config.rootfs.diff_ids);
    expect(config.config?.Env).toEqual(expect.arrayContaining(["BASEVAR=1", "CHILD=1"]));
    expect(config.config?.Env?.filter((e) => e.startsWith("PATH="))).toHaveLength(1);
    expect(config.config?.Cmd).toEqual(["/bin/base"]);
    expect(config.config?.Labels).toEqual({ "base.label": "yes" });
    expect(config.config?.User).toBe("app");
    expect(config.config?.WorkingDir).toBe("/base");
    // base history first, then one entry per child step
    expect(config.history?.slice(0, baseCfg.config.history?.length).map((h) => h.created_by))
      .toEqual(baseCfg.config.history?.map((h) => h.created_by));
    expect(config.history).toHaveLength((baseCfg.config.history?.length ?? 0) + 6);

    const { rootfs, tree } = await unpackTree(layout, "latest");
    expect(await readFile(join(rootfs, "base.txt"), "utf8")).toBe("base file\n");
    expect(entry(tree, "own/numeric")).toMatchObject({ type: "file", uid: 1001, gid: 1002 });
    expect(entry(tree, "own/user-only")).toMatchObject({ uid: 1234, gid: 2345 });
    expect(entry(tree, "own/user-group")).toMatchObject({ uid: 1234, gid: 3456 });
    expect(entry(tree, "own/group-only")).toMatchObject({ uid: 0, gid: 3456 });
    expect(entry(tree, "own/dir/inner.txt")).toMatchObject({ type: "file", uid: 1234, gid: 2345 });
    // --chown does not touch the base's own files
    expect(entry(tree, "etc/passwd")).toMatchObject({ uid: 0, gid: 0 });
  });
});

describe("kiln build: COPY --chmod", () => {
  it("applies octal and symbolic modes", async () => {
    const { layout } = await buildLayout(temps, casePath("chmod"), ["-t", "chmod:latest"]);
    await verify(layout);
    const { tree } = await unpackTree(layout, "latest");
    expect(entry(tree, "oct")).toMatchObject({ type: "file", mode: 0o640 });
    expect(entry(tree, "oct3")).toMatchObject({ type: "file", mode: 0o755 });
    expect(entry(tree, "sym")).toMatchObject({ type: "file", mode: 0o750 });
    expect(entry(tree, "sym-rel")).toMatchObject({ type: "file", mode: 0o744 });
    expect(entry(tree, "dirmode/inner.txt")).toMatchObject({ type: "file", mode: 0o700 });
  });
});

describe("kiln build: .dockerignore", () => {
  it("excludes with *, ** and ! exceptions", async () => {
    const { layout } = await buildLayout(temps, casePath("dockerignore"), ["-t", "ign:latest"]);
    await verify(layout);
    const { tree } = await unpackTree(layout, "latest");
    expect(filesUnder(tree, "ctx")).toEqual([
      ".dockerignore",
      "Dockerfile",
      "alt.Dockerfile",
      "alt.Dockerfile.dockerignore",
      "deep/x/y/real.txt",
      "keep.txt",
      "logs/keep.log",
      "logs/notes.txt",
    ]);
  });

  it("uses <Dockerfile>.dockerignore next to the Dockerfile instead of .dockerignore", async () => {
    const ctx = casePath("dockerignore");
    const { layout } = await buildLayout(temps, ctx, ["-f", join(ctx, "alt.Dockerfile"), "-t", "ign:alt"]);
    await verify(layout);
    const { tree } = await unpackTree(layout, "alt");
    const files = filesUnder(tree, "ctx");
    expect(files).not.toContain("keep.txt");
    expect(files).toEqual(expect.arrayContaining(["secret.key", "logs/a.log", "top.bak", "node_modules/pkg/index.js"]));
  });
});

describe("kiln build: COPY sources and destinations", () => {
  it("expands wildcard sources (*, ?, [classes])", async () => {
    const { layout } = await buildLayout(temps, casePath("wildcards"), ["-t", "wild:latest"]);
    await verify(layout);
    const { tree } = await unpackTree(layout, "latest");
    expect(filesUnder(tree, "txt")).toEqual(["one.txt", "two.txt"]);
    expect(filesUnder(tree, "js")).toEqual(["main.js", "util.js"]);
    expect(filesUnder(tree, "q")).toEqual(["file1.md", "file2.md"]);
    expect(filesUnder(tree, "cls")).toEqual(["a.cfg", "b2.cfg"]);
  });

  it("follows Docker's destination rules", async () => {
    const { layout } = await buildLayout(temps, casePath("dest-rules"), ["-t", "dest:latest"]);
    await verify(layout);
    const { rootfs, tree } = await unpackTree(layout, "latest");
    expect(entry(tree, "file-dest")).toMatchObject({ type: "file" });
    expect(await readFile(join(rootfs, "file-dest"), "utf8")).toBe("A\n");
    expect(entry(tree, "dir-dest")).toMatchObject({ type: "dir" });
    expect(filesUnder(tree, "dir-dest")).toEqual(["a.txt"]);
    expect(filesUnder(tree, "multi")).toEqual(["a.txt", "b.txt"]);
    expect(filesUnder(tree, "work/rel")).toEqual(["a.txt"]);
    expect(entry(tree, "work/deep/missing/parents/x.txt")).toMatchObject({ type: "file" });
    expect(entry(tree, "work/deep/missing")).toMatchObject({ type: "dir", mode: 0o755 });
    // a directory source copies its contents, not the directory itself
    expect(filesUnder(tree, "dircopy")).toEqual(["inner.txt", "sub/s.txt"]);
    expect(filesUnder(tree, "dircopy2")).toEqual(["inner.txt", "sub/s.txt"]);
    expect(await readFile(join(rootfs, "work/a.txt"), "utf8")).toBe("A\n");
    expect(entry(tree, "work/a.txt")).toMatchObject({ mode: 0o644, uid: 0, gid: 0 });
    // the destination is expanded with the stage's ENV
    expect(filesUnder(tree, "expanded/sub")).toEqual(["a.txt"]);
  });

  it("--exclude skips matches and --parents keeps source directories", async () => {
    const { layout } = await buildLayout(temps, casePath("exclude-parents"), ["-t", "ep:latest"]);
    await verify(layout);
    const { tree } = await unpackTree(layout, "latest");
    expect(filesUnder(tree, "logs")).toEqual(["keep.txt", "sub/s.txt"]);
    expect(filesUnder(tree, "p")).toEqual(["a/b/c.txt", "x/y.txt"]);
    expect(filesUnder(tree, "gp")).toEqual(["src/one/main.txt", "src/two/main.txt"]);
  });

  it("copies context symlinks as symlinks; a symlink named as the source is followed", async () => {
    const ctx = await copyCase(temps, "symlinks");
    await symlink("target.txt", join(ctx, "link-rel"));
    await symlink("/etc/passwd", join(ctx, "link-abs"));
    await symlink("subdir", join(ctx, "dir-link"));
    await symlink("missing", join(ctx, "dangling"));
    const { layout } = await buildLayout(temps, ctx, ["-t", "sym:latest"]);
    await verify(layout);
    const { rootfs, tree } = await unpackTree(layout, "latest");
    expect(entry(tree, "s/link-rel")).toMatchObject({ type: "symlink", linkname: "target.txt" });
    expect(entry(tree, "s/link-abs")).toMatchObject({ type: "symlink", linkname: "/etc/passwd" });
    expect(entry(tree, "s/dir-link")).toMatchObject({ type: "symlink", linkname: "subdir" });
    expect(entry(tree, "s/dangling")).toMatchObject({ type: "symlink", linkname: "missing" });
    expect(entry(tree, "s/subdir/f.txt")).toMatchObject({ type: "file" });
    expect(entry(tree, "followed.txt")).toMatchObject({ type: "file" });
    expect(await readFile(join(rootfs, "followed.txt"), "utf8")).toBe("T\n");
  });
});

describe("kiln build: COPY --link", () => {
  it("writes a layer that does not depend on the layers below it", async () => {
    const ctx = casePath("link");
    const env = { SOURCE_DATE_EPOCH: "1700000000" };
    const a = await buildLayout(temps, ctx, ["-t", "link:a"], { env });
    const b = await buildLayout(temps, ctx, ["-f", join(ctx, "other.Dockerfile"), "-t", "link:b"], { env });
    await verify(a.layout);
    await verify(b.layout);
    const ma = await skopeoRaw(ociRef(a.layout, "a"));
    const mb = await skopeoRaw(ociRef(b.layout, "b"));
    expect(ma.layers).toHaveLength(2);
    expect(mb.layers).toHaveLength(3);
    expect(ma.layers[0]?.digest).not.toBe(mb.layers[0]?.digest);
    expect(ma.layers.at(-1)).toEqual(mb.layers.at(-1));
    // the --link layer holds only what the step copied (tar lists it independently)
    const blob = join(a.layout, "blobs", "sha256", ma.layers.at(-1)!.digest.slice("sha256:".length));
    const listing = (await mustRun("tar", ["-tzf", blob])).stdout.split("\n").filter(Boolean).map((p) => p.replace(/^\.?\//, "").replace(/\/$/, ""));
    expect(listing.sort()).toEqual(["linked", "linked/a.txt"]);
    const { rootfs } = await unpackTree(a.layout, "a");
    expect(await readFile(join(rootfs, "linked/a.txt"), "utf8")).toBe("a\n");
    expect(await readFile(join(rootfs, "before/b.txt"), "utf8")).toBe("b\n");
  });
});

describe("kiln build: heredoc files", () => {
  it("expands variables unless the delimiter is quoted; several heredocs into a directory", async () => {
    const { layout } = await buildLayout(temps, casePath("heredoc"), ["-t", "hd:latest"]);
    await verify(layout);
    const { rootfs, tree } = await unpackTree(layout, "latest");
    expect(await readFile(join(rootfs, "etc/expanded.conf"), "utf8")).toBe("greeting=hello world\n");
    expect(await readFile(join(rootfs, "etc/quoted.conf"), "utf8")).toBe("greeting=${GREETING} $NAME\n");
    expect(await readFile(join(rootfs, "multi/one.txt"), "utf8")).toBe("first\n");
    expect(await readFile(join(rootfs, "multi/two.txt"), "utf8")).toBe("second\n");
    expect(entry(tree, "etc/expanded.conf")).toMatchObject({ type: "file", mode: 0o644, uid: 0, gid: 0 });
  });
});

describe("kiln build: a large file", () => {
  it("COPY streams it: peak RSS stays well below the file's size", async () => {
    const size = 384 * 1024 * 1024;
    const ctx = await copyCase(temps, "large-file");
    await writeFile(join(ctx, "big.bin"), "");
    await truncate(join(ctx, "big.bin"), size);
    const out = await temps.make("kiln-big-");
    const layout = join(out, "layout");
    const r = await mustRun("/usr/bin/time", ["-v", "-o", join(out, "time.txt"), process.execPath, KILN_BIN,
      "build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "-o", `type=oci,dest=${layout}`, "-t", "big:latest", ctx]);
    expectBuilt(r);
    const peakKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(await readFile(join(out, "time.txt"), "utf8"))?.[1]);
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB / 1024).toBeLessThan(250);
    await verify(layout);
    const manifest = await skopeoRaw(ociRef(layout, "latest"));
    const entries = await listLayer(join(layout, "blobs", "sha256", manifest.layers[0]!.digest.slice("sha256:".length)));
    expect(entries.filter((e) => e.type === "file").map((e) => [e.name.replace(/^\.?\//, ""), e.size])).toEqual([["big.bin", size]]);
  });
});

describe("kiln build: COPY keeps hard links among the copied files", () => {
  it("a linked pair in the context is one inode in the image; a separate copy stays separate", async () => {
    const { link, mkdir } = await import("node:fs/promises");
    const { lstat } = await import("node:fs/promises");
    const ctx = await temps.make("kiln-copy-links-");
    await mkdir(join(ctx, "d"));
    await writeFile(join(ctx, "d", "a"), "linked\n");
    await link(join(ctx, "d", "a"), join(ctx, "d", "b"));
    await writeFile(join(ctx, "d", "c"), "linked\n");
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY d /app/\n");
    const { layout } = await buildLayout(temps, ctx, ["-t", "links:latest"]);
    await verify(layout);
    const { rootfs } = await unpackTree(layout, "latest");
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((n) => lstat(join(rootfs, "app", n))));
    expect(a!.ino).toBe(b!.ino);
    expect(a!.nlink).toBe(2);
    expect(c!.ino).not.toBe(a!.ino);
    expect(await readFile(join(rootfs, "app", "b"), "utf8")).toBe("linked\n");
  });
});
