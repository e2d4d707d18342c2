import { describe, it, expect, afterEach } from "vitest";
import { execFileSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { archiveEntries, detectArchive } from "../../src/context/archive.js";
import { DirContext } from "../../src/context/build-context.js";
import { copyEntries } from "../../src/context/copy-entries.js";
import { selectSources } from "../../src/context/select.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import { LayerView } from "../../src/layer/view.js";
import { byPath, makeTar, readEntry, tempDir, writeTree } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function workspace() {
  const { dir, cleanup } = await tempDir("kiln-arch-");
  cleanups.push(cleanup);
  await writeTree(join(dir, "payload"), {
    "app/bin/run": { content: "#!/bin/sh\n", mode: 0o755, mtime: 1_400_000_000 },
    "app/etc/conf": { content: "k=v\n", mode: 0o600 },
    "app/link": { symlink: "bin/run" },
  });
  const tarFile = join(dir, "ctx", "app.tar");
  execFileSync("mkdir", ["-p", join(dir, "ctx")]);
  execFileSync("tar", ["-C", join(dir, "payload"), "--owner=10", "--group=20", "--numeric-owner", "-cf", tarFile, "app"]);
  execFileSync("sh", ["-c", `cd '${dir}/ctx' && gzip -k -c app.tar > app.tar.gz && bzip2 -k -c app.tar > app.tar.bz2 && xz -k -c app.tar > app.tar.xz && printf 'hello' | gzip -c > notar.gz && printf 'plain' > plain.txt`]);
  return dir;
}

async function collect(it: AsyncIterable<LayerEntry>): Promise<LayerEntry[]> {
  const out: LayerEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe("detectArchive", () => {
  it("recognises tar, gzip, bzip2 and xz tars; a compressed non-tar is not an archive", async () => {
    const dir = await workspace();
    const kind = (f: string) => detectArchive(() => createReadStream(join(dir, "ctx", f)));
    expect(await kind("app.tar")).toBe("tar");
    expect(await kind("app.tar.gz")).toBe("gzip");
    expect(await kind("app.tar.bz2")).toBe("bzip2");
    expect(await kind("app.tar.xz")).toBe("xz");
    expect(await kind("notar.gz")).toBeNull();
    expect(await kind("plain.txt")).toBeNull();
  });
});

describe("archiveEntries", () => {
  for (const [file, kind] of [["app.tar", "tar"], ["app.tar.gz", "gzip"], ["app.tar.bz2", "bzip2"], ["app.tar.xz", "xz"]] as const) {
    it(`unpacks a ${kind} archive under the destination, keeping modes, owners and mtimes`, async () => {
      const dir = await workspace();
      const entries = await collect(
        archiveEntries(() => createReadStream(join(dir, "ctx", file)), kind, "opt", { spoolDir: join(dir, "spool") }),
      );
      const m = byPath(entries);
      expect([...m.keys()].sort()).toEqual(["opt/app", "opt/app/bin", "opt/app/bin/run", "opt/app/etc", "opt/app/etc/conf", "opt/app/link"]);
      expect(m.get("opt/app/bin/run")).toMatchObject({ type: "file", mode: 0o755, uid: 10, gid: 20, mtime: 1_400_000_000, size: 10 });
      expect(m.get("opt/app/etc/conf")).toMatchObject({ mode: 0o600 });
      expect(m.get("opt/app/link")).toMatchObject({ type: "symlink", linkname: "bin/run" });
      expect(await readEntry(m.get("opt/app/bin/run")!)).toBe("#!/bin/sh\n");
    });
  }

  it("absolute names are re-rooted, .. escapes and writes through symlinks are refused", async () => {
    const { dir, cleanup } = await tempDir();
    cleanups.push(cleanup);
    const abs = await makeTar([{ name: "/etc/x", content: "x" }, { name: "h", type: "link", linkname: "/etc/x" }]);
    await writeFile(join(dir, "abs.tar"), abs);
    const got = await collect(archiveEntries(() => createReadStream(join(dir, "abs.tar")), "tar", "dst", { spoolDir: join(dir, "s") }));
    expect(got.map((e) => [e.path, e.type, e.linkname])).toEqual([
      ["dst/etc/x", "file", undefined],
      ["dst/h", "hardlink", "dst/etc/x"],
    ]);
    await writeFile(join(dir, "evil.tar"), await makeTar([{ name: "a/../../x", content: "x" }]));
    await expect(collect(archiveEntries(() => createReadStream(join(dir, "evil.tar")), "tar", "dst", { spoolDir: join(dir, "s") }))).rejects.toThrow(
      // the step adds "Dockerfile:N: ADD:" (DockerfileError.at); the library error is the problem alone
      'archive member "a/../../x" would be written outside the destination',
    );
    await writeFile(join(dir, "sl.tar"), await makeTar([{ name: "l", type: "symlink", linkname: "/etc" }, { name: "l/passwd", content: "x" }]));
    await expect(collect(archiveEntries(() => createReadStream(join(dir, "sl.tar")), "tar", "dst", { spoolDir: join(dir, "s") }))).rejects.toThrow(
      /written through a symlink/,
    );
  });
});

describe("ADD of local archives via copyEntries", () => {
  it("ADD unpacks a local tar.gz; COPY copies it as a file; ADD of a compressed non-tar copies the file", async () => {
    const dir = await workspace();
    const ctx = new DirContext(join(dir, "ctx"));
    const view = LayerView.empty();
    const spoolDir = join(dir, "spool");
    const add = await copyEntries({ kind: "ADD", sources: await selectSources(ctx, ["app.tar.gz"]), dest: "/opt/", workdir: "/", view, spoolDir });
    expect(add.map((e) => e.path)).toEqual(["opt", "opt/app", "opt/app/bin", "opt/app/bin/run", "opt/app/etc", "opt/app/etc/conf", "opt/app/link"]);
    const cp = await copyEntries({ kind: "COPY", sources: await selectSources(ctx, ["app.tar.gz"]), dest: "/opt/", workdir: "/", view, spoolDir });
    expect(cp.map((e) => e.path)).toEqual(["opt", "opt/app.tar.gz"]);
    const raw = await copyEntries({ kind: "ADD", sources: await selectSources(ctx, ["notar.gz"]), dest: "/opt/", workdir: "/", view, spoolDir });
    expect(raw.map((e) => e.path)).toEqual(["opt", "opt/notar.gz"]);
    const chowned = byPath(
      await copyEntries({ kind: "ADD", sources: await selectSources(ctx, ["app.tar.xz"]), dest: "/", workdir: "/", view, spoolDir, chown: { uid: 1, gid: 2 } }),
    );
    expect(chowned.get("app/bin/run")).toMatchObject({ uid: 1, gid: 2 });
  });
});
