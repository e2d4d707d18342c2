// --output ...,compression=zstd|gzip|uncompressed[,compression-level=N][,force-compression=true]
// (src/layer/recompress.ts): the layers the build wrote get the asked media type, base layers
// stay as they are unless forced, diff_ids never change, and real clients read the result
// (kiln verify, skopeo, umoci unpack, podman pull + run from a registry). The build cache keeps
// gzip layers only: a later plain build gives the plain digest, and a zstd rebuild converts nothing new.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkCommandLine } from "../../src/cli/check.js";
import { expectBuilt, kiln, mustRun, run, verify } from "../helpers/kiln.js";
import { useBusyboxBase } from "../helpers/busybox.js";
import { useRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());
const base = useBusyboxBase();
const registry = useRegistry();

const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR = "application/vnd.oci.image.layer.v1.tar";

async function manifestOf(layout: string): Promise<{ layers: Array<{ mediaType: string; digest: string }> }> {
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8"));
  const digest: string = index.manifests[0].digest;
  return JSON.parse(await readFile(join(layout, "blobs", "sha256", digest.slice(7)), "utf8"));
}

async function setup(): Promise<{ ctx: string; cache: string }> {
  const ctx = await temps.make("kiln-zstd-ctx-");
  await writeFile(join(ctx, "Dockerfile"), "FROM base\nCOPY hello.txt /hello.txt\nCOPY big.txt /big.txt\n");
  await writeFile(join(ctx, "hello.txt"), "hello from a zstd layer\n");
  await writeFile(join(ctx, "big.txt"), "kiln ".repeat(200_000));
  return { ctx, cache: await temps.make("kiln-zstd-cache-") };
}

/**
 * Debian's umoci (0.4.7) refuses zstd media types ("blob is not correct mediatype"): skopeo
 * (which reads zstd) copies the layout to a gzip one, checking every blob on the way, and umoci
 * unpacks that.
 */
async function unpackZstd(layout: string, tag: string): Promise<string> {
  const gz = join(await temps.make("kiln-zstd-gz-"), "layout");
  await mustRun("skopeo", ["copy", "--quiet", "--dest-compress-format", "gzip", `oci:${layout}:${tag}`, `oci:${gz}:${tag}`]);
  const copied = await manifestOf(gz);
  expect(new Set(copied.layers.map((l) => l.mediaType))).toEqual(new Set([GZIP]));
  return umociUnpack(temps, gz, tag);
}

function build(cache: string, ctx: string, ...args: string[]): ReturnType<typeof kiln> {
  return kiln(["build", "--progress", "plain", "--cache-dir", cache, "--build-context", `base=${base().buildContext}`, "--build-arg", "SOURCE_DATE_EPOCH=1700000000", ...args, ctx]);
}

