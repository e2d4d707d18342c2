// End-to-end: `kiln build --platform linux/amd64,linux/arm64` of a FROM-scratch Dockerfile whose
// COPY and ENV use TARGETARCH: the result is an OCI image index (a Docker manifest list with
// --format docker) with one manifest per platform and its `platform` field, in an OCI layout
// directory and tar, pushed to the real distribution registry (platform manifests before the
// index), and the iidfile / metadata file name the index; a FROM --platform=$BUILDPLATFORM stage
// runs natively toward each target, once for all of them unless it declares a TARGET* arg. Checked with skopeo and umoci.
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUSYBOX_BINARY } from "../helpers/busybox.js";
import { expectBuilt, kiln, mustRun, verify } from "../helpers/kiln.js";
import { startRegistry, type LocalRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";
import { skopeoInspectRef, umociUnpack } from "../helpers/tools.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const DOCKERFILE = [
  "FROM scratch",
  "ARG TARGETARCH",
  "ARG TARGETPLATFORM",
  "ARG BUILDARCH",
  "COPY common.txt /common.txt",
  "COPY files/${TARGETARCH}.txt /arch.txt",
  "ENV ARCH=$TARGETARCH PLATFORM=$TARGETPLATFORM BUILT_ON=$BUILDARCH",
  "",
].join("\n");

interface RawIndex {
  schemaVersion: number;
  mediaType: string;
  manifests: Array<{ mediaType: string; digest: string; size: number; platform?: { os: string; architecture: string; variant?: string } }>;
}
interface RawManifest {
  mediaType: string;
  config: { digest: string };
  layers: Array<{ digest: string; mediaType: string }>;
}

async function raw<T>(ref: string, extra: string[] = []): Promise<T> {
  return JSON.parse((await mustRun("skopeo", ["inspect", ...extra, "--raw", ref])).stdout) as T;
}

async function makeContext(): Promise<string> {
  const ctx = await temps.make("kiln-mp-ctx-");
  await mkdir(join(ctx, "files"), { recursive: true });
  await writeFile(join(ctx, "Dockerfile"), DOCKERFILE);
  await writeFile(join(ctx, "common.txt"), "the same on every platform\n");
  await writeFile(join(ctx, "files", "amd64.txt"), "x86-64\n");
  await writeFile(join(ctx, "files", "arm64.txt"), "aarch64\n");
  return ctx;
}

const HOST_ARCH = process.arch === "x64" ? "amd64" : process.arch;

