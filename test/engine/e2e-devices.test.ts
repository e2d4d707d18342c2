// Base layers with device nodes where mknod is refused (a root pod without CAP_MKNOD; issue #12):
// kiln, run as root with CAP_MKNOD dropped from its bounding set, extracts the base without the
// nodes (a warning each), reuses the base layers byte for byte, and the RUN's layer holds only
// what the RUN did — no whiteout or change for the nodes that are not on disk — exactly as a
// build with CAP_MKNOD makes it.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeTar } from "../snapshot/helpers.js";
import { writeHandLayout } from "../helpers/hand-layout.js";
import { expectBuilt, run, KILN_BIN } from "../helpers/kiln.js";
import { listLayer } from "../helpers/layer-tar.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

async function manifestLayers(layout: string): Promise<string[]> {
  const blob = (d: string) => join(layout, "blobs", "sha256", d.slice("sha256:".length));
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
  const m = JSON.parse(await readFile(blob(index.manifests[0]!.digest), "utf8")) as { layers: Array<{ digest: string }> };
  return m.layers.map((l) => l.digest);
}

describe("kiln build: device nodes in a base layer when mknod is refused", () => {
  it("skips the nodes on disk, keeps them in the layers, and the RUN layer does not mention them", async () => {
    const dir = await temps.make("kiln-devices-");
    const base = await writeHandLayout(join(dir, "base"), [
      makeTar([
        { name: "bin/", type: "dir" },
        { name: "bin/busybox", content: await readFile("/bin/busybox"), mode: 0o755 },
        { name: "bin/sh", type: "symlink", linkname: "busybox" },
      ]),
      makeTar([
        { name: "dev/", type: "dir" },
        { name: "dev/sda", type: "block", devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
        { name: "dev/kmsg", type: "char", devmajor: 1, devminor: 11, mode: 0o644 },
        { name: "keep/", type: "dir" },
        { name: "keep/loop9", type: "block", devmajor: 7, devminor: 9, mode: 0o660 },
      ]),
    ]);
    const ctx = join(dir, "ctx");
    await mkdir(ctx);
    await writeFile(join(ctx, "Dockerfile"), "FROM base\nRUN echo hi > /hello && ls /keep > /listed\n");
    const build = async (name: string, dropMknod: boolean) => {
      const layout = join(dir, `out-${name}`);
      const args = [KILN_BIN, "build", "--progress", "plain", "--isolation", "chroot", "--cache-dir", join(dir, `cache-${name}`), "--build-context", `base=${base.ref}`, "-o", `type=oci,dest=${layout}`, "-t", "d:latest", ctx];
      const r = dropMknod
        ? await run("setpriv", ["--bounding-set", "-mknod", "--", process.execPath, ...args], { env: { SOURCE_DATE_EPOCH: "1700000000" } })
        : await run(process.execPath, args, { env: { SOURCE_DATE_EPOCH: "1700000000" } });
      expectBuilt(r);
      return { layout, stderr: r.stderr };
    };
    const refused = await build("nomknod", true);
    expect(refused.stderr).toContain(`skipped block-device "dev/sda" (mknod refused: no CAP_MKNOD); it stays in the layer`);
    expect(refused.stderr).toContain(`skipped character-device "dev/kmsg"`);
    const layers = await manifestLayers(refused.layout);
    expect(layers.slice(0, 2)).toEqual(base.layers); // base layers byte for byte
    const runLayer = await listLayer(join(refused.layout, "blobs", "sha256", layers[2]!.slice(7)));
    expect(runLayer.map((e) => e.name)).toEqual(["hello", "listed"]);
    expect(await listLayer(join(refused.layout, "blobs", "sha256", base.layers[1]!.slice(7)))).toContainEqual(expect.objectContaining({ name: "dev/sda", type: "block-device" }));
    // the same build with CAP_MKNOD (the nodes on disk) gives the same layers
    const normal = await build("mknod", false);
    expect(normal.stderr).not.toContain("mknod refused");
    const normalLayers = await manifestLayers(normal.layout);
    expect(normalLayers.slice(0, 2)).toEqual(base.layers);
    expect((await listLayer(join(normal.layout, "blobs", "sha256", normalLayers[2]!.slice(7)))).map((e) => e.name)).toEqual(["hello", "listed"]);
  });
});
