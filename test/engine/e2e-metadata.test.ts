// End-to-end: `kiln build` of scratch and metadata-only Dockerfiles, checked with skopeo (config),
// umoci (files) and `kiln verify`: default PATH, ENV/LABEL/EXPOSE/VOLUME/USER/WORKDIR/CMD/
// ENTRYPOINT/STOPSIGNAL/HEALTHCHECK/SHELL/ONBUILD, history entries, --target, --platform.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildLayout } from "../helpers/build.js";
import { kiln, verify } from "../helpers/kiln.js";
import { casePath, TempDirs } from "../helpers/temp.js";
import { skopeoInspect, umociUnpack, type InspectedConfig } from "../helpers/tools.js";
import { entry, walkTree } from "../helpers/tree.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const hostArch = process.arch === "x64" ? "amd64" : process.arch;

function layersInHistory(cfg: InspectedConfig): number {
  return (cfg.history ?? []).filter((h) => !h.empty_layer).length;
}

describe("kiln build: FROM scratch", () => {
  it("gives the image Docker's default PATH, the host platform and one layer per COPY", async () => {
    const { layout, digest } = await buildLayout(temps, casePath("scratch-path"), ["-t", "scratch:latest"]);
    await verify(layout);
    const { config, image } = await skopeoInspect(layout, "latest");
    expect(image.Digest).toBe(digest);
    expect(config.os).toBe("linux");
    expect(config.architecture).toBe(hostArch);
    expect(config.config?.Env).toEqual([DEFAULT_PATH]);
    // BuildKit's empty image sets WorkingDir "/" (dockerfile2llb emptyImage)
    expect(config.config?.WorkingDir).toBe("/");
    expect(config.rootfs.diff_ids).toHaveLength(1);
    expect(image.Layers).toHaveLength(1);
    expect(config.history).toHaveLength(1);
    expect(config.history?.[0]?.created_by).toContain("COPY hello.txt /hello.txt");
    expect(layersInHistory(config)).toBe(1);
    const rootfs = await umociUnpack(temps, layout, "latest");
    expect(await readFile(join(rootfs, "hello.txt"), "utf8")).toBe("hello from scratch\n");
    const tree = await walkTree(rootfs);
    expect(entry(tree, "hello.txt")).toMatchObject({ type: "file", mode: 0o644, uid: 0, gid: 0 });
    expect([...tree.keys()].sort()).toEqual(["", "hello.txt"]);
  });
});

describe("kiln build: metadata steps", () => {
  it("records ENV, LABEL, EXPOSE ranges, VOLUME, USER, WORKDIR, CMD, STOPSIGNAL and HEALTHCHECK", async () => {
    const { layout } = await buildLayout(temps, casePath("metadata"), ["--target", "parent", "-t", "meta:parent"]);
    await verify(layout);
    const { config } = await skopeoInspect(layout, "parent");
    const c = config.config!;
    expect(c.Env).toEqual([DEFAULT_PATH, "A=1", "B=two words", "C=1-x"]);
    expect(c.Labels).toEqual({ "com.example.name": "kiln test", other: "x" });
    expect(c.ExposedPorts).toEqual({ "80/tcp": {}, "8000/udp": {}, "8001/udp": {}, "8002/udp": {} });
    expect(c.Volumes).toEqual({ "/data": {}, "/cache": {} });
    expect(c.User).toBe("1000:1000");
    expect(c.WorkingDir).toBe("/srv/app");
    expect(c.Cmd).toEqual(["parent-cmd", "--flag"]);
    // as BuildKit's dispatchCmd sets it for every CMD
    expect(c.ArgsEscaped).toBe(true);
    expect(c.Entrypoint ?? null).toBeNull();
    expect(c.StopSignal).toBe("SIGTERM");
    expect(c.Healthcheck).toEqual({
      Test: ["CMD", "/bin/check", "-q"],
      Interval: 30_000_000_000,
      Timeout: 3_000_000_000,
      StartPeriod: 90_000_000_000,
      Retries: 4,
    });

    // History: one entry per step; only WORKDIR (which creates /srv/app) wrote a layer.
    const history = config.history ?? [];
    expect(history).toHaveLength(10);
    const nonEmpty = history.filter((h) => !h.empty_layer);
    expect(nonEmpty).toHaveLength(1);
    expect(nonEmpty[0]?.created_by).toContain("WORKDIR /srv/app");
    expect(config.rootfs.diff_ids).toHaveLength(1);
    for (const h of history.filter((x) => x.empty_layer)) {
      expect(h.created_by).toMatch(/^(ENV|LABEL|EXPOSE|VOLUME|USER|CMD|STOPSIGNAL|HEALTHCHECK)\b/);
    }

    // WORKDIR made the directory (and its parent) in a layer, owned by the USER in force.
    const rootfs = await umociUnpack(temps, layout, "parent");
    const tree = await walkTree(rootfs);
    expect(entry(tree, "srv")).toMatchObject({ type: "dir" });
    expect(entry(tree, "srv/app")).toMatchObject({ type: "dir", mode: 0o755, uid: 1000, gid: 1000 });
  });

  it("ENTRYPOINT in a child stage resets the CMD it inherited", async () => {
    const { layout } = await buildLayout(temps, casePath("metadata"), ["--target", "entry", "-t", "meta:entry"]);
    await verify(layout);
    const { config } = await skopeoInspect(layout, "entry");
    expect(config.config?.Entrypoint).toEqual(["/bin/app"]);
    expect(config.config?.Cmd ?? null).toBeNull();
    // everything else is inherited from the parent stage
    expect(config.config?.User).toBe("1000:1000");
    expect(config.config?.Labels?.other).toBe("x");
    expect(config.history?.at(-1)).toMatchObject({ empty_layer: true });
    expect(config.history?.at(-1)?.created_by).toContain("ENTRYPOINT");
  });

  it("SHELL changes how a later shell-form CMD is wrapped", async () => {
    const { layout } = await buildLayout(temps, casePath("metadata"), ["--target", "shelled", "-t", "meta:shelled"]);
    await verify(layout);
    const { config } = await skopeoInspect(layout, "shelled");
    expect(config.config?.Shell).toEqual(["/bin/bash", "-ec"]);
    expect(config.config?.Cmd).toEqual(["/bin/bash", "-ec", 'echo "$A" done']);
  });
});

