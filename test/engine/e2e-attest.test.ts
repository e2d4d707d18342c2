// Provenance and SBOM attestations end to end: the compiled CLI builds FROM a hand-made base
// (a layer with a dpkg status file, a status.d/ entry, a node_modules package, a whited-out
// package) with --provenance and --sbom into an OCI layout, and the layout holds an index with
// the image and a BuildKit-style attestation manifest; the same build pushed to the loopback
// registry reads back with skopeo. Secrets and secret-looking build args appear nowhere.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTar } from "../snapshot/helpers.js";
import { writeHandLayout, type HandLayout } from "../helpers/hand-layout.js";
import { serveFiles, type FileServer } from "../helpers/http.js";
import { KILN_BIN, expectBuilt, kiln, mustRun, verify } from "../helpers/kiln.js";
import { startRegistry, type LocalRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
let registry: LocalRegistry;
let files: FileServer;
const DOWNLOAD = "downloaded by ADD\n";
let dir: string;
let ctx: string;
let base: HandLayout;
const SECRET = "s3cr3t-value-never-recorded";
const TOKEN = "tok-value-never-recorded";

const DPKG_STATUS = [
  "Package: libc6", "Status: install ok installed", "Version: 2.36-9+deb12u4", "Architecture: amd64", "Description: GNU C Library", " shared libraries", "",
  "Package: removed-pkg", "Status: deinstall ok config-files", "Version: 1.0", "Architecture: amd64", "",
  "Package: bash", "Status: install ok installed", "Version: 5.2.15-2+b2", "Architecture: amd64", "",
].join("\n");

interface Desc { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: { os: string; architecture: string } }
interface Index { mediaType: string; manifests: Desc[] }
interface Manifest { mediaType: string; config: Desc; layers: Desc[] }
interface Statement { _type: string; subject: Array<{ name: string; digest: { sha256: string } }>; predicateType: string; predicate: Record<string, any> }

beforeAll(async () => {
  registry = await startRegistry();
  files = await serveFiles({ "/data.txt": { body: DOWNLOAD, lastModified: new Date(1_600_000_000_000) } });
  dir = await temps.make("kiln-attest-");
  base = await writeHandLayout(join(dir, "base"), [
    makeTar([
      { name: "etc/", type: "dir" },
      { name: "etc/os-release", content: Buffer.from('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n') },
      { name: "var/lib/dpkg/status", content: Buffer.from(DPKG_STATUS) },
      { name: "var/lib/dpkg/status.d/base-files", content: Buffer.from("Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n") },
      { name: "app/node_modules/left-pad/package.json", content: Buffer.from('{"name":"left-pad","version":"1.3.0","license":"WTFPL"}') },
      { name: "app/node_modules/@scope/util/package.json", content: Buffer.from('{"name":"@scope/util","version":"2.0.0","license":{"type":"MIT"}}') },
      { name: "app/node_modules/gone/package.json", content: Buffer.from('{"name":"gone","version":"9.9.9"}') },
      { name: "app/node_modules/left-pad/node_modules/x/README", content: Buffer.from("not a package") },
    ]),
    makeTar([{ name: "app/node_modules/.wh.gone", content: Buffer.from("") }]),
  ]);
  ctx = join(dir, "ctx");
  await mkdir(ctx);
  await writeFile(join(ctx, "Dockerfile"), `FROM base\nARG VERSION\nARG API_TOKEN\nCOPY hello.txt /hello.txt\nADD ${files.url}/data.txt /data.txt\n`);
  await writeFile(join(ctx, "hello.txt"), "hello\n");
  await writeFile(join(dir, "secret.txt"), SECRET);
});
afterAll(async () => {
  await registry.stop();
  await files.close();
  await temps.cleanup();
});

function buildArgs(cache: string, extra: string[]): string[] {
  return [
    "build", "--progress", "quiet", "--cache-dir", cache, "--build-context", `base=${base.ref}`,
    "--build-arg", "VERSION=1.2.3", "--build-arg", `API_TOKEN=${TOKEN}`, "--secret", `id=npm,src=${join(dir, "secret.txt")}`,
    ...extra, ctx,
  ];
}

async function readLayout(out: string): Promise<{ blob: (d: string) => Promise<Buffer>; root: Index; rootIndex: Index }> {
  const blob = (d: string): Promise<Buffer> => readFile(join(out, "blobs", "sha256", d.slice(7)));
  const root = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as Index;
  expect(root.manifests).toHaveLength(1);
  expect(root.manifests[0]!.mediaType).toBe("application/vnd.oci.image.index.v1+json");
  const rootIndex = JSON.parse((await blob(root.manifests[0]!.digest)).toString()) as Index;
  return { blob, root, rootIndex };
}

async function allBytes(out: string): Promise<string> {
  const dirBlobs = join(out, "blobs", "sha256");
  let all = await readFile(join(out, "index.json"), "utf8");
  for (const f of await readdir(dirBlobs)) all += (await readFile(join(dirBlobs, f))).toString("latin1");
  return all;
}

describe("kiln build --provenance --sbom", () => {
  it("stores an attestation manifest beside the image in an OCI index, with SLSA provenance and an SPDX SBOM", async () => {
    const cache = await temps.make("kiln-attest-cache-");
    const out = join(dir, "out");
    const meta = join(dir, "meta.json");
    const r = await kiln(buildArgs(cache, ["--provenance=mode=min", "--sbom=true", "-t", "example/app:1", "--metadata-file", meta, "--output", `type=oci,dest=${out}`]));
    const imageDigest = expectBuilt(r);
    const { blob, rootIndex } = await readLayout(out);

    expect(rootIndex.manifests).toHaveLength(2);
    const [img, att] = rootIndex.manifests as [Desc, Desc];
    expect(img.digest).toBe(imageDigest);
    expect(img.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(img.platform?.os).toBe("linux");
    expect(att.platform).toEqual({ architecture: "unknown", os: "unknown" });
    expect(att.annotations).toEqual({ "vnd.docker.reference.digest": imageDigest, "vnd.docker.reference.type": "attestation-manifest" });
    const am = JSON.parse((await blob(att.digest)).toString()) as Manifest;
    expect(am.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(am.layers.map((l) => l.mediaType)).toEqual(["application/vnd.in-toto+json", "application/vnd.in-toto+json"]);
    expect(am.layers.map((l) => l.annotations?.["in-toto.io/predicate-type"])).toEqual(["https://spdx.dev/Document", "https://slsa.dev/provenance/v1"]);
    const amConfig = JSON.parse((await blob(am.config.digest)).toString()) as { os: string; architecture: string };
    expect([amConfig.os, amConfig.architecture]).toEqual(["unknown", "unknown"]);

    const [sbom, prov] = await Promise.all(am.layers.map(async (l) => JSON.parse((await blob(l.digest)).toString()) as Statement));
    for (const s of [sbom!, prov!]) {
      expect(s._type).toBe("https://in-toto.io/Statement/v1");
      expect(s.subject).toEqual([{ name: "pkg:docker/example/app@1?platform=linux%2Famd64", digest: { sha256: imageDigest.slice(7) } }]);
    }

    // Provenance: the Dockerfile's digest, the build args (not the token), the base by digest.
    const p = prov!.predicate;
    expect(prov!.predicateType).toBe("https://slsa.dev/provenance/v1");
    const dockerfileSha = (await mustRun("sha256sum", [join(ctx, "Dockerfile")])).stdout.split(" ")[0];
    expect(p.buildDefinition.externalParameters.configSource.digest.sha256).toBe(dockerfileSha);
    expect(p.buildDefinition.externalParameters.request.frontend).toBe("dockerfile");
    expect(p.buildDefinition.externalParameters.request.args).toEqual({ "build-arg:VERSION": "1.2.3" });
    const baseManifest = JSON.parse(await readFile(join(dir, "base", "index.json"), "utf8")).manifests[0].digest as string;
    const downloadSha = (await mustRun("sha256sum", [], { input: DOWNLOAD })).stdout.split(" ")[0];
    expect(p.buildDefinition.resolvedDependencies).toEqual([
      { uri: `oci-layout://${join(dir, "base")}:v1`, digest: { sha256: baseManifest.slice(7) } },
      { uri: `${files.url}/data.txt`, digest: { sha256: downloadSha } },
    ]);
    expect(p.runDetails.builder.id).toBe("kiln");
    expect(Date.parse(p.runDetails.metadata.finishedOn)).toBeGreaterThanOrEqual(Date.parse(p.runDetails.metadata.startedOn));
    expect(p.buildDefinition.internalParameters.steps).toBeUndefined(); // min records no steps

    // SBOM: installed dpkg packages (not the removed one), status.d/, npm packages (not the whited-out one).
    const doc = sbom!.predicate;
    expect(doc.spdxVersion).toBe("SPDX-2.3");
    expect(doc.SPDXID).toBe("SPDXRef-DOCUMENT");
    const pkgs = (doc.packages as Array<{ name: string; versionInfo: string; licenseDeclared: string; externalRefs: Array<{ referenceLocator: string }> }>)
      .map((x) => [x.name, x.versionInfo, x.licenseDeclared, x.externalRefs[0]!.referenceLocator]);
    expect(pkgs).toEqual([
      ["base-files", "12.4+deb12u5", "NOASSERTION", "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64"],
      ["bash", "5.2.15-2+b2", "NOASSERTION", "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64"],
      ["libc6", "2.36-9+deb12u4", "NOASSERTION", "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"],
      ["@scope/util", "2.0.0", "MIT", "pkg:npm/%40scope/util@2.0.0"],
      ["left-pad", "1.3.0", "WTFPL", "pkg:npm/left-pad@1.3.0"],
    ]);
    expect((doc.relationships as unknown[]).length).toBe(5);

    // kiln verify accepts the layout, and the attested layout serves as a base (the index resolves to the image).
    await verify(out);
    const again = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--build-context", `base=oci-layout://${out}:1`, "--output", `type=oci,dest=${join(dir, "from-attested")}`, ctx]);
    expectBuilt(again);

    const everything = await allBytes(out);
    expect(everything).not.toContain(SECRET);
    expect(everything).not.toContain(TOKEN);
    expect(await readFile(meta, "utf8")).not.toContain(TOKEN);
  });

  it("mode=max records the steps with their cache hits; SOURCE_DATE_EPOCH makes the attestations reproducible", async () => {
    const cache = await temps.make("kiln-attest-cache-");
    const digests: string[] = [];
    for (const n of [1, 2]) {
      const out = join(dir, `max-${n}`);
      const r = await kiln(buildArgs(cache, ["--attest", "type=provenance,mode=max", "--output", `type=oci,dest=${out}`]), { env: { SOURCE_DATE_EPOCH: "1700000000" } });
      expectBuilt(r);
      const { blob, rootIndex } = await readLayout(out);
      const am = JSON.parse((await blob(rootIndex.manifests[1]!.digest)).toString()) as Manifest;
      expect(am.layers).toHaveLength(1);
      const prov = JSON.parse((await blob(am.layers[0]!.digest)).toString()) as Statement;
      expect(prov.subject[0]!.name).toBe("_");
      const steps = prov.predicate.buildDefinition.internalParameters.steps as Array<{ instruction: string; cacheHit: boolean }>;
      expect(steps.map((s) => s.instruction)).toContain("COPY hello.txt /hello.txt");
      expect(steps.find((s) => s.instruction.startsWith("COPY"))!.cacheHit).toBe(n === 2);
      expect(prov.predicate.runDetails.metadata.startedOn).toBe("2023-11-14T22:13:20.000Z");
      digests.push(am.layers[0]!.digest);
    }
    // The second build hit the cache, so its recorded steps (and statement) differ.
    expect(digests[0]).not.toBe(digests[1]);

    // min records no steps: a cold and a warm build with SOURCE_DATE_EPOCH give the same index.
    const roots: string[] = [];
    for (const c of [await temps.make("kiln-attest-cache-"), cache]) {
      const out = join(dir, `min-${roots.length}`);
      expectBuilt(await kiln(buildArgs(c, ["--provenance=mode=min", "--sbom=true", "--output", `type=oci,dest=${out}`]), { env: { SOURCE_DATE_EPOCH: "1700000000" } }));
      roots.push((await readLayout(out)).root.manifests[0]!.digest);
    }
    expect(roots[0]).toBe(roots[1]);
  });

  it("a warm build of the same image makes the same SBOM statement without SOURCE_DATE_EPOCH (its time is the image's); the provenance is the build's own", async () => {
    const cache = await temps.make("kiln-attest-cache-");
    const layers: Array<{ sbom: string; provenance: string; created: string }> = [];
    for (const n of [1, 2]) {
      const out = join(dir, `sbom-again-${n}`);
      expectBuilt(await kiln(buildArgs(cache, ["--provenance=mode=min", "--sbom=true", "--output", `type=oci,dest=${out}`])));
      const { blob, rootIndex } = await readLayout(out);
      const image = JSON.parse((await blob(rootIndex.manifests[0]!.digest)).toString()) as Manifest;
      const config = JSON.parse((await blob(image.config.digest)).toString()) as { created: string };
      const am = JSON.parse((await blob(rootIndex.manifests[1]!.digest)).toString()) as Manifest;
      const byType = (t: string): string => am.layers.find((l) => l.annotations?.["in-toto.io/predicate-type"] === t)!.digest;
      const sbom = JSON.parse((await blob(byType("https://spdx.dev/Document"))).toString()) as Statement;
      expect(new Date(sbom.predicate.creationInfo.created).getTime()).toBe(Math.floor(new Date(config.created).getTime() / 1000) * 1000);
      layers.push({ sbom: byType("https://spdx.dev/Document"), provenance: byType("https://slsa.dev/provenance/v1"), created: config.created });
    }
    expect(layers[1]!.created).toBe(layers[0]!.created); // the same image (all steps cached)
    expect(layers[1]!.sbom).toBe(layers[0]!.sbom);
    expect(layers[1]!.provenance).not.toBe(layers[0]!.provenance); // its own start and finish times
  });

  it("pushes the index with its attestation manifest to a registry, as skopeo reads it", async () => {
    const cache = await temps.make("kiln-attest-cache-");
    const ref = `${registry.host}/kiln/attested:1`;
    const r = await kiln(buildArgs(cache, ["--provenance=true", "--push", "-t", ref]));
    const imageDigest = expectBuilt(r);
    const raw = await mustRun("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${ref}`]);
    const index = JSON.parse(raw.stdout) as Index;
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.manifests.map((m) => m.annotations?.["vnd.docker.reference.type"] ?? m.digest)).toEqual([imageDigest, "attestation-manifest"]);
    const attRef = `docker://${registry.host}/kiln/attested@${index.manifests[1]!.digest}`;
    const am = JSON.parse((await mustRun("skopeo", ["inspect", "--tls-verify=false", "--raw", attRef])).stdout) as Manifest;
    expect(am.layers[0]!.annotations?.["in-toto.io/predicate-type"]).toBe("https://slsa.dev/provenance/v1");

    // An attested layout (directory, and tar) names the index; `kiln push` of the directory pushes it whole.
    const out = join(dir, "to-push");
    expectBuilt(await kiln(buildArgs(cache, ["--sbom=true", "--output", `type=oci,dest=${out}`, "--output", `type=oci,dest=${out}.tar,tar=true`])));
    const layoutRoot = (await readLayout(out)).root.manifests[0]!;
    const tarIndex = JSON.parse((await mustRun("tar", ["-xOf", `${out}.tar`, "index.json"])).stdout) as Index;
    expect(tarIndex.manifests.map((m) => [m.mediaType, m.digest])).toEqual([[layoutRoot.mediaType, layoutRoot.digest]]);
    const ref2 = `${registry.host}/kiln/attested-layout:1`;
    await mustRun(process.execPath, [KILN_BIN, "push", "--quiet", "--cache-dir", cache, "--insecure-registry", registry.host, out, ref2]);
    const pushed = (await mustRun("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${ref2}`])).stdout;
    expect(`sha256:${(await mustRun("sha256sum", [], { input: pushed })).stdout.split(" ")[0]}`).toBe(layoutRoot.digest);
  });

  it("with two platforms, lists both images and then one attestation manifest per platform, each naming its image", async () => {
    const cache = await temps.make("kiln-attest-cache-");
    const mctx = await temps.make("kiln-attest-mp-ctx-");
    await writeFile(join(mctx, "Dockerfile"), "FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}.txt /arch.txt\n");
    await writeFile(join(mctx, "amd64.txt"), "x86-64\n");
    await writeFile(join(mctx, "arm64.txt"), "aarch64\n");
    const out = join(dir, "multi");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--platform", "linux/amd64,linux/arm64", "--provenance=mode=max", "--sbom=true", "--output", `type=oci,dest=${out}`, mctx]);
    const digest = expectBuilt(r);
    const { blob, root, rootIndex } = await readLayout(out);
    expect(root.manifests[0]!.digest).toBe(digest); // several platforms: the printed digest is the index's
    expect(rootIndex.manifests).toHaveLength(4);
    const [amd, arm, attAmd, attArm] = rootIndex.manifests as [Desc, Desc, Desc, Desc];
    expect([amd.platform, arm.platform]).toEqual([{ architecture: "amd64", os: "linux" }, { architecture: "arm64", os: "linux" }]);
    for (const [img, att, arch] of [[amd, attAmd, "amd64"], [arm, attArm, "arm64"]] as const) {
      expect(img.annotations).toBeUndefined();
      const cfg = JSON.parse((await blob((JSON.parse((await blob(img.digest)).toString()) as Manifest).config.digest)).toString()) as { architecture: string };
      expect(cfg.architecture).toBe(arch);
      expect(att.platform).toEqual({ architecture: "unknown", os: "unknown" });
      expect(att.annotations).toEqual({ "vnd.docker.reference.digest": img.digest, "vnd.docker.reference.type": "attestation-manifest" });
      const am = JSON.parse((await blob(att.digest)).toString()) as Manifest;
      const statements = await Promise.all(am.layers.map(async (l) => JSON.parse((await blob(l.digest)).toString()) as Statement));
      expect(statements.map((s) => s.predicateType)).toEqual(["https://spdx.dev/Document", "https://slsa.dev/provenance/v1"]);
      for (const s of statements) expect(s.subject.map((x) => x.digest.sha256)).toEqual([img.digest.slice(7)]);
      // mode=max: each platform's provenance records its own step (as written), not the other platform's
      const steps = statements[1]!.predicate.buildDefinition.internalParameters.steps as Array<{ instruction: string }>;
      expect(steps.map((x) => x.instruction)).toEqual(["COPY ${TARGETARCH}.txt /arch.txt"]);
    }
    await verify(out);
    // kiln attestations lists both platforms, or the one --platform names
    const all = await kiln(["attestations", `oci-layout://${out}`]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.split("\n").filter((l) => l.startsWith("linux/"))).toEqual([`linux/amd64  ${amd.digest}`, `linux/arm64  ${arm.digest}`]);
    const one = JSON.parse((await kiln(["attestations", "--platform", "linux/arm64", "--format", "json", `oci-layout://${out}`])).stdout) as Array<{ platform: string; image: string; attestationManifest: string; statements: Statement[] }>;
    expect(one.map((x) => [x.platform, x.image, x.attestationManifest, x.statements.length])).toEqual([["linux/arm64", arm.digest, attArm.digest, 2]]);
  });

  it("refuses attestations for a docker archive, and bad values, with one line and no output", async () => {
    const cache = await temps.make("kiln-attest-cache-");
    const tar = join(dir, "img.tar");
    const r = await kiln(buildArgs(cache, ["--sbom=true", "--output", `type=docker,dest=${tar}`]));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("type=docker cannot hold attestations");
    expect(await readFile(tar).catch(() => undefined)).toBeUndefined();
    const docker = await kiln(buildArgs(cache, ["--provenance=true", "--format", "docker", "--output", `type=oci,dest=${join(dir, "docker-format")}`]));
    expect(docker.code).toBe(2);
    expect(docker.stderr).toContain("--format docker cannot carry attestations");
    expect(await readdir(join(dir, "docker-format")).catch(() => undefined)).toBeUndefined();
    const bad = await kiln(buildArgs(cache, ["--provenance=mode=full"]));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--provenance: mode must be min or max");
    const unknown = await kiln(buildArgs(cache, ["--attest", "type=signature"]));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("--attest: type must be provenance or sbom");
  });
});
