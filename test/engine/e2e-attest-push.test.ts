// Attestations a push gets, end to end against the loopback docker-registry: buildx's default
// (min provenance when pushing, none for local outputs, off with --provenance=false or
// BUILDX_NO_DEFAULT_ATTESTATIONS), and the provenance of a context that is a git checkout (its
// commit and origin remote, credentials stripped, a dirty tree marked). skopeo reads what was pushed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expectBuilt, kiln, mustRun } from "../helpers/kiln.js";
import { useRegistry } from "../helpers/registry.js";
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

  it("records a dirty work tree as such", async () => {
    await writeFile(join(ctx, "untracked.txt"), "not committed\n");
    try {
      const out = join(await temps.make("kiln-attest-dirty-"), "l");
      await build(["--provenance=true", "--output", `type=oci,dest=${out}`]);
      const blob = (d: string): Promise<string> => readFile(join(out, "blobs", "sha256", d.slice(7)), "utf8");
      const root = JSON.parse(await blob(JSON.parse(await readFile(join(out, "index.json"), "utf8")).manifests[0].digest)) as Index;
      const am = JSON.parse(await blob(root.manifests[1]!.digest)) as Manifest;
      const p = JSON.parse(await blob(am.layers[0]!.digest)).predicate;
      expect(p.buildDefinition.externalParameters.request.args["vcs:revision"]).toBe(`${commit}-dirty`);
      expect(p.buildDefinition.resolvedDependencies[0]).toEqual({ uri: `git+https://git.example.com/org/app.git@${commit}`, digest: { sha1: commit }, annotations: { "kiln.dev/git-dirty": "true" } });
    } finally {
      await mustRun("rm", ["-f", join(ctx, "untracked.txt")]);
    }
  });
});
