// Attestations a push gets, end to end against the loopback docker-registry: buildx's default
// (min provenance when pushing, none for local outputs, off with --provenance=false or
// BUILDX_NO_DEFAULT_ATTESTATIONS), and the provenance of a context that is a git checkout (its
// commit and origin remote, credentials stripped, a dirty tree marked). skopeo reads what was pushed.
// Reading them back: `kiln attestations` from a layout, the store and the registry, and `kiln
// verify` refusing an attestation that names an image outside its index or another subject.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { verifyLayout } from "../../src/output/verify.js";
import { build as buildImage } from "../../src/engine/build.js";
import { expectBuilt, kiln, mustRun } from "../helpers/kiln.js";
import { useRegistry } from "../helpers/registry.js";
import { startFakeRegistry } from "../registry/fake-registry.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const registry = useRegistry();
let ctx: string;
let commit: string;
const GIT_ENV = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };
/** The environment of every build here: the default is on whatever the caller's shell says. */
const ENV = { BUILDX_NO_DEFAULT_ATTESTATIONS: undefined };

interface Desc { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: { os: string; architecture: string } }
interface Index { mediaType: string; manifests: Desc[] }
interface Manifest { mediaType: string; config: Desc; layers: Desc[] }

beforeAll(async () => {
  ctx = await temps.make("kiln-attest-push-ctx-");
  await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY hello.txt /hello.txt\n");
  await writeFile(join(ctx, "hello.txt"), "hello\n");
  const git = (...args: string[]) => mustRun("git", ["-C", ctx, ...args], { env: GIT_ENV });
  await git("init", "-q", "-b", "main");
  await git("add", "-A");
  await git("commit", "-q", "-m", "one");
  await git("remote", "add", "origin", "https://ci-bot:ghp_n0tlogged@git.example.com/org/app.git");
  commit = (await git("rev-parse", "HEAD")).stdout.trim();
});
afterAll(() => temps.cleanup());

async function raw<T>(ref: string): Promise<T> {
  return JSON.parse((await mustRun("skopeo", ["inspect", "--tls-verify=false", "--raw", `docker://${ref}`])).stdout) as T;
}

async function build(args: string[], env: Record<string, string | undefined> = {}): Promise<string> {
  const cache = await temps.make("kiln-attest-push-cache-");
  return expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cache, ...args, ctx], { env: { ...ENV, ...env } }));
}

/** The provenance statement pushed with `ref` (an index with one image and its attestation manifest). */
async function pushedProvenance(ref: string, imageDigest: string): Promise<any> {
  const index = await raw<Index>(ref);
  expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
  expect(index.manifests.map((m) => m.annotations?.["vnd.docker.reference.type"] ?? m.digest)).toEqual([imageDigest, "attestation-manifest"]);
  const repo = ref.slice(0, ref.lastIndexOf(":"));
  const am = await raw<Manifest>(`${repo}@${index.manifests[1]!.digest}`);
  expect(am.layers.map((l) => l.annotations?.["in-toto.io/predicate-type"])).toEqual(["https://slsa.dev/provenance/v1"]);
  const blob = join(await temps.make("kiln-attest-push-blob-"), "s");
  await mustRun("skopeo", ["copy", "--src-tls-verify=false", "--quiet", `docker://${repo}@${index.manifests[1]!.digest}`, `dir:${blob}`]);
  return JSON.parse(await readFile(join(blob, am.layers[0]!.digest.slice(7)), "utf8"));
}

