// End-to-end: `kiln manifest create` merges two single-platform images built and pushed
// separately (amd64 and arm64, FROM scratch COPY builds) into one index on the real distribution
// registry: per-platform digests equal the sources', blobs are mounted across repositories (the
// registry's access log shows mounts and no upload), skopeo reads it back (`--raw`,
// `--override-arch arm64`); copying to another registry streams and verifies the blobs; an
// OCI layout source and output, --format docker, `manifest inspect` (text and json), and two
// sources for one platform refused naming both; --annotation on the index and its entries (skopeo
// --raw shows them, the children's digests unchanged) and its refused forms; --amend adding to an
// index in the registry and in a layout, replacing a platform's entry.
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectBuilt, kiln, mustRun, verify } from "../helpers/kiln.js";
import { startRegistry, useRegistry, type LocalRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());
const registry = useRegistry();

interface RawIndex {
  mediaType: string;
  manifests: Array<{ mediaType: string; digest: string; size: number; platform?: { os: string; architecture: string; variant?: string }; annotations?: Record<string, string> }>;
  annotations?: Record<string, string>;
}
interface RawManifest {
  config: { digest: string };
  layers: Array<{ digest: string }>;
}

const NO_TLS = ["--tls-verify=false"];

async function rawText(ref: string, extra: string[] = []): Promise<string> {
  return (await mustRun("skopeo", ["inspect", ...NO_TLS, ...extra, "--raw", ref])).stdout;
}
const sha = (s: string): string => `sha256:${createHash("sha256").update(s).digest("hex")}`;

async function context(): Promise<string> {
  const ctx = await temps.make("kiln-manifest-ctx-");
  await mkdir(join(ctx, "files"));
  await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nARG TARGETARCH\nCOPY common.txt /common.txt\nCOPY files/${TARGETARCH}.txt /arch.txt\n");
  await writeFile(join(ctx, "common.txt"), "on every platform\n");
  await writeFile(join(ctx, "files", "amd64.txt"), "x86-64\n");
  await writeFile(join(ctx, "files", "arm64.txt"), "aarch64\n");
  return ctx;
}

/** Build one platform and push it to `ref` as a plain manifest (no default provenance); returns the manifest digest. */
async function buildPush(ctx: string, platform: string, ref: string, extra: string[] = []): Promise<string> {
  const r = await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-manifest-cache-"), "--platform", platform, "--push", "--provenance=false", "-t", ref, ...extra, ctx]);
  return expectBuilt(r);
}

function blobsOf(m: RawManifest): string[] {
  return [m.config.digest, ...m.layers.map((l) => l.digest)];
}

