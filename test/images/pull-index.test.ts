// kiln pull of a multi-platform index with attestations: the name records the index (as docker and
// podman keep it) while only the host platform's blobs and its attestation manifest are downloaded;
// every command taking a stored name selects its platform from that partial index (images,
// attestations, inspect, history, tag, push), names a platform that was not pulled, and pulls it
// on demand when the pull policy allows; push NAME pushes the index whole or refuses naming what is missing.
import { afterAll, describe, expect, it } from "vitest";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expectBuilt, kiln, run } from "../helpers/kiln.js";
import { useRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";
import { BlobStore } from "../../src/store/blob-store.js";
import type { Digest, Manifest } from "../../src/image/oci.js";

const temps = new TempDirs();
const registry = useRegistry();
afterAll(() => temps.cleanup());

interface Row { name: string; digest: string; platforms: string[]; complete: boolean }
interface Index { manifests: Array<{ digest: string; platform?: { os: string; architecture: string }; annotations?: Record<string, string> }> }

const HOST = `linux/${process.arch === "x64" ? "amd64" : process.arch}`;
const OTHER = HOST === "linux/amd64" ? "linux/arm64" : "linux/amd64";

async function images(cache: string): Promise<Row[]> {
  const r = await kiln(["images", "--cache-dir", cache, "--format", "json"]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Row[]).map(({ name, digest, platforms, complete }) => ({ name, digest, platforms, complete }));
}

describe("kiln pull of a multi-platform index", () => {
  it("records the index by name with the host platform's blobs; stored-name commands select from it", async () => {
    const ctx = await temps.make("kiln-pull-index-ctx-");
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY f /f\n");
    await writeFile(join(ctx, "f"), "multi\n");
    const host = registry().host;
    const ref = `${host}/pullindex/app:1`;
    const index = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-pull-index-c1-"), "--platform", `${HOST},${OTHER}`, "--push", "-t", ref, ctx]));
    const raw = JSON.parse((await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`])).stdout) as Index;
    const entry = (p: string) => raw.manifests.find((m) => m.platform && `${m.platform.os}/${m.platform.architecture}` === p)!.digest;
    const attOf = (image: string) => raw.manifests.find((m) => m.annotations?.["vnd.docker.reference.digest"] === image)!.digest;
    const [hostImage, otherImage] = [entry(HOST), entry(OTHER)];

    const cache = await temps.make("kiln-pull-index-c2-");
    const pull = await kiln(["pull", "-q", "--cache-dir", cache, "--insecure-registry", host, ref]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stdout.trim()).toBe(index);
    expect(await images(cache)).toEqual([{ name: ref, digest: index, platforms: [HOST], complete: true }]);
    // the other platform's manifest, config and layers were not downloaded, nor its attestation manifest
    const store = new BlobStore(cache);
    const otherManifest = JSON.parse((await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${host}/pullindex/app@${otherImage}`])).stdout) as Manifest;
    const hostManifest = JSON.parse((await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${host}/pullindex/app@${hostImage}`])).stdout) as Manifest;
    const shared = new Set([hostManifest.config.digest, ...hostManifest.layers.map((l) => l.digest)]); // one COPY: the same layer on both
    const otherOnly = [otherImage, attOf(otherImage), otherManifest.config.digest, ...otherManifest.layers.map((l) => l.digest)].filter((d) => !shared.has(d));
    expect(otherOnly.length).toBeGreaterThanOrEqual(3);
    for (const d of otherOnly) expect(await store.has(d as Digest)).toBe(false);
    for (const d of [index, hostImage, attOf(hostImage)]) expect(await store.has(d as Digest)).toBe(true);

    // attestations from the store: the host platform's statements, the other platform named as not pulled
    const att = await kiln(["attestations", "--cache-dir", cache, "--pull", "never", ref]);
    expect(att.code, att.stderr).toBe(0);
    const lines = att.stdout.split("\n");
    expect(lines.slice(0, 2)).toEqual([`${HOST}  ${hostImage}`, `  attestation manifest ${attOf(hostImage)}`]);
    expect(lines[2]).toMatch(/^ {2}https:\/\/slsa\.dev\/provenance\/v1 {2}sha256:[0-9a-f]{64}$/);
    expect(lines.slice(3)).toEqual([`${OTHER}  ${otherImage}`, `  not pulled (kiln pull --platform ${OTHER} fetches it)`, ""]);

    // inspect and history select the host platform; another platform is named as not pulled
    const inspect = await kiln(["inspect", "--cache-dir", cache, "--pull", "never", ref]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout).digest).toBe(hostImage);
    expect((await kiln(["history", "--cache-dir", cache, "--pull", "never", ref])).code).toBe(0);
    const other = await kiln(["inspect", "--cache-dir", cache, "--pull", "never", "--platform", OTHER, ref]);
    expect(other.code).toBe(1);
    expect(other.stderr.trim()).toBe(`error: image ${ref}: platform ${OTHER} of its index was not pulled (pull policy "never"; kiln pull --platform ${OTHER} ${ref} fetches it)`);

    // a platform manifest of the stored index by digest, with pull "never": inspect and tag take it
    const byDigest = await kiln(["inspect", "--cache-dir", cache, "--pull", "never", `${host}/pullindex/app@${hostImage}`]);
    expect(byDigest.code, byDigest.stderr).toBe(0);
    expect(JSON.parse(byDigest.stdout).digest).toBe(hostImage);
    expect((await kiln(["tag", "--cache-dir", cache, `${host}/pullindex/app@${hostImage}`, "host-only:1"])).code).toBe(0);
    expect((await images(cache)).find((r) => r.name === "host-only:1")).toEqual({ name: "host-only:1", digest: hostImage, platforms: [HOST], complete: true });

    // tag keeps the index; push NAME refuses the partial index, --platform pushes one platform's image
    expect((await kiln(["tag", "--cache-dir", cache, ref, "copy:1"])).code).toBe(0);
    expect((await images(cache)).find((r) => r.name === "copy:1")?.digest).toBe(index);
    const refused = await kiln(["push", "-q", "--cache-dir", cache, "--insecure-registry", host, "copy:1", `${host}/pullindex/copy:1`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`error: kiln push: copy:1: platform ${OTHER} of its index was not pulled`);
    const one = await kiln(["push", "-q", "--cache-dir", cache, "--insecure-registry", host, "--platform", HOST, "copy:1", `${host}/pullindex/one:1`]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout.trim()).toBe(hostImage);
    expect((await run("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${host}/pullindex/one:1`])).stdout.trim()).toBe(hostImage);

    // the other platform on demand (pull "missing"): the name still records the index, now complete
    const onDemand = await kiln(["inspect", "--cache-dir", cache, "--insecure-registry", host, "--platform", OTHER, ref]);
    expect(onDemand.code, onDemand.stderr).toBe(0);
    expect(JSON.parse(onDemand.stdout).digest).toBe(otherImage);
    expect((await images(cache)).find((r) => r.name === ref)).toEqual({ name: ref, digest: index, platforms: [HOST, OTHER], complete: true });
    const both = await kiln(["attestations", "--cache-dir", cache, "--pull", "never", "--format", "json", "copy:1"]);
    expect((JSON.parse(both.stdout) as Array<{ image: string; attestationManifest?: string; notPulled?: boolean }>).map((s) => [s.image, s.attestationManifest, s.notPulled])).toEqual([
      [hostImage, attOf(hostImage), undefined],
      [otherImage, attOf(otherImage), undefined],
    ].sort((a, b) => raw.manifests.findIndex((m) => m.digest === a[0]) - raw.manifests.findIndex((m) => m.digest === b[0])));
    const whole = await kiln(["push", "-q", "--cache-dir", cache, "--insecure-registry", host, "copy:1", `${host}/pullindex/copy:1`]);
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.stdout.trim()).toBe(index);
  });

  it("a single-platform image is recorded as before, and --output writes the platform manifest's layout", async () => {
    const ctx = await temps.make("kiln-pull-index-ctx-");
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY f /f\n");
    await writeFile(join(ctx, "f"), "single\n");
    const host = registry().host;
    const ref = `${host}/pullindex/single:1`;
    const pushed = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-pull-index-c3-"), "--provenance=false", "--push", "-t", ref, ctx]));
    const cache = await temps.make("kiln-pull-index-c4-");
    const pull = await kiln(["pull", "-q", "--cache-dir", cache, "--insecure-registry", host, ref]);
    expect(pull.stdout.trim()).toBe(pushed);
    expect(await images(cache)).toEqual([{ name: ref, digest: pushed, platforms: [HOST], complete: true }]);
    // an attested index pulled into a layout: the layout holds the platform image, whose digest is printed
    const attested = `${host}/pullindex/attested:1`;
    const image = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-pull-index-c5-"), "--push", "-t", attested, ctx]));
    const raw = JSON.parse((await run("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${attested}`])).stdout) as Index;
    expect(raw.manifests.map((m) => m.digest)).toContain(image);
    const out = join(await temps.make("kiln-pull-index-out-"), "l");
    const toLayout = await kiln(["pull", "-q", "--cache-dir", cache, "--insecure-registry", host, attested, "--output", `type=oci,dest=${out}`]);
    expect(toLayout.code, toLayout.stderr).toBe(0);
    expect(toLayout.stdout.trim()).toBe(image);
    const inspected = await kiln(["inspect", "--cache-dir", cache, `oci-layout://${out}`]);
    expect(JSON.parse(inspected.stdout).digest).toBe(image);
    expect((await images(cache)).map((r) => r.name)).toEqual([ref]);
  });
});