describe("kiln build --platform linux/amd64,linux/arm64: an image index", () => {
  let out = "";
  let ctx = "";
  let digest = "";
  let stderr = "";
  beforeAll(async () => {
    out = await temps.make("kiln-mp-out-");
    ctx = await makeContext();
    const r = await kiln([
      "build", "--progress", "plain", "--cache-dir", join(out, "cache"),
      "--platform", "linux/amd64,linux/arm64/v8",
      "-t", "multi:1",
      "-o", `type=oci,dest=${join(out, "dir")}`,
      "-o", `type=oci,dest=${join(out, "image.tar")},tar=true`,
      "--iidfile", join(out, "iid"),
      "--metadata-file", join(out, "meta.json"),
      ctx,
    ]);
    digest = expectBuilt(r);
    stderr = r.stderr;
  });

  it("writes an index with one manifest per platform, each with its platform field", async () => {
    const index = await raw<RawIndex>(`oci:${join(out, "dir")}:1`);
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.manifests.map((m) => m.platform)).toEqual([
      { os: "linux", architecture: "amd64" },
      { os: "linux", architecture: "arm64" }, // linux/arm64/v8 normalised as containerd does
    ]);
    expect(index.manifests.every((m) => m.mediaType === "application/vnd.oci.image.manifest.v1+json")).toBe(true);
    expect(new Set(index.manifests.map((m) => m.digest)).size).toBe(2);
    // index.json names the index under the tag; the layout verifies end to end.
    const layoutIndex = JSON.parse(await readFile(join(out, "dir", "index.json"), "utf8")) as RawIndex;
    expect(layoutIndex.manifests).toHaveLength(1);
    expect(layoutIndex.manifests[0]).toMatchObject({ mediaType: "application/vnd.oci.image.index.v1+json", digest });
    expect(await verify(join(out, "dir"))).toContain("2 manifest(s)");
    // the tar layout holds the same index
    const fromTar = await raw<RawIndex>(`oci-archive:${join(out, "image.tar")}:1`);
    expect(fromTar.manifests.map((m) => m.digest)).toEqual(index.manifests.map((m) => m.digest));
  });

  it("gives each platform its own TARGETARCH in COPY and ENV, the host's BUILDARCH, and shares the identical layer", async () => {
    const images: Record<string, { env: string[]; layers: string[]; arch: string }> = {};
    for (const arch of ["amd64", "arm64"]) {
      const one = join(await temps.make("kiln-mp-one-"), "layout");
      await mustRun("skopeo", ["copy", "--override-arch", arch, `oci:${join(out, "dir")}:1`, `oci:${one}:x`]);
      const { config, image } = await skopeoInspectRef(`oci:${one}:x`);
      expect(config.architecture).toBe(arch);
      expect(config.os).toBe("linux");
      const rootfs = await umociUnpack(temps, one, "x");
      images[arch] = { env: config.config?.Env ?? [], layers: image.Layers, arch: await readFile(join(rootfs, "arch.txt"), "utf8") };
    }
    expect(images.amd64!.arch).toBe("x86-64\n");
    expect(images.arm64!.arch).toBe("aarch64\n");
    expect(images.amd64!.env).toEqual(expect.arrayContaining(["ARCH=amd64", "PLATFORM=linux/amd64", `BUILT_ON=${HOST_ARCH}`]));
    expect(images.arm64!.env).toEqual(expect.arrayContaining(["ARCH=arm64", "PLATFORM=linux/arm64", `BUILT_ON=${HOST_ARCH}`]));
    // COPY common.txt is byte-identical on both platforms: the same blob; the per-arch COPY is not.
    expect(images.amd64!.layers[0]).toBe(images.arm64!.layers[0]);
    expect(images.amd64!.layers[1]).not.toBe(images.arm64!.layers[1]);
  });

  it("names the index in --iidfile and --metadata-file, and each platform's manifest", async () => {
    expect(await readFile(join(out, "iid"), "utf8")).toBe(digest);
    const meta = JSON.parse(await readFile(join(out, "meta.json"), "utf8")) as Record<string, unknown>;
    expect(meta["containerimage.digest"]).toBe(digest);
    expect(meta["containerimage.descriptor"]).toMatchObject({ mediaType: "application/vnd.oci.image.index.v1+json", digest });
    expect(meta["containerimage.config.digest"]).toBeUndefined();
    const index = await raw<RawIndex>(`oci:${join(out, "dir")}:1`);
    expect(meta["kiln.platforms"]).toEqual([
      expect.objectContaining({ platform: "linux/amd64", digest: index.manifests[0]!.digest }),
      expect.objectContaining({ platform: "linux/arm64", digest: index.manifests[1]!.digest }),
    ]);
    // Cache keys include the platform: the same COPY of the same file has a key per platform.
    const steps = meta["kiln.steps"] as Array<{ instruction: string; key: string; platform?: string }>;
    const common = steps.filter((s) => s.instruction === "COPY common.txt /common.txt");
    expect(common.map((s) => s.platform).sort()).toEqual(["linux/amd64", "linux/arm64"]);
    expect(common[0]!.key).not.toBe(common[1]!.key);
  });

  it("prints each step with its platform, and a rebuild is cached for both platforms with the same index digest", async () => {
    expect(stderr).toMatch(/\[linux\/amd64 stage-0 \d\/7\] COPY common\.txt/);
    expect(stderr).toMatch(/\[linux\/arm64 stage-0 \d\/7\] COPY common\.txt/);
    // the identical COPY common.txt layer is written once: the other platform's step shares it
    expect(stderr.match(/ shared layer /g)).toHaveLength(1);
    const again = await kiln([
      "build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "--platform", "linux/amd64,linux/arm64",
      "-o", `type=oci,dest=${join(out, "again")}`, "--metadata-file", join(out, "meta2.json"), ctx,
    ]);
    expect(expectBuilt(again)).toBe(digest);
    const steps = (JSON.parse(await readFile(join(out, "meta2.json"), "utf8")) as { "kiln.steps": Array<{ cached: boolean }> })["kiln.steps"];
    expect(steps.filter((s) => !s.cached)).toEqual([]);
  });
});