describe("kiln build: ONBUILD", () => {
  it("stores triggers in the parent and runs them (then clears them) in a child", async () => {
    const parent = await buildLayout(temps, casePath("onbuild"), ["-t", "onbuild:parent"]);
    await verify(parent.layout);
    const p = await skopeoInspect(parent.layout, "parent");
    expect(p.config.config?.OnBuild).toEqual(["COPY onbuild.txt /from-onbuild.txt", "ENV TRIGGERED=yes"]);
    expect(p.config.rootfs.diff_ids).toHaveLength(0);

    const child = await buildLayout(temps, casePath("onbuild"), [
      "-f", join(casePath("onbuild"), "child.Dockerfile"),
      "--build-context", `base=oci-layout://${parent.layout}:parent`,
      "-t", "onbuild:child",
    ]);
    await verify(child.layout);
    const c = await skopeoInspect(child.layout, "child");
    expect(c.config.config?.OnBuild ?? []).toEqual([]);
    expect(c.config.config?.Env).toContain("TRIGGERED=yes");
    expect(c.config.config?.Labels).toEqual({ child: "1" });
    expect(c.config.config?.Cmd).toEqual(["parent"]);
    expect(c.config.rootfs.diff_ids).toHaveLength(1);
    const rootfs = await umociUnpack(temps, child.layout, "child");
    expect(await readFile(join(rootfs, "from-onbuild.txt"), "utf8")).toBe("copied by a trigger\n");
  });
});

describe("kiln build: multi-stage", () => {
  it("--target builds only the stages it needs; COPY --from by name and by index", async () => {
    const { layout } = await buildLayout(temps, casePath("multistage"), ["--target", "final", "-t", "ms:final"]);
    await verify(layout);
    const rootfs = await umociUnpack(temps, layout, "final");
    const tree = await walkTree(rootfs);
    expect(await readFile(join(rootfs, "by-name.txt"), "utf8")).toBe("a\n");
    expect(entry(tree, "by-index")).toMatchObject({ type: "dir" });
    expect(await readFile(join(rootfs, "by-index/a.txt"), "utf8")).toBe("a\n");
    expect(await readFile(join(rootfs, "by-index/b.txt"), "utf8")).toBe("b\n");
    const { config } = await skopeoInspect(layout, "final");
    expect(config.rootfs.diff_ids).toHaveLength(2);
    expect(layersInHistory(config)).toBe(2);
  });

  it("the unused stage really would fail (so the test above proves it was skipped)", async () => {
    const out = await temps.make();
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "c"), "--target", "broken", "-o", `type=oci,dest=${join(out, "l")}`, casePath("multistage")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: Dockerfile:8: /);
  });
});

describe("kiln build: --platform", () => {
  it("sets the config's os/architecture and the TARGET* args", async () => {
    const { layout } = await buildLayout(temps, casePath("platform"), ["--platform", "linux/arm64", "-t", "plat:arm64"]);
    await verify(layout);
    const { config, image } = await skopeoInspect(layout, "arm64");
    expect(config.os).toBe("linux");
    expect(config.architecture).toBe("arm64");
    expect(image.Architecture).toBe("arm64");
    expect(config.config?.Env).toEqual(expect.arrayContaining(["ARCH=arm64", "OS=linux", "PLAT=linux/arm64"]));
  });
});