describe("buildx's default attestations", () => {
  it("pushes min provenance by default (--push and --output type=registry), naming the context's git commit and remote", async () => {
    const ref = `${registry().host}/attest/default:1`;
    const digest = await build(["--push", "-t", ref]);
    const statement = await pushedProvenance(ref, digest);
    expect(statement.subject[0].digest.sha256).toBe(digest.slice(7));
    const p = statement.predicate;
    expect(p.runDetails.metadata["https://kiln.dev/provenance/mode"]).toBe("min");
    expect(p.buildDefinition.internalParameters.steps).toBeUndefined();
    // the context is a clean checkout: its commit and origin (the token gone) are recorded as BuildKit records them
    expect(p.buildDefinition.externalParameters.request.args).toEqual({ "vcs:source": "https://git.example.com/org/app.git", "vcs:revision": commit });
    expect(p.runDetails.metadata.buildkit_metadata.vcs).toEqual({ source: "https://git.example.com/org/app.git", revision: commit });
    expect(p.buildDefinition.resolvedDependencies).toEqual([{ uri: `git+https://git.example.com/org/app.git@${commit}`, digest: { sha1: commit } }]);
    expect(JSON.stringify(statement)).not.toContain("ghp_n0tlogged");

    const reg = `${registry().host}/attest/registry-output:1`;
    const d2 = await build(["--output", `type=registry,name=${reg}`]);
    await pushedProvenance(reg, d2);
  });

  it("pushes a plain manifest with --provenance=false or BUILDX_NO_DEFAULT_ATTESTATIONS=1, and gives local outputs none", async () => {
    for (const [i, [args, env]] of ([[["--provenance=false"], {}], [["--attest", "type=provenance,disabled=true"], {}], [[], { BUILDX_NO_DEFAULT_ATTESTATIONS: "1" }]] as const).entries()) {
      const ref = `${registry().host}/attest/plain:${i}`;
      const digest = await build(["--push", "-t", ref, ...args], env);
      const m = await raw<Manifest>(ref);
      expect(m.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
      expect((await mustRun("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${ref}`])).stdout.trim()).toBe(digest);
    }
    const out = join(await temps.make("kiln-attest-push-oci-"), "l");
    await build(["--output", `type=oci,dest=${out}`]);
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as Index;
    expect(index.manifests.map((m) => m.mediaType)).toEqual(["application/vnd.oci.image.manifest.v1+json"]);
  });

  it("the library's build() follows the same rule, and reports what it made", async () => {
    const saved = process.env.BUILDX_NO_DEFAULT_ATTESTATIONS;
    delete process.env.BUILDX_NO_DEFAULT_ATTESTATIONS;
    try {
      const cacheDir = await temps.make("kiln-attest-lib-cache-");
      const ref = `${registry().host}/attest/library:1`;
      const pushed = await buildImage({ context: ctx, cacheDir, outputs: [{ type: "image", names: [ref], push: true }] });
      expect(pushed.attestations?.map((a) => [a.image, a.statements.map((x) => x.predicateType)])).toEqual([[pushed.digest, ["https://slsa.dev/provenance/v1"]]]);
      expect(pushed.index).toBeDefined();
      const vcs = { commit: "f".repeat(40), remote: "https://u:p@git.example.com/given.git" };
      const given = await buildImage({ context: ctx, cacheDir, vcs, outputs: [{ type: "image", names: [ref], push: true }] });
      const statement = await pushedProvenance(ref, given.digest);
      expect(statement.predicate.buildDefinition.externalParameters.request.args).toEqual({ "vcs:source": "https://git.example.com/given.git", "vcs:revision": "f".repeat(40) });
      const off = await buildImage({ context: ctx, cacheDir, attest: { provenance: false }, outputs: [{ type: "image", names: [ref], push: true }] });
      expect(off.attestations).toBeUndefined();
      expect(off.index).toBeUndefined();
    } finally {
      if (saved !== undefined) process.env.BUILDX_NO_DEFAULT_ATTESTATIONS = saved;
    }
  });

  it("records a dirty work tree as such when BUILDX_GIT_CHECK_DIRTY asks (as buildx: off by default), and no git state with BUILDX_GIT_INFO=false", async () => {
    await writeFile(join(ctx, "untracked.txt"), "not committed\n");
    try {
      const provenance = async (env: Record<string, string | undefined>): Promise<any> => {
        const out = join(await temps.make("kiln-attest-dirty-"), "l");
        await build(["--provenance=true", "--output", `type=oci,dest=${out}`], env);
        const blob = (d: string): Promise<string> => readFile(join(out, "blobs", "sha256", d.slice(7)), "utf8");
        const root = JSON.parse(await blob(JSON.parse(await readFile(join(out, "index.json"), "utf8")).manifests[0].digest)) as Index;
        const am = JSON.parse(await blob(root.manifests[1]!.digest)) as Manifest;
        return JSON.parse(await blob(am.layers[0]!.digest)).predicate;
      };
      const checked = await provenance({ BUILDX_GIT_CHECK_DIRTY: "1" });
      expect(checked.buildDefinition.externalParameters.request.args["vcs:revision"]).toBe(`${commit}-dirty`);
      expect(checked.buildDefinition.resolvedDependencies[0]).toEqual({ uri: `git+https://git.example.com/org/app.git@${commit}`, digest: { sha1: commit }, annotations: { "kiln.dev/git-dirty": "true" } });
      // buildx's default: the commit, no status read
      const unchecked = await provenance({ BUILDX_GIT_CHECK_DIRTY: undefined });
      expect(unchecked.buildDefinition.externalParameters.request.args["vcs:revision"]).toBe(commit);
      expect(unchecked.buildDefinition.resolvedDependencies[0]).toEqual({ uri: `git+https://git.example.com/org/app.git@${commit}`, digest: { sha1: commit } });
      const none = await provenance({ BUILDX_GIT_INFO: "false", BUILDX_GIT_CHECK_DIRTY: "1" });
      expect(none.buildDefinition.externalParameters.request.args["vcs:revision"]).toBeUndefined();
      expect(none.buildDefinition.externalParameters.request.args["vcs:source"]).toBeUndefined();
      expect(JSON.stringify(none.buildDefinition.resolvedDependencies)).not.toContain("git+");
    } finally {
      await mustRun("rm", ["-f", join(ctx, "untracked.txt")]);
    }
  });
});

/** Write `value` as a blob of the layout `dir`; returns its descriptor fields. */
async function putBlob(dir: string, value: unknown): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  await writeFile(join(dir, "blobs", "sha256", digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

/** A copy of the attested layout `src` whose index is rewritten by `edit` (index.json follows). */
async function tampered(src: string, edit: (index: Index, dir: string) => Promise<void>): Promise<string> {
  const dir = join(await temps.make("kiln-attest-tamper-"), "l");
  await cp(src, dir, { recursive: true });
  const top = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as Index;
  const index = JSON.parse(await readFile(join(dir, "blobs", "sha256", top.manifests[0]!.digest.slice(7)), "utf8")) as Index;
  await edit(index, dir);
  const put = await putBlob(dir, index);
  top.manifests[0] = { ...top.manifests[0]!, ...put };
  await writeFile(join(dir, "index.json"), JSON.stringify(top));
  return dir;
}

describe("kiln attestations and kiln verify", () => {
  it("prints each platform's statements from a layout, the store and the registry; --type and --format json pick them", async () => {
    const cache = await temps.make("kiln-attest-read-cache-");
    const out = join(await temps.make("kiln-attest-read-"), "l");
    const ref = `${registry().host}/attest/read:1`;
    const digest = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--sbom=true", "--provenance=mode=max", "-t", ref, "--push", "--output", `type=oci,dest=${out}`, ctx], { env: ENV }));
    const index = await raw<Index>(ref);
    const att = index.manifests[1]!.digest;
    const am = await raw<Manifest>(`${registry().host}/attest/read@${att}`);
    const [sbomDigest, provDigest] = am.layers.map((l) => l.digest);
    const platform = `${index.manifests[0]!.platform!.os}/${index.manifests[0]!.platform!.architecture}`;
    const text = [
      `${platform}  ${digest}`,
      `  attestation manifest ${att}`,
      `  https://spdx.dev/Document  ${sbomDigest}`,
      `  https://slsa.dev/provenance/v1  ${provDigest}`,
      "",
    ].join("\n");
    for (const image of [`oci-layout://${out}`, `oci-layout://${out}:1`, ref]) {
      const r = await kiln(["attestations", "--cache-dir", cache, image]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(text);
    }
    // from the registry itself (a fresh store: nothing is local), the statements as JSON
    const fresh = await temps.make("kiln-attest-read-fresh-");
    const j = await kiln(["attestations", "--cache-dir", fresh, "--insecure-registry", registry().host, "--format", "json", "--type", "provenance", ref]);
    expect(j.code, j.stderr).toBe(0);
    const sets = JSON.parse(j.stdout) as Array<{ platform: string; image: string; attestationManifest: string; statements: any[] }>;
    expect(sets).toHaveLength(1);
    expect(sets[0]).toMatchObject({ platform, image: digest, attestationManifest: att });
    expect(sets[0]!.statements.map((s) => s.predicateType)).toEqual(["https://slsa.dev/provenance/v1"]);
    expect(sets[0]!.statements[0].subject[0].digest.sha256).toBe(digest.slice(7));
    expect(sets[0]!.statements[0].predicate.buildDefinition.internalParameters.steps.length).toBeGreaterThan(0);
    const sbom = JSON.parse((await kiln(["attestations", "--cache-dir", fresh, "--pull", "always", "--insecure-registry", registry().host, "--format", "json", "--type", "sbom", ref])).stdout);
    expect(sbom[0].statements.map((s: any) => s.predicate.spdxVersion)).toEqual(["SPDX-2.3"]);
    // an image without attestations says so
    const plainRef = `${registry().host}/attest/read-plain:1`;
    const plain = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--provenance=false", "--push", "-t", plainRef, ctx], { env: ENV }));
    expect((await kiln(["attestations", "--cache-dir", fresh, "--pull", "always", "--insecure-registry", registry().host, plainRef])).stdout).toBe(`(manifest)  ${plain}\n  no attestations\n`);
    expect((await kiln(["attestations", "--type", "vex", ref])).code).toBe(2);

    // kiln verify accepts the attested layout, and refuses one whose attestation names an image outside its index ...
    expect((await kiln(["verify", out])).code).toBe(0);
    const outside = "sha256:" + "ab".repeat(32);
    const badRef = await tampered(out, async (idx) => {
      idx.manifests[1]!.annotations!["vnd.docker.reference.digest"] = outside;
    });
    const v1 = await kiln(["verify", badRef]);
    expect(v1.code).toBe(1);
    expect(v1.stderr).toContain(att);
    expect(v1.stderr).toContain(outside);
    expect(v1.stderr).toContain(digest);
    const a1 = await kiln(["attestations", `oci-layout://${badRef}`]);
    expect(a1.code).toBe(1);
    expect(a1.stderr).toContain("not a manifest of its index");

    // ... or holds a statement about another image
    const badSubject = await tampered(out, async (idx, dir) => {
      const blob = (d: string) => readFile(join(dir, "blobs", "sha256", d.slice(7)), "utf8");
      const m = JSON.parse(await blob(idx.manifests[1]!.digest)) as Manifest;
      const statement = JSON.parse(await blob(m.layers[1]!.digest));
      statement.subject[0].digest.sha256 = "cd".repeat(32);
      m.layers[1] = { ...m.layers[1]!, ...(await putBlob(dir, statement)) };
      idx.manifests[1] = { ...idx.manifests[1]!, ...(await putBlob(dir, m)) };
    });
    const v2 = await kiln(["verify", badSubject]);
    expect(v2.code).toBe(1);
    expect(v2.stderr).toMatch(new RegExp(`is about sha256:${"cd".repeat(32)}, but the manifest is attached to image ${digest}`));
    await expect(verifyLayout(badSubject)).rejects.toMatchObject({ code: "ATTESTATION_INVALID" });

    // --type provenance also keeps BuildKit's SLSA v0.2 statements
    const v02 = await tampered(out, async (idx, dir) => {
      const m = JSON.parse(await readFile(join(dir, "blobs", "sha256", idx.manifests[1]!.digest.slice(7)), "utf8")) as Manifest;
      m.layers[1]!.annotations!["in-toto.io/predicate-type"] = "https://slsa.dev/provenance/v0.2";
      idx.manifests[1] = { ...idx.manifests[1]!, ...(await putBlob(dir, m)) };
    });
    const listed = await kiln(["attestations", "--type", "provenance", `oci-layout://${v02}`]);
    expect(listed.stdout).toContain(`  https://slsa.dev/provenance/v0.2  ${provDigest}`);
    expect(listed.stdout).not.toContain("spdx");
  });
});

describe("--attest-referrers", () => {
  interface Referrers { manifests: Array<Desc & { artifactType?: string }> }
  const get = async (url: string, accept: string): Promise<{ status: number; body: Buffer }> => {
    const res = await fetch(url, { headers: { accept } });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  };
  const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
  const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

  /** Follow each referrer to its statement: [predicate type, the statement's subject digest]. */
  async function follow(base: string, list: Referrers["manifests"]): Promise<Array<[string, string, string | undefined]>> {
    const out: Array<[string, string, string | undefined]> = [];
    for (const d of list) {
      expect(d.artifactType).toBe("application/vnd.in-toto+json");
      const m = JSON.parse((await get(`${base}/manifests/${d.digest}`, OCI_MANIFEST)).body.toString()) as Manifest & { subject: Desc; artifactType: string };
      expect(m.config.mediaType).toBe("application/vnd.oci.empty.v1+json");
      const statement = JSON.parse((await get(`${base}/blobs/${m.layers[0]!.digest}`, "*/*")).body.toString());
      out.push([d.annotations!["in-toto.io/predicate-type"]!, `sha256:${statement.subject[0].digest.sha256}`, m.subject.digest]);
    }
    return out.sort();
  }

  it("keeps the referrers tag schema on docker-registry 2.8 (no referrers API), merged with what the tag held", async () => {
    const cache = await temps.make("kiln-attest-ref-cache-");
    const ref = `${registry().host}/attest/referrers:1`;
    const base = `http://${registry().host}/v2/attest/referrers`;
    const digest = expectBuilt(await kiln(["build", "--progress", "plain", "--cache-dir", cache, "--push", "--attest-referrers", "-t", ref, ctx], { env: ENV }));
    expect((await get(`${base}/referrers/${digest}`, OCI_INDEX)).status).toBe(404); // 2.8 has no referrers API
    const tag = `sha256-${digest.slice(7)}`;
    const first = JSON.parse((await get(`${base}/manifests/${tag}`, OCI_INDEX)).body.toString()) as Referrers & { mediaType: string };
    expect(first.mediaType).toBe(OCI_INDEX);
    expect(await follow(base, first.manifests)).toEqual([["https://slsa.dev/provenance/v1", digest, digest]]);
    // the same image again, now with an SBOM only: the tag keeps the provenance and adds the SBOM
    const again = await kiln(["build", "--progress", "plain", "--cache-dir", cache, "--push", "--provenance=false", "--sbom=true", "--attest-referrers", "-t", ref, ctx], { env: ENV });
    expect(expectBuilt(again)).toBe(digest);
    expect(again.stderr).toContain(`pushed 1 attestation referrer(s) to ${ref} (the referrers tag ${tag})`);
    const merged = JSON.parse((await get(`${base}/manifests/${tag}`, OCI_INDEX)).body.toString()) as Referrers;
    expect(await follow(base, merged.manifests)).toEqual([["https://slsa.dev/provenance/v1", digest, digest], ["https://spdx.dev/Document", digest, digest]]);
  });

  it("uses the referrers API where the registry has it (no tag written)", async () => {
    const fake = await startFakeRegistry({ referrers: true });
    try {
      const ref = `${fake.host}/attest/api:1`;
      const r = await kiln(["build", "--progress", "plain", "--cache-dir", await temps.make("kiln-attest-api-cache-"), "--sbom=true", "--push", "--attest-referrers", "-t", ref, ctx], { env: ENV });
      const digest = expectBuilt(r);
      expect(r.stderr).toContain(`pushed 2 attestation referrer(s) to ${ref} (the registry's referrers API)`);
      const base = `${fake.url}/v2/attest/api`;
      const listed = JSON.parse((await get(`${base}/referrers/${digest}`, OCI_INDEX)).body.toString()) as Referrers;
      expect(await follow(base, listed.manifests)).toEqual([["https://slsa.dev/provenance/v1", digest, digest], ["https://spdx.dev/Document", digest, digest]]);
      expect([...fake.manifests.keys()].filter((k) => k.includes(":sha256-"))).toEqual([]);
      expect(fake.requests.filter((q) => q.method === "PUT" && q.path.includes("/manifests/sha256-"))).toEqual([]);
    } finally {
      await fake.close();
    }
    // a usage error without a push, before any work
    const bad = await kiln(["build", "--attest-referrers", "--provenance=true", "--output", `type=oci,dest=${join(ctx, "never")}`, ctx]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--attest-referrers needs a push");
  });
});

describe("reproducible attestations and --metadata-file", () => {
  it("with SOURCE_DATE_EPOCH, two cold builds push the same index, attestation and referrer digests; the metadata names them", async () => {
    const metas: any[] = [];
    // one name: the statements' subjects name the image (pkg:docker/NAME@TAG), so another name is another statement
    for (let run = 0; run < 2; run++) {
      const ref = `${registry().host}/attest/repro:1`;
      const meta = join(await temps.make("kiln-attest-meta-"), "meta.json");
      const digest = await build(["--sbom=true", "--push", "--attest-referrers", "-t", ref, "--metadata-file", meta], { SOURCE_DATE_EPOCH: "1700000000" });
      const m = JSON.parse(await readFile(meta, "utf8"));
      const index = await raw<Index>(ref);
      const indexDigest = (await mustRun("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${ref}`])).stdout.trim();
      // as buildx: the image is the index the tag names; its platform image and config beside it
      expect(m["containerimage.digest"]).toBe(indexDigest);
      expect(m["containerimage.descriptor"]).toMatchObject({ mediaType: "application/vnd.oci.image.index.v1+json", digest: indexDigest });
      expect(m["kiln.platforms"]).toEqual([expect.objectContaining({ digest })]);
      expect(m["containerimage.config.digest"]).toBe(m["kiln.platforms"][0].configDigest);
      const am = await raw<Manifest>(`${registry().host}/attest/repro@${index.manifests[1]!.digest}`);
      const tagIndex = await raw<Index>(`${registry().host}/attest/repro:sha256-${digest.slice(7)}`);
      expect(m["kiln.attestations"]).toEqual([{
        platform: m["kiln.platforms"][0].platform,
        image: digest,
        manifest: index.manifests[1]!.digest,
        statements: am.layers.map((l) => ({ predicateType: l.annotations!["in-toto.io/predicate-type"], digest: l.digest })),
        referrers: tagIndex.manifests.map((d) => d.digest),
      }]);
      metas.push(m);
    }
    expect(metas[1]["containerimage.digest"]).toBe(metas[0]["containerimage.digest"]);
    expect(metas[1]["kiln.attestations"]).toEqual(metas[0]["kiln.attestations"]);
    expect(metas[0]["kiln.attestations"][0].referrers).toHaveLength(2); // the second push found its own two, and added none
  });
});