describe("kiln build --platform a,b --push", () => {
  let registry: LocalRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry.stop();
  });

  it("pushes both platform manifests, then the index under the tag; skopeo picks the arm64 image from it", async () => {
    const ctx = await makeContext();
    const ref = `${registry.host}/kiln/multi:1`;
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-mp-cache-"), "--platform", "linux/amd64,linux/arm64", "--push", "--provenance=false", "-t", ref, ctx]);
    const digest = expectBuilt(r);
    const index = await raw<RawIndex>(`docker://${ref}`, ["--tls-verify=false"]);
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.manifests.map((m) => m.platform?.architecture)).toEqual(["amd64", "arm64"]);
    // the tag's manifest is the index kiln printed (its bytes hash to the digest)
    const bytes = (await mustRun("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${ref}`])).stdout;
    expect(`sha256:${createHash("sha256").update(bytes).digest("hex")}`).toBe(digest);

    // the platform manifests were put (by digest) before the index (by tag)
    const puts = registry.access().filter((a) => a.method === "PUT" && a.path.includes("/manifests/"));
    expect(puts.map((p) => p.path.split("/manifests/")[1])).toEqual([index.manifests[0]!.digest, index.manifests[1]!.digest, "1"]);

    const arm = join(await temps.make("kiln-mp-arm-"), "layout");
    await mustRun("skopeo", ["copy", "--src-tls-verify=false", "--override-arch", "arm64", `docker://${ref}`, `oci:${arm}:arm`]);
    const armManifest = await raw<RawManifest>(`oci:${arm}:arm`);
    const { config } = await skopeoInspectRef(`oci:${arm}:arm`);
    expect(config.architecture).toBe("arm64");
    expect(config.config?.Env).toEqual(expect.arrayContaining(["ARCH=arm64"]));
    expect(armManifest.layers).toHaveLength(2);
  });

  it("writes and pushes a Docker manifest list of schema2 manifests with --format docker", async () => {
    const ctx = await makeContext();
    const out = await temps.make("kiln-mp-docker-");
    const ref = `${registry.host}/kiln/multi-docker:1`;
    const r = await kiln([
      "build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "--format", "docker", "--platform", "linux/arm64,linux/amd64",
      "-t", ref, "--push", "-o", `type=oci,dest=${join(out, "dir")}`, ctx,
    ]);
    const digest = expectBuilt(r);
    await verify(join(out, "dir"));
    // skopeo's oci: transport only reads OCI media types, so read the pushed list instead
    const list = await raw<RawIndex>(`docker://${ref}`, ["--tls-verify=false"]);
    expect(list.mediaType).toBe("application/vnd.docker.distribution.manifest.list.v2+json");
    expect(list.manifests.map((m) => [m.mediaType, m.platform?.architecture])).toEqual([
      ["application/vnd.docker.distribution.manifest.v2+json", "arm64"],
      ["application/vnd.docker.distribution.manifest.v2+json", "amd64"],
    ]);
    const layoutIndex = JSON.parse(await readFile(join(out, "dir", "index.json"), "utf8")) as RawIndex;
    expect(layoutIndex.manifests[0]).toMatchObject({ mediaType: "application/vnd.docker.distribution.manifest.list.v2+json", digest });
    const amd = JSON.parse((await mustRun("skopeo", ["inspect", "--tls-verify=false", "--override-arch", "amd64", `docker://${ref}`])).stdout) as { Architecture: string; Digest: string };
    expect(amd).toMatchObject({ Architecture: "amd64", Digest: digest }); // skopeo reports the list's digest
  });
});

