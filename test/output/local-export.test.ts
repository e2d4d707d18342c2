// `--output type=local,dest=DIR` and `--output type=tar,dest=FILE` (buildx's local exporters):
// the final stage's file system, compared entry by entry (type, mode, owner, size, content, link,
// mtime) with `umoci unpack` of the same image written as an OCI layout by the same build — with
// a whiteout (a base file removed by RUN), owners, a symlink, a hardlink and a setuid file.
// Rewriting DIR replaces its old content whole.
import { afterAll, describe, expect, it } from "vitest";
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { useBusyboxBase } from "../helpers/busybox.js";
import { expectBuilt, kiln, mustRun } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";
import { walkTree, type Tree } from "../helpers/tree.js";

const temps = new TempDirs();
const base = useBusyboxBase();
afterAll(() => temps.cleanup());

const DOCKERFILE = `FROM base
COPY --chown=1000:1000 app /app
RUN rm /etc/group && ln -s /app/data.txt /link && ln /app/data.txt /app/hard.txt \\
 && mkdir -m 0750 /secret && chown 1000:0 /secret && cp /bin/busybox /suid && chmod 4755 /suid
`;

function withoutRoot(t: Tree): Tree {
  const out = new Map(t);
  out.delete("");
  return out;
}

describe("local outputs", () => {
  it("type=local and type=tar hold what umoci unpacks from the same image", async () => {
    const ctx = await temps.make("kiln-local-ctx-");
    await mkdir(join(ctx, "app"));
    await writeFile(join(ctx, "app", "data.txt"), "data\n");
    await writeFile(join(ctx, "Dockerfile"), DOCKERFILE);
    const out = await temps.make("kiln-local-out-");
    const dir = join(out, "fs");
    const tar = join(out, "fs.tar");
    const layout = join(out, "layout");
    const cache = await temps.make("kiln-local-cache-");
    const r = await kiln([
      "build", "--progress", "quiet", "--cache-dir", cache,
      "--build-context", `base=${base().buildContext}`, "-t", "local:1",
      "-o", `type=local,dest=${dir}`, "-o", `type=tar,dest=${tar}`, "-o", `type=oci,dest=${layout}`, ctx,
    ]);
    expectBuilt(r);
    const unpacked = withoutRoot(await walkTree(await umociUnpack(temps, layout, "1")));
    const local = withoutRoot(await walkTree(dir));
    expect(local.get("etc/group")).toBeUndefined();
    expect(local.get("etc/passwd")?.type).toBe("file");
    expect(local.get("app/data.txt")).toMatchObject({ uid: 1000, gid: 1000 });
    expect(local.get("suid")?.mode).toBe(0o4755);
    expect(local.get("secret")).toMatchObject({ mode: 0o750, uid: 1000, gid: 0 });
    expect(local.get("link")).toMatchObject({ type: "symlink", linkname: "/app/data.txt" });
    expect((await stat(join(dir, "app", "hard.txt"))).ino).toBe((await stat(join(dir, "app", "data.txt"))).ino);
    expect(local).toEqual(unpacked);

    const extracted = await temps.make("kiln-local-tar-");
    await mustRun("tar", ["-xpf", tar, "-C", extracted, "--numeric-owner"]);
    expect(withoutRoot(await walkTree(extracted))).toEqual(unpacked);
    expect((await stat(join(extracted, "app", "hard.txt"))).ino).toBe((await stat(join(extracted, "app", "data.txt"))).ino);
    // nothing but the outputs next to them (no temp names left)
    expect((await readdir(out)).sort()).toEqual(["fs", "fs.tar", "layout"]);

    // writing DIR again (the same image: every step cached) replaces what it held
    await writeFile(join(dir, "stale"), "x");
    const again = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--build-context", `base=${base().buildContext}`, "-o", `type=local,dest=${dir}`, ctx]);
    expectBuilt(again);
    expect(withoutRoot(await walkTree(dir))).toEqual(unpacked);
  });

  it("type=local and type=tar need dest (one line, usage error)", async () => {
    for (const spec of ["type=local", "type=tar", "type=tar,dest=-"]) {
      const r = await kiln(["build", "-o", spec, "."]);
      expect(r.code, spec).toBe(2);
      expect(r.stderr.trim().split("\n"), spec).toHaveLength(1);
    }
  });
});
