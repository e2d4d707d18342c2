// Named build contexts (`--build-context NAME=DIR`): COPY --from=NAME reads the directory (with
// its own .dockerignore), and FROM NAME of a directory is a clear error naming the line.
import { afterAll, describe, expect, it } from "vitest";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildLayout } from "../helpers/build.js";
import { kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

describe("named build contexts", () => {
  it("COPY --from=NAME reads a directory context, honouring its .dockerignore", async () => {
    const root = await temps.make("kiln-named-");
    const ctx = join(root, "ctx");
    const extra = join(root, "extra");
    await mkdir(ctx);
    await mkdir(extra);
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY --from=extra . /extra/\n");
    await writeFile(join(extra, "kept.txt"), "kept\n");
    await writeFile(join(extra, "secret.key"), "not copied\n");
    await writeFile(join(extra, ".dockerignore"), "*.key\n");
    const { layout } = await buildLayout(temps, ctx, ["--build-context", `extra=${extra}`, "-t", "n:1"]);
    const rootfs = await umociUnpack(temps, layout, "1");
    expect(await readFile(join(rootfs, "extra", "kept.txt"), "utf8")).toBe("kept\n");
    await expect(readFile(join(rootfs, "extra", "secret.key"))).rejects.toThrow();
  });

  it("FROM a directory context is one error line naming the FROM", async () => {
    const root = await temps.make("kiln-named-from-");
    await writeFile(join(root, "Dockerfile"), "FROM scratch AS x\n\nFROM extra\n");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", join(root, "c"), "--build-context", `extra=${root}`, "-o", `type=oci,dest=${join(root, "out")}`, root]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^error: Dockerfile:3: FROM: build context "extra" is a local directory/);
  });
});