describe("FROM --platform", () => {
  it("builds a FROM --platform=$BUILDPLATFORM stage for the host, natively, toward each target", async () => {
    const ctx = await temps.make("kiln-mp-cross-");
    await copyFile(BUSYBOX_BINARY, join(ctx, "busybox"));
    await writeFile(join(ctx, "Dockerfile"), [
      "FROM --platform=$BUILDPLATFORM scratch AS builder",
      "ARG TARGETARCH",
      "COPY --chmod=755 busybox /bin/busybox",
      'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
      'RUN echo "built on $(uname -m) for $TARGETARCH" > /out.txt',
      "FROM scratch",
      "COPY --from=builder /out.txt /out.txt",
      "",
    ].join("\n"));
    const out = await temps.make("kiln-mp-cross-out-");
    const r = await kiln(["build", "--progress", "plain", "--cache-dir", join(out, "cache"), "--platform", "linux/amd64,linux/arm64", "-t", "c:1", "-o", `type=oci,dest=${join(out, "dir")}`, ctx]);
    expectBuilt(r);
    expect(r.stderr).toMatch(/\[linux\/amd64->linux\/arm64 builder 5\/5\] RUN echo/);
    expect(r.stderr).toMatch(/\[linux\/amd64 builder 5\/5\] RUN echo/);
    expect(r.stderr).not.toContain("emulated");
    for (const arch of ["amd64", "arm64"]) {
      const one = join(await temps.make("kiln-mp-cross-one-"), "layout");
      await mustRun("skopeo", ["copy", "--override-arch", arch, `oci:${join(out, "dir")}:1`, `oci:${one}:x`]);
      expect((await skopeoInspectRef(`oci:${one}:x`)).config.architecture).toBe(arch);
      expect(await readFile(join(await umociUnpack(temps, one, "x"), "out.txt"), "utf8")).toBe(`built on x86_64 for ${arch}\n`);
    }
  });

  it("builds a $BUILDPLATFORM stage that declares no TARGET* arg once for both targets, and one that does once per target", async () => {
    const ctx = await temps.make("kiln-mp-once-");
    await copyFile(BUSYBOX_BINARY, join(ctx, "busybox"));
    await writeFile(join(ctx, "Dockerfile"), [
      "FROM --platform=$BUILDPLATFORM scratch AS tools",
      "COPY --chmod=755 busybox /bin/busybox",
      'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
      "FROM --platform=$BUILDPLATFORM tools AS shared",
      'RUN echo "shared on $(uname -m) $$" > /shared.txt',
      "FROM --platform=$BUILDPLATFORM tools AS per",
      "ARG TARGETARCH",
      'RUN echo "per-target $TARGETARCH" > /per.txt',
      "FROM scratch",
      "COPY --from=shared /shared.txt /shared.txt",
      "COPY --from=per /per.txt /per.txt",
      "",
    ].join("\n"));
    const out = await temps.make("kiln-mp-once-out-");
    const r = await kiln(["build", "--progress", "plain", "--cache-dir", join(out, "cache"), "--platform", "linux/amd64,linux/arm64", "-t", "o:1", "-o", `type=oci,dest=${join(out, "dir")}`, ctx]);
    expectBuilt(r);
    const started = (what: RegExp): string[] => r.stderr.split("\n").filter((l) => what.test(l));
    expect(started(/\] RUN \["\/bin\/busybox", "--install"/)).toHaveLength(1);
    expect(started(/\] RUN echo "shared on/)).toHaveLength(1);
    expect(started(/\] RUN echo "per-target/)).toHaveLength(2);
    const files: Record<string, { shared: string; per: string }> = {};
    for (const arch of ["amd64", "arm64"]) {
      const one = join(await temps.make("kiln-mp-once-one-"), "layout");
      await mustRun("skopeo", ["copy", "--override-arch", arch, `oci:${join(out, "dir")}:1`, `oci:${one}:x`]);
      const root = await umociUnpack(temps, one, "x");
      files[arch] = { shared: await readFile(join(root, "shared.txt"), "utf8"), per: await readFile(join(root, "per.txt"), "utf8") };
    }
    // one run: the same shell pid ($$) in both images; the per-target stage saw each TARGETARCH
    expect(files.amd64!.shared).toMatch(/^shared on x86_64 \d+\n$/);
    expect(files.arm64!.shared).toBe(files.amd64!.shared);
    expect([files.amd64!.per, files.arm64!.per]).toEqual(["per-target amd64\n", "per-target arm64\n"]);
  });

  it("gives a FROM --platform=linux/arm64 scratch stage an arm64 config, and refuses an unknown platform naming the line", async () => {
    const ctx = await temps.make("kiln-mp-from-");
    await writeFile(join(ctx, "Dockerfile"), "FROM --platform=linux/arm64 scratch\nCOPY Dockerfile /d\n");
    const out = await temps.make("kiln-mp-from-out-");
    expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "-t", "f:1", "-o", `type=oci,dest=${join(out, "dir")}`, ctx]));
    expect((await skopeoInspectRef(`oci:${join(out, "dir")}:1`)).config.architecture).toBe("arm64");
    await writeFile(join(ctx, "Dockerfile"), "ARG P=linux/amd65\nFROM --platform=$P scratch\nCOPY Dockerfile /d\n");
    const bad = await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "-o", `type=oci,dest=${join(out, "bad")}`, ctx]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe('error: Dockerfile:2: FROM --platform=linux/amd65: unknown architecture in platform "linux/amd65" (known: 386, amd64, arm64, arm, ppc64le, ppc64, s390x, riscv64, mips64le, mips64, mipsle, mips, loong64)');
    expect(existsSync(join(out, "bad"))).toBe(false);
  });
});

describe("kiln build --platform: bad input", () => {
  it("refuses an unknown or malformed platform, and type=docker with several, in one line, exit 2, before any work", async () => {
    const ctx = await makeContext();
    const out = await temps.make("kiln-mp-bad-");
    for (const [args, message] of [
      [["--platform", "linux/amd65"], 'unknown architecture in platform "linux/amd65"'],
      [["--platform", "linux/amd64,windows/amd64"], 'unsupported platform "windows/amd64": kiln builds linux images only'],
      [["--platform", "linux"], 'invalid platform "linux": expected os/arch[/variant]'],
      [["--platform", "linux/amd64,,linux/arm64"], "empty platform in the list"],
      [["--platform", "linux/amd64,linux/arm64", "-o", `type=docker,dest=${join(out, "d.tar")}`], "--output type=docker takes one platform, not 2"],
    ] as const) {
      const r = await kiln(["build", "--progress", "plain", "--cache-dir", join(out, "cache"), "-o", `type=oci,dest=${join(out, "dir")}`, ...args, ctx]);
      expect(r.code, args.join(" ")).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines, args.join(" ")).toHaveLength(1);
      expect(lines[0]).toContain(message);
      expect(existsSync(join(out, "dir")) || existsSync(join(out, "d.tar")) || existsSync(join(out, "cache"))).toBe(false);
    }
  });
});
