// End-to-end: where `kiln build` writes and what it records: OCI layout dir and tar, docker
// archive, --format docker media types, tags merged into an existing layout, --iidfile,
// --metadata-file, --label, --annotation, the default ./kiln-out, contexts and Dockerfiles on
// stdin, and reproducible digests with SOURCE_DATE_EPOCH. Checked with skopeo, tar and verify.
import { mkdir, readFile, readdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLayout } from "../helpers/build.js";
import { expectBuilt, kiln, mustRun, verify } from "../helpers/kiln.js";
import { casePath, copyCase, TempDirs } from "../helpers/temp.js";
import { layoutTags, ociRef, readIndex, skopeoInspect, skopeoInspectRef, skopeoRaw, umociUnpack } from "../helpers/tools.js";
import { walkTree } from "../helpers/tree.js";
import { startRegistry } from "../helpers/registry.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

describe("kiln build: several outputs from one build", () => {
  let out = "";
  let digest = "";
  beforeAll(async () => {
    out = await temps.make("kiln-outputs-");
    const r = await kiln([
      "build", "--progress", "quiet", "--cache-dir", join(out, "cache"),
      "-t", "app:one",
      "-o", `type=oci,dest=${join(out, "dir")}`,
      "-o", `type=oci,dest=${join(out, "image.tar")},tar=true`,
      "-o", `type=docker,dest=${join(out, "docker.tar")}`,
      "--iidfile", join(out, "iid"),
      "--metadata-file", join(out, "meta.json"),
      "--label", "extra=1",
      "--annotation", "org.example.note=hi",
      casePath("outputs"),
    ]);
    digest = expectBuilt(r);
  });

  it("writes an OCI layout directory that skopeo and kiln verify accept", async () => {
    await verify(join(out, "dir"));
    const { image, config } = await skopeoInspect(join(out, "dir"), "one");
    expect(image.Digest).toBe(digest);
    expect(config.config?.Labels).toEqual({ variant: "one", extra: "1" });
    expect(config.config?.Cmd).toEqual(["/app"]);
    const raw = await skopeoRaw(ociRef(join(out, "dir"), "one"));
    expect(raw.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(raw.annotations?.["org.example.note"]).toBe("hi");
  });

  it("writes the same image as an OCI layout tar", async () => {
    const { image } = await skopeoInspectRef(`oci-archive:${join(out, "image.tar")}:one`);
    expect(image.Digest).toBe(digest);
    const extracted = join(out, "extracted");
    await mkdir(extracted);
    await mustRun("tar", ["-xf", join(out, "image.tar"), "-C", extracted]);
    await verify(extracted);
  });

  it("writes a docker archive (docker load format)", async () => {
    const file = join(out, "docker.tar");
    const { config, image } = await skopeoInspectRef(`docker-archive:${file}`);
    expect(config.config?.Labels).toEqual({ variant: "one", extra: "1" });
    expect(image.Layers).toHaveLength(1);
    const dir = join(out, "docker-extracted");
    await mkdir(dir);
    await mustRun("tar", ["-xf", file, "-C", dir]);
    const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    expect(manifest).toHaveLength(1);
    expect(manifest[0]?.RepoTags).toEqual(["app:one"]);
    expect(manifest[0]?.Layers).toHaveLength(1);
    const dockerConfig = JSON.parse(await readFile(join(dir, manifest[0]!.Config), "utf8")) as { rootfs: { diff_ids: string[] } };
    const ociConfig = (await skopeoInspect(join(out, "dir"), "one")).config;
    expect(dockerConfig.rootfs.diff_ids).toEqual(ociConfig.rootfs.diff_ids);
    const repositories = JSON.parse(await readFile(join(dir, "repositories"), "utf8")) as Record<string, Record<string, string>>;
    expect(Object.keys(repositories)).toEqual(["app"]);
    expect(Object.keys(repositories.app ?? {})).toEqual(["one"]);
    // Docker 25+ archives are also OCI layouts (index.json + blobs): kiln verify checks that half
    await verify(dir);
  });

  it("writes --iidfile and --metadata-file", async () => {
    expect((await readFile(join(out, "iid"), "utf8")).trim()).toBe(digest);
    const meta = JSON.parse(await readFile(join(out, "meta.json"), "utf8")) as Record<string, unknown>;
    expect(meta["containerimage.digest"]).toBe(digest);
    const raw = await skopeoRaw(ociRef(join(out, "dir"), "one"));
    expect(meta["containerimage.config.digest"]).toBe(raw.config.digest);
    expect(meta["image.name"]).toBe("app:one");
  });
});

describe("kiln build: --format docker", () => {
  it("writes Docker schema2 media types only (seen through a real registry by skopeo)", async () => {
    const registry = await startRegistry();
    try {
      const ref = `${registry.host}/kiln/app:docker`;
      const { layout, digest } = await buildLayout(temps, casePath("outputs"), [
        "--format", "docker", "-t", ref, "--push", "--insecure-registry", registry.host,
      ]);
      await verify(layout);
      // skopeo's oci: transport only reads OCI media types, so read the pushed image instead
      const remote = `docker://${ref}`;
      const text = (await mustRun("skopeo", ["inspect", "--raw", "--tls-verify=false", remote])).stdout;
      const raw = JSON.parse(text) as { mediaType: string; config: { mediaType: string }; layers: Array<{ mediaType: string }> };
      expect(raw.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
      expect(raw.config.mediaType).toBe("application/vnd.docker.container.image.v1+json");
      expect(raw.layers.map((l) => l.mediaType)).toEqual(["application/vnd.docker.image.rootfs.diff.tar.gzip"]);
      expect(text).not.toContain("vnd.oci");
      const inspected = JSON.parse((await mustRun("skopeo", ["inspect", "--tls-verify=false", remote])).stdout) as { Digest: string; Labels: Record<string, string> };
      expect(inspected.Digest).toBe(digest);
      expect(inspected.Labels).toEqual({ variant: "one" });
      // the layout's index names the same schema2 manifest
      const idx = await readIndex(layout);
      expect(idx.manifests.map((m) => [m.mediaType, m.digest])).toEqual([["application/vnd.docker.distribution.manifest.v2+json", digest]]);
    } finally {
      await registry.stop();
    }
  });
});

describe("kiln build: tags in a layout", () => {
  it("-t a -t b names one image twice; a later build replaces b, adds c and keeps a", async () => {
    const out = await temps.make("kiln-tags-");
    const layout = join(out, "layout");
    const first = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "c1"), "-o", `type=oci,dest=${layout}`,
      "-t", "app:a", "-t", "app:b", casePath("outputs")]));
    expect(await layoutTags(layout)).toEqual({ a: first, b: first });
    await verify(layout);

    const second = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "c2"), "-o", `type=oci,dest=${layout}`,
      "--build-arg", "VARIANT=two", "-t", "app:b", "-t", "app:c", casePath("outputs")]));
    expect(second).not.toBe(first);
    expect(await layoutTags(layout)).toEqual({ a: first, b: second, c: second });
    await verify(layout);
    expect((await skopeoInspect(layout, "a")).config.config?.Labels?.variant).toBe("one");
    expect((await skopeoInspect(layout, "b")).config.config?.Labels?.variant).toBe("two");
    expect((await skopeoInspect(layout, "c")).image.Digest).toBe(second);
  });

  it("with no --output writes ./kiln-out in the working directory", async () => {
    const cwd = await temps.make("kiln-cwd-");
    const digest = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", join(cwd, ".cache"), "-t", "app:default", casePath("outputs")], { cwd }));
    await verify(join(cwd, "kiln-out"));
    expect(await layoutTags(join(cwd, "kiln-out"))).toEqual({ default: digest });
  });
});