describe("kiln manifest create from two images in the same registry", () => {
  let amd = "";
  let arm = "";
  let ctx = "";
  beforeAll(async () => {
    ctx = await context();
    amd = await buildPush(ctx, "linux/amd64", `${registry().host}/one/amd:1`);
    arm = await buildPush(ctx, "linux/arm64", `${registry().host}/two/arm:1`);
  });

  it("pushes an index whose per-platform digests are the sources', mounting every blob (no upload)", async () => {
    const host = registry().host;
    const before = registry().access().length;
    const r = await kiln(["manifest", "create", "-q", "--cache-dir", await temps.make("kiln-manifest-c-"), "-t", `${host}/multi/app:1`, `${host}/one/amd:1`, `${host}/two/arm:1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const digest = r.stdout.trim();
    const text = await rawText(`docker://${host}/multi/app:1`);
    expect(sha(text)).toBe(digest);
    const index = JSON.parse(text) as RawIndex;
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.manifests.map((m) => [m.platform?.os, m.platform?.architecture, m.digest])).toEqual([
      ["linux", "amd64", amd],
      ["linux", "arm64", arm],
    ]);

    // every blob of both images was mounted from its source repository; none was uploaded
    const blobs = new Set([
      ...blobsOf(JSON.parse(await rawText(`docker://${host}/one/amd:1`)) as RawManifest),
      ...blobsOf(JSON.parse(await rawText(`docker://${host}/two/arm:1`)) as RawManifest),
    ]);
    const during = registry().access().slice(before).filter((a) => a.path.startsWith("/v2/multi/app/blobs/uploads"));
    const mounts = during.filter((a) => a.method === "POST" && a.path.includes("mount=") && a.status === 201);
    expect(new Set(mounts.map((m) => new URLSearchParams(m.path.split("?")[1]).get("mount")))).toEqual(blobs);
    expect(new Set(mounts.map((m) => new URLSearchParams(m.path.split("?")[1]).get("from")))).toEqual(new Set(["one/amd", "two/arm"]));
    expect(during.filter((a) => a.method === "PUT" || a.method === "PATCH")).toEqual([]);

    // skopeo picks the arm64 image from the index: the source's manifest, byte for byte
    const out = join(await temps.make("kiln-manifest-arm-"), "layout");
    await mustRun("skopeo", ["copy", "--src-tls-verify=false", "--override-arch", "arm64", `docker://${host}/multi/app:1`, `oci:${out}:arm`]);
    expect(sha(await rawText(`oci:${out}:arm`))).toBe(arm);
    const cfg = JSON.parse((await mustRun("skopeo", ["inspect", "--config", "--raw", `oci:${out}:arm`])).stdout) as { architecture: string };
    expect(cfg.architecture).toBe("arm64");
  });

  it("prints platforms, digests and sizes with manifest inspect (text and json)", async () => {
    const host = registry().host;
    const cache = await temps.make("kiln-manifest-i-");
    const j = await kiln(["manifest", "inspect", "--format", "json", "--cache-dir", cache, `${host}/multi/app:1`]);
    expect(j.code).toBe(0);
    const info = JSON.parse(j.stdout) as { mediaType: string; digest: string; manifests: Array<{ platform: string; digest: string; size: number; imageSize: number }> };
    expect(info.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(info.digest).toBe(sha(await rawText(`docker://${host}/multi/app:1`)));
    expect(info.manifests.map((m) => [m.platform, m.digest])).toEqual([["linux/amd64", amd], ["linux/arm64", arm]]);
    const armManifest = JSON.parse(await rawText(`docker://${host}/two/arm:1`)) as RawManifest & { config: { size: number }; layers: Array<{ size: number }> };
    expect(info.manifests[1]!.size).toBe(Buffer.byteLength(await rawText(`docker://${host}/two/arm:1`)));
    expect(info.manifests[1]!.imageSize).toBe(armManifest.config.size + armManifest.layers.reduce((n, l) => n + l.size, 0));

    const t = await kiln(["manifest", "inspect", "--cache-dir", cache, `${host}/one/amd:1`]);
    expect(t.code).toBe(0);
    expect(t.stdout).toContain(`Digest:    ${amd}`);
    expect(t.stdout).toMatch(new RegExp(`^linux/amd64\\s+${amd}\\s+\\d+ B\\s+\\d+ B$`, "m"));
  });

  it("copies blobs streamed and verified to another registry, and writes a Docker manifest list with --format docker", async () => {
    const other: LocalRegistry = await startRegistry();
    try {
      const host = registry().host;
      const r = await kiln(["manifest", "create", "-q", "--format", "docker", "--cache-dir", await temps.make("kiln-manifest-x-"), "-t", `${other.host}/copied/app:2`, `${host}/one/amd:1`, `${host}/two/arm:1`]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const index = JSON.parse(await rawText(`docker://${other.host}/copied/app:2`)) as RawIndex;
      expect(index.mediaType).toBe("application/vnd.docker.distribution.manifest.list.v2+json");
      expect(index.manifests.map((m) => m.digest)).toEqual([amd, arm]);
      const uploads = other.access().filter((a) => a.method === "PUT" && a.path.startsWith("/v2/copied/app/blobs/uploads/") && a.status === 201);
      const blobs = new Set([
        ...blobsOf(JSON.parse(await rawText(`docker://${host}/one/amd:1`)) as RawManifest),
        ...blobsOf(JSON.parse(await rawText(`docker://${host}/two/arm:1`)) as RawManifest),
      ]);
      expect(uploads.length).toBe(blobs.size);
      // the copy is whole: skopeo copies the arm64 image out of the second registry
      const out = join(await temps.make("kiln-manifest-y-"), "layout");
      await mustRun("skopeo", ["copy", "--src-tls-verify=false", "--override-arch", "arm64", `docker://${other.host}/copied/app:2`, `oci:${out}:a`]);
    } finally {
      await other.stop();
    }
  });

  it("takes an OCI layout source and writes an OCI layout with --output, then refuses two sources for one platform naming both", async () => {
    const host = registry().host;
    const src = await temps.make("kiln-manifest-src-");
    const built = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-manifest-b-"), "--platform", "linux/arm64", "--label", "from=layout", "-o", `type=oci,dest=${join(src, "arm")}`, "-t", "arm:1", ctx]));
    const out = join(await temps.make("kiln-manifest-out-"), "layout");
    const r = await kiln(["manifest", "create", "-q", "--cache-dir", await temps.make("kiln-manifest-o-"), "--output", `type=oci,dest=${out}`, "-t", "multi:3", `${host}/one/amd:1`, `oci-layout://${join(src, "arm")}:1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    await verify(out);
    const index = JSON.parse(await rawText(`oci:${out}:3`)) as RawIndex;
    expect(index.manifests.map((m) => [m.platform?.architecture, m.digest])).toEqual([["amd64", amd], ["arm64", built]]);
    await mustRun("skopeo", ["copy", "--override-arch", "arm64", `oci:${out}:3`, `oci:${join(out, "..", "x")}:x`]);

    const dup = await kiln(["manifest", "create", "-q", "--cache-dir", await temps.make("kiln-manifest-d-"), "-t", `${host}/dup/app:1`, `${host}/two/arm:1`, `oci-layout://${join(src, "arm")}:1`]);
    expect(dup.code).toBe(1);
    const lines = dup.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("platform linux/arm64 is in two sources");
    expect(lines[0]).toContain(`${host}/two/arm:1`);
    expect(lines[0]).toContain(`oci-layout://${join(src, "arm")}:1`);
  });
});

describe("kiln manifest create --annotation and --amend", () => {
  let amd = "";
  let arm = "";
  let amd2 = "";
  beforeAll(async () => {
    const ctx = await context();
    const host = registry().host;
    amd = await buildPush(ctx, "linux/amd64", `${host}/ann/amd:1`);
    arm = await buildPush(ctx, "linux/arm64", `${host}/ann/arm:1`);
    amd2 = await buildPush(ctx, "linux/amd64", `${host}/ann/amd:2`, ["--label", "rev=2"]);
  });
  const create = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    kiln(["manifest", "create", "-q", "--cache-dir", await temps.make("kiln-manifest-a-"), ...args]);

  it("annotates the index (K=V, index:) and its entries (manifest-descriptor[PLATFORM]:, both at once), the children byte for byte", async () => {
    const host = registry().host;
    const r = await create([
      "-t", `${host}/ann/multi:1`,
      "--annotation", "org.opencontainers.image.title=app",
      "--annotation", "index:org.opencontainers.image.authors=kiln tests",
      "--annotation", "manifest-descriptor:com.example.all=yes",
      "--annotation", "manifest-descriptor[linux/arm64]:com.example.arch=arm",
      "--annotation", "index,manifest-descriptor[linux/amd64]:com.example.both=1",
      `${host}/ann/amd:1`, `${host}/ann/arm:1`,
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const text = await rawText(`docker://${host}/ann/multi:1`);
    expect(sha(text)).toBe(r.stdout.trim());
    const index = JSON.parse(text) as RawIndex;
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.annotations).toEqual({ "org.opencontainers.image.title": "app", "org.opencontainers.image.authors": "kiln tests", "com.example.both": "1" });
    expect(index.manifests.map((m) => [m.digest, m.annotations])).toEqual([
      [amd, { "com.example.all": "yes", "com.example.both": "1" }],
      [arm, { "com.example.all": "yes", "com.example.arch": "arm" }],
    ]);

    // refused forms: usage errors naming them, nothing pushed
    for (const [bad, why] of [["manifest:k=v", "manifest: annotations are not supported"], ["index-descriptor:k=v", "index-descriptor: annotations are not supported"], ["index[linux/amd64]:k=v", "takes no platform"], ["k", "expected [TYPE:]KEY=VALUE"]] as const) {
      const u = await create(["-t", `${host}/ann/refused:1`, "--annotation", bad, `${host}/ann/amd:1`]);
      expect(u.code, bad).toBe(2);
      expect(u.stderr, bad).toContain(why);
    }
    const docker = await create(["-t", `${host}/ann/refused:1`, "--format", "docker", "--annotation", "k=v", `${host}/ann/amd:1`]);
    expect(docker.code).toBe(1);
    expect(docker.stderr).toContain("a Docker manifest list cannot carry annotations");
    expect(registry().access().filter((a) => a.method === "PUT" && a.path.startsWith("/v2/ann/refused/manifests/"))).toEqual([]);
  });

  it("--amend adds to the index in the registry, replacing the entry of a platform given again and keeping its annotations", async () => {
    const host = registry().host;
    const target = `${host}/ann/amended:1`;
    expect((await create(["--amend", "-t", target, "--annotation", "keep=me", `${host}/ann/amd:1`])).code).toBe(0); // no index yet: a new one
    expect((JSON.parse(await rawText(`docker://${target}`)) as RawIndex).manifests.map((m) => m.digest)).toEqual([amd]);
    const added = await create(["--amend", "-t", target, `${host}/ann/arm:1`]);
    expect(added.stderr).toBe("");
    expect(added.code).toBe(0);
    const both = JSON.parse(await rawText(`docker://${target}`)) as RawIndex;
    expect(both.manifests.map((m) => [m.platform?.architecture, m.digest])).toEqual([["amd64", amd], ["arm64", arm]]);
    expect(both.annotations).toEqual({ keep: "me" });
    expect((await create(["--amend", "-t", target, `${host}/ann/amd:2`])).code).toBe(0);
    const replaced = JSON.parse(await rawText(`docker://${target}`)) as RawIndex;
    expect(replaced.manifests.map((m) => [m.platform?.architecture, m.digest])).toEqual([["amd64", amd2], ["arm64", arm]]); // in place, as docker manifest create --amend
    // without --amend the index is made anew
    expect((await create(["-t", target, `${host}/ann/arm:1`])).code).toBe(0);
    expect((JSON.parse(await rawText(`docker://${target}`)) as RawIndex).manifests.map((m) => m.digest)).toEqual([arm]);
  });

  it("--amend adds to the index under -t in an --output layout; tar=true is refused", async () => {
    const host = registry().host;
    const out = join(await temps.make("kiln-manifest-amend-"), "layout");
    expect((await create(["--output", `type=oci,dest=${out}`, "-t", "multi:1", `${host}/ann/amd:1`])).code).toBe(0);
    const r = await create(["--amend", "--output", `type=oci,dest=${out}`, "-t", "multi:1", `${host}/ann/arm:1`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    await verify(out);
    const index = JSON.parse(await rawText(`oci:${out}:1`)) as RawIndex;
    expect(index.manifests.map((m) => [m.platform?.architecture, m.digest])).toEqual([["amd64", amd], ["arm64", arm]]);
    await mustRun("skopeo", ["copy", "--override-arch", "amd64", `oci:${out}:1`, `oci:${join(out, "..", "x")}:x`]);
    const tar = await create(["--amend", "--output", `type=oci,dest=${out}.tar,tar=true`, "-t", "multi:1", `${host}/ann/arm:1`]);
    expect(tar.code).toBe(2);
    expect(tar.stderr).toContain("not a tar (tar=true)");
  });
});