describe("output compression", () => {
  it("compression=zstd: new layers zstd, the base layer kept; verify, skopeo and umoci read it; the cache keeps gzip", async () => {
    const { ctx, cache } = await setup();
    const out = join(await temps.make(), "zstd");
    const zDigest = expectBuilt(await build(cache, ctx, "-t", "app:z", "-o", `type=oci,dest=${out},compression=zstd`));
    const m = await manifestOf(out);
    const baseLayers = (await manifestOf(base().layout)).layers;
    expect(m.layers.slice(0, baseLayers.length)).toEqual(baseLayers); // the busybox base's, untouched
    expect(m.layers.slice(baseLayers.length).map((l) => l.mediaType)).toEqual([ZSTD, ZSTD]);
    await verify(out);
    // zstd frames (magic 28 b5 2f fd)
    const blob = await readFile(join(out, "blobs", "sha256", m.layers.at(-1)!.digest.slice(7)));
    expect(blob.subarray(0, 4).toString("hex")).toBe("28b52ffd");
    const rootfs = await unpackZstd(out, "z");
    expect(await readFile(join(rootfs, "hello.txt"), "utf8")).toBe("hello from a zstd layer\n");
    expect((await readFile(join(rootfs, "big.txt"), "utf8")).length).toBe(1_000_000);

    // the same build without compression: gzip layers, the digest of a build that never saw zstd
    const plainOut = join(await temps.make(), "plain");
    const plain = await build(cache, ctx, "-o", `type=oci,dest=${plainOut}`);
    const pDigest = expectBuilt(plain);
    expect(plain.stdout + plain.stderr).toMatch(/CACHED/);
    expect((await manifestOf(plainOut)).layers.slice(baseLayers.length).map((l) => l.mediaType)).toEqual([GZIP, GZIP]);
    const fresh = await temps.make("kiln-zstd-fresh-");
    expect(expectBuilt(await build(fresh, ctx, "-o", `type=oci,dest=${join(fresh, "o")}`))).toBe(pDigest);
    expect(pDigest).not.toBe(zDigest);
    // a zstd rebuild from the cache: the same digest, no new conversion
    const conversions = await readdir(join(cache, "conversions"));
    expect(conversions).toHaveLength(2);
    expect(expectBuilt(await build(cache, ctx, "-o", `type=oci,dest=${join(await temps.make(), "again")},compression=zstd`))).toBe(zDigest);
    expect(await readdir(join(cache, "conversions"))).toEqual(conversions);
    // another level is another blob
    const l19 = expectBuilt(await build(cache, ctx, "-o", `type=oci,dest=${join(await temps.make(), "l19")},compression=zstd,compression-level=19`));
    expect(l19).not.toBe(zDigest);
    expect(await readdir(join(cache, "conversions"))).toHaveLength(4);
  });

  it("force-compression=true converts the base layers too; compression=uncompressed writes plain tars", async () => {
    const { ctx, cache } = await setup();
    const forced = join(await temps.make(), "forced");
    expectBuilt(await build(cache, ctx, "-t", "f:1", "-o", `type=oci,dest=${forced},compression=zstd,force-compression=true`));
    expect(new Set((await manifestOf(forced)).layers.map((l) => l.mediaType))).toEqual(new Set([ZSTD]));
    await verify(forced);
    const rootfs = await unpackZstd(forced, "1");
    expect(await readFile(join(rootfs, "hello.txt"), "utf8")).toBe("hello from a zstd layer\n");
    // an all-zstd image as a base: extracted for RUN, its layers kept as they are in a gzip output
    const next = await temps.make("kiln-zstd-next-");
    await writeFile(join(next, "Dockerfile"), "FROM zbase\nRUN cat /hello.txt > /copied.txt\n");
    const nextOut = join(await temps.make(), "next");
    expectBuilt(await kiln(["build", "--progress", "plain", "--cache-dir", cache, "--build-context", `zbase=oci-layout://${forced}:1`, "-o", `type=oci,dest=${nextOut}`, next]));
    const nextLayers = (await manifestOf(nextOut)).layers;
    expect(nextLayers.slice(0, -1).map((l) => l.mediaType).every((t) => t === ZSTD)).toBe(true);
    expect(nextLayers.at(-1)!.mediaType).toBe(GZIP);
    await verify(nextOut);
    const plain = join(await temps.make(), "tar");
    expectBuilt(await build(cache, ctx, "-t", "u", "-o", `type=oci,dest=${plain},compression=uncompressed`));
    const layers = (await manifestOf(plain)).layers;
    expect(layers.at(-1)!.mediaType).toBe(TAR);
    expect(layers[0]!.mediaType).toBe(GZIP);
    await verify(plain);
    expect(await readFile(join(await umociUnpack(temps, plain, "latest"), "hello.txt"), "utf8")).toBe("hello from a zstd layer\n");
  });

  it("pushed with compression=zstd, podman pulls and runs it", async () => {
    const { ctx, cache } = await setup();
    const ref = `${registry().host}/zstd/app:1`;
    // a plain manifest (the default provenance would make it an index; its layers are the same)
    expectBuilt(await build(cache, ctx, "-o", `type=registry,name=${ref},compression=zstd`, "--provenance=false"));
    const raw = JSON.parse((await mustRun("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`])).stdout);
    expect(raw.layers.at(-1).mediaType).toBe(ZSTD);
    const storage = await temps.make("kiln-zstd-podman-");
    const podman = ["--root", join(storage, "root"), "--runroot", join(storage, "run"), "--storage-driver", "vfs"];
    try {
      await mustRun("podman", [...podman, "pull", "-q", "--tls-verify=false", `docker://${ref}`]);
      const r = await mustRun("podman", [...podman, "run", "--rm", "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "host", ref, "/bin/cat", "/hello.txt"]);
      expect(r.stdout).toBe("hello from a zstd layer\n");
    } finally {
      await run("podman", [...podman, "system", "reset", "-f"]);
    }
  });

  it("zstd with Docker media types, mixed compressions and bad levels are one-line usage errors", async () => {
    const bad: Array<[string[], RegExp]> = [
      [["--format", "docker", "-o", "type=oci,dest=/tmp/x,compression=zstd"], /Docker media types have no zstd layers; use --format oci/],
      [["-o", "type=docker,dest=/tmp/x.tar,compression=zstd"], /Docker media types have no zstd layers/],
      [["-o", "type=oci,dest=/tmp/x,compression=brotli"], /compression must be gzip, zstd or uncompressed, not "brotli"/],
      [["-o", "type=oci,dest=/tmp/x,compression=zstd,compression-level=23"], /compression-level for zstd must be a whole number from 1 to 22/],
      [["-o", "type=oci,dest=/tmp/x,compression=gzip,compression-level=10"], /compression-level for gzip must be a whole number from 0 to 9/],
      [["-o", "type=oci,dest=/tmp/x,compression=zstd", "-o", "type=oci,dest=/tmp/y"], /every image output must use the same compression/],
      [["-o", "type=local,dest=/tmp/x,compression=zstd"], /compression= applies to image outputs/],
    ];
    for (const [args, want] of bad) {
      expect(() => checkCommandLine(["build", ...args, "."]), args.join(" ")).toThrow(want);
    }
    const r = await kiln(["build", "--format", "docker", "-o", "type=oci,dest=/tmp/x,compression=zstd", "."]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(() => checkCommandLine(["build", "-o", "type=oci,dest=/tmp/x,compression=zstd,compression-level=19,force-compression=true", "."])).not.toThrow();
  });
});