describe("kiln build: stdin", () => {
  it("reads a tar context from stdin with `kiln build -f Dockerfile -`", async () => {
    const ctx = casePath("stdin");
    const tarball = Buffer.from((await mustRunBinary("tar", ["-C", ctx, "-cf", "-", "."])));
    const out = await temps.make("kiln-stdin-");
    const layout = join(out, "layout");
    expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "c"), "-o", `type=oci,dest=${layout}`, "-t", "s:tar", "-f", "Dockerfile", "-"], { cwd: ctx, input: tarball }));
    await verify(layout);
    const rootfs = await umociUnpack(temps, layout, "tar");
    expect(await readFile(join(rootfs, "data.txt"), "utf8")).toBe("data\n");
    expect(await readFile(join(rootfs, "sub/s.txt"), "utf8")).toBe("s\n");
  });

  it("with `kiln build -`, the Dockerfile comes from the tar, and -f names a file inside it", async () => {
    const ctx = await temps.make("kiln-stdin-tar-");
    await mkdir(join(ctx, "sub"), { recursive: true });
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY data.txt /default.txt\n");
    await writeFile(join(ctx, "sub", "Other.Dockerfile"), "FROM scratch\nCOPY data.txt /other.txt\n");
    await writeFile(join(ctx, "data.txt"), "in the tar\n");
    const tarball = Buffer.from(await mustRunBinary("tar", ["-C", ctx, "-cf", "-", "."]));
    const elsewhere = await temps.make("kiln-stdin-cwd-"); // no Dockerfile here: it must come from the tar
    for (const [args, path] of [[[], "default.txt"], [["-f", "sub/Other.Dockerfile"], "other.txt"]] as const) {
      const layout = join(await temps.make("kiln-stdin-out-"), "layout");
      expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", join(elsewhere, "c"), "-o", `type=oci,dest=${layout}`, "-t", "s:t", ...args, "-"], { cwd: elsewhere, input: tarball }));
      const rootfs = await umociUnpack(temps, layout, "t");
      expect(await readFile(join(rootfs, path), "utf8")).toBe("in the tar\n");
    }
  });

  it("reads the Dockerfile from stdin with `-f -`", async () => {
    const dockerfile = "FROM scratch\nCOPY data.txt /from-stdin-dockerfile.txt\n";
    const { layout } = await buildLayout(temps, casePath("stdin"), ["-f", "-", "-t", "s:df"], { input: dockerfile });
    await verify(layout);
    const rootfs = await umociUnpack(temps, layout, "df");
    const names = (await readdir(rootfs)).sort();
    expect(names).toEqual(["from-stdin-dockerfile.txt"]);
  });
});

