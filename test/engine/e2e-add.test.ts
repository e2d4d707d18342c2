// End-to-end: ADD of local archives (tar, gzip, bzip2, xz made at test time with tar/bzip2/xz)
// unpacked with their modes, owners and symlinks, and ADD of an http URL served on 127.0.0.1
// (mode 0600, mtime from Last-Modified, --checksum). Checked with umoci and `kiln verify`.
import { mkdir, readFile, symlink, writeFile, chmod } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildLayout } from "../helpers/build.js";
import { mustRun, verify } from "../helpers/kiln.js";
import { serveFiles } from "../helpers/http.js";
import { copyCase, TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";
import { entry, sha256File, walkTree } from "../helpers/tree.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

describe("kiln build: ADD of local archives", () => {
  it("unpacks tar, tar.gz, tar.bz2 and tar.xz; COPY keeps an archive as a file", async () => {
    const ctx = await copyCase(temps, "add-archives");
    const payload = join(ctx, "payload");
    await mkdir(join(payload, "bin"), { recursive: true });
    await mkdir(join(payload, "sub"), { recursive: true });
    await writeFile(join(payload, "hello.txt"), "hello from an archive\n");
    await writeFile(join(payload, "bin/run.sh"), "#!/bin/sh\necho run\n");
    await chmod(join(payload, "bin/run.sh"), 0o755);
    await writeFile(join(payload, "sub/deep.txt"), "deep\n");
    await symlink("hello.txt", join(payload, "link"));
    const own = ["--owner=123", "--group=456", "--numeric-owner", "-C", payload];
    await mustRun("tar", ["-cf", join(ctx, "payload.tar"), ...own, "."]);
    await mustRun("tar", ["-czf", join(ctx, "payload.tar.gz"), ...own, "."]);
    await mustRun("tar", ["-cjf", join(ctx, "payload.tar.bz2"), ...own, "."]);
    await mustRun("tar", ["-cJf", join(ctx, "payload.tar.xz"), ...own, "."]);

    const { layout } = await buildLayout(temps, ctx, ["-t", "arch:latest"]);
    await verify(layout);
    const rootfs = await umociUnpack(temps, layout, "latest");
    const tree = await walkTree(rootfs);
    for (const dir of ["tar", "gz", "bz2", "xz"]) {
      expect(await readFile(join(rootfs, dir, "hello.txt"), "utf8")).toBe("hello from an archive\n");
      expect(entry(tree, `${dir}/hello.txt`)).toMatchObject({ type: "file", mode: 0o644, uid: 123, gid: 456 });
      expect(entry(tree, `${dir}/bin/run.sh`)).toMatchObject({ type: "file", mode: 0o755, uid: 123, gid: 456 });
      expect(entry(tree, `${dir}/sub/deep.txt`)).toMatchObject({ type: "file" });
      expect(entry(tree, `${dir}/link`)).toMatchObject({ type: "symlink", linkname: "hello.txt" });
    }
    expect(entry(tree, "copied/payload.tar.gz")).toMatchObject({
      type: "file",
      sha256: await sha256File(join(ctx, "payload.tar.gz")),
    });
    expect(await readFile(join(rootfs, "plain/plain.txt"), "utf8")).toBe("plain\n");
  });
});

describe("kiln build: ADD <url>", () => {
  it("downloads with mode 0600 and the Last-Modified mtime, and checks --checksum", async () => {
    const lastModified = new Date("2015-10-21T07:28:00Z");
    const server = await serveFiles({ "/file.txt": { body: "downloaded over http\n", lastModified } });
    try {
      const ctx = await copyCase(temps, "add-url");
      const { layout } = await buildLayout(temps, ctx, ["--build-arg", `BASE=${server.url}`, "-t", "url:latest"]);
      await verify(layout);
      expect(server.requests.filter((p) => p === "/file.txt").length).toBeGreaterThanOrEqual(2);
      const rootfs = await umociUnpack(temps, layout, "latest");
      const tree = await walkTree(rootfs);
      for (const name of ["dl/file.txt", "dl/checked.txt"]) {
        expect(await readFile(join(rootfs, name), "utf8")).toBe("downloaded over http\n");
        expect(entry(tree, name)).toMatchObject({ type: "file", mode: 0o600, uid: 0, gid: 0, mtime: lastModified.getTime() / 1000 });
      }
    } finally {
      await server.close();
    }
  });
});