describe("kiln build: reproducible with SOURCE_DATE_EPOCH", () => {
  it("gives the same digest when only the context files' mtimes change", async () => {
    const epoch = 1_700_000_000;
    const env = { SOURCE_DATE_EPOCH: String(epoch) };
    const ctx = await copyCase(temps, "reproducible");
    const touch = async (t: number): Promise<void> => {
      for (const f of ["Dockerfile", "y.txt", "src/x.txt", "src"]) await utimes(join(ctx, f), t, t);
    };
    // Both touches are after the epoch: kiln clamps newer mtimes down to it (older ones are kept,
    // as BuildKit does), so the layers must not depend on when the files were written.
    await touch(1_750_000_000);
    const a = await buildLayout(temps, ctx, ["-t", "r:1"], { env });
    await touch(1_800_000_000);
    await writeFile(join(ctx, "y.txt"), "y\n"); // same content, new mtime (now)
    const b = await buildLayout(temps, ctx, ["-t", "r:1"], { env });
    expect(b.digest).toBe(a.digest);
    await verify(b.layout);
    const { config } = await skopeoInspect(b.layout, "1");
    const created = new Date(epoch * 1000).toISOString().replace(/\.000Z$/, "Z");
    expect(config.created).toBe(created);
    for (const h of config.history ?? []) expect(h.created).toBe(created);
    const tree = await walkTree(await umociUnpack(temps, b.layout, "1"));
    for (const [path, e] of tree) if (path !== "") expect(e.mtime, path).toBeLessThanOrEqual(epoch);
  });
});

/** Runs a command and returns its raw stdout bytes. */
async function mustRunBinary(cmd: string, args: string[]): Promise<Buffer> {
  const { spawn } = await import("node:child_process");
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => chunks.push(b));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${cmd} exited ${code}`))));
  });
}
