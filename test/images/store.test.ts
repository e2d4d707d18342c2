// The local image store by name, through the CLI: build -t / --load record names (concurrent
// builds leave whole records), images lists them, tag and rmi edit them, prune keeps what a name
// reaches and frees it after rmi, pull with no --output stores by name, push NAME pushes from the
// store, and the resolver takes stored names, oci-layout:// paths and registry references.
import { afterAll, describe, expect, it } from "vitest";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expectBuilt, kiln, run } from "../helpers/kiln.js";
import { useRegistry } from "../helpers/registry.js";
import { TempDirs, casePath } from "../helpers/temp.js";

const temps = new TempDirs();
const registry = useRegistry();
afterAll(() => temps.cleanup());

interface Row { name: string; digest: string; platforms: string[]; size: number; created?: string; complete: boolean }

async function images(cache: string): Promise<Row[]> {
  const r = await kiln(["images", "--cache-dir", cache, "--format", "json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Row[];
}

async function context(text: string): Promise<string> {
  const dir = await temps.make("kiln-store-ctx-");
  await writeFile(join(dir, "Dockerfile"), `FROM scratch\nCOPY f /f\n`);
  await writeFile(join(dir, "f"), text);
  return dir;
}

describe("local image store", () => {
  it("build -t records the name; --load writes no ./kiln-out; images lists name, digest, platform, size, created", async () => {
    const cache = await temps.make("kiln-store-");
    const cwd = await temps.make("kiln-store-cwd-");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--load", "-t", "app:1", "-t", "docker.io/library/app:2", await context("one\n")], { cwd });
    const digest = expectBuilt(r);
    expect(await readdir(cwd)).toEqual([]);
    const rows = await images(cache);
    expect(rows.map((x) => x.name)).toEqual(["app:1", "app:2"]);
    for (const row of rows) {
      expect(row.digest).toBe(digest);
      expect(row.platforms).toEqual([`linux/${process.arch === "x64" ? "amd64" : process.arch}`]);
      expect(row.size).toBeGreaterThan(0);
      expect(Date.parse(row.created!)).toBeGreaterThan(Date.now() - 600_000);
      expect(row.complete).toBe(true);
    }
    const table = await kiln(["images", "--cache-dir", cache]);
    expect(table.stdout.split("\n")[0]).toMatch(/^NAME\s+DIGEST\s+PLATFORM\s+SIZE\s+CREATED$/);
    expect(table.stdout).toContain(`app:1   ${digest.slice(0, 19)}`);

    expect((await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--load", await context("x")])).stderr).toMatch(/--load needs a name/);
    const bad = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "-t", "Bad:Name", await context("x")]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^error: -t "Bad:Name": repository name must be lowercase$/);
  });

  it("concurrent builds of one name leave one whole record, of different names all of them", async () => {
    const cache = await temps.make("kiln-store-conc-");
    const ctxs = await Promise.all(["a", "b", "c", "d"].map((t) => context(t)));
    const same = await Promise.all(ctxs.map((c) => kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--load", "-t", "same:1", c])));
    const digests = same.map((r) => expectBuilt(r));
    const rows = await images(cache);
    expect(rows).toHaveLength(1);
    expect(digests).toContain(rows[0]!.digest);
    await Promise.all(ctxs.map((c, i) => kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--load", "-t", `n${i}:1`, c])));
    expect((await images(cache)).map((x) => x.name)).toEqual(["n0:1", "n1:1", "n2:1", "n3:1", "same:1"]);
    expect((await readdir(join(cache, "names"))).filter((n) => !n.endsWith(".json"))).toEqual([]);
  });

  it("tag adds a name, rmi removes it, prune keeps the blobs a name reaches and frees them after the last rmi", async () => {
    const cache = await temps.make("kiln-store-rmi-");
    const digest = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--load", "-t", "keep:1", await context("keep\n")]));
    expect((await kiln(["tag", "--cache-dir", cache, "keep:1", "other"])).code).toBe(0);
    expect((await images(cache)).map((x) => [x.name, x.digest])).toEqual([["keep:1", digest], ["other:latest", digest]]);
    const blobs = async (): Promise<string[]> => (await readdir(join(cache, "blobs", "sha256"))).sort();
    const before = await blobs();
    // blobs younger than the grace period are kept anyway: make the store old by pruning "later"
    const prune = (): Promise<unknown> => run("node", ["-e", `import("${join(process.cwd(), "dist/cache/prune.js")}").then(async (p) => { const { BlobStore } = await import("${join(process.cwd(), "dist/store/blob-store.js")}"); await p.prune(new BlobStore(${JSON.stringify(cache)}), { now: Date.now() + 86400e3, graceMs: 1 }); })`]);
    await prune();
    expect(await blobs()).toEqual(before);
    const rmi = await kiln(["rmi", "--cache-dir", cache, "keep:1"]);
    expect(rmi.stdout).toBe("Untagged: keep:1\n");
    await prune();
    expect(await blobs()).toEqual(before); // other:latest still reaches them
    expect((await kiln(["rmi", "--cache-dir", cache, "other", "nosuch:2"])).stderr.trim()).toBe("error: kiln rmi: no such image: nosuch:2");
    await prune();
    expect(await blobs()).not.toContain(digest.slice(7));
    expect(await images(cache)).toEqual([]);
    const run1 = await kiln(["tag", "--cache-dir", cache, "gone:1", "x"]);
    expect(run1.code).toBe(1);
    expect(run1.stderr.trim()).toBe(`error: image gone:1 is not in the local store (pull policy "never")`);
  });

  it("pull with no --output stores by name; push NAME pushes from the store; tag takes oci-layout://", async () => {
    const ref = `${registry().host}/store/app:1`;
    const pushed = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-store-c1-"), "--push", "--provenance=false", "-t", ref, casePath("metadata")]));
    const cache = await temps.make("kiln-store-c2-");
    const pull = await kiln(["pull", "--cache-dir", cache, "--insecure-registry", registry().host, ref]);
    expect(pull.code, pull.stderr).toBe(0);
    expect((await images(cache)).map((x) => [x.name, x.digest])).toEqual([[ref, pushed]]);
    // push from the store: to the name itself by default, and to another reference
    const again = await kiln(["push", "-q", "--cache-dir", cache, "--insecure-registry", registry().host, ref, `${registry().host}/store/copy:2`]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe(pushed);
    const inspect = await run("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${registry().host}/store/copy:2`]);
    expect(inspect.stdout.trim()).toBe(pushed);
    const missing = await kiln(["push", "-q", "--cache-dir", cache, "nosuch:1"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe("error: kiln push: nosuch:1 is neither a stored image (see kiln images) nor an OCI layout directory");
    // a layout: its blobs join the store, so the name outlives the layout
    const layoutDir = join(await temps.make("kiln-store-layout-"), "l");
    await mkdir(layoutDir);
    const lay = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-store-c3-"), "-o", `type=oci,dest=${layoutDir}`, "-t", "lay:1", await context("layout\n")]));
    expect((await kiln(["tag", "--cache-dir", cache, `oci-layout://${layoutDir}:1`, "fromlayout:1"])).code).toBe(0);
    const rows = await images(cache);
    expect(rows.find((x) => x.name === "fromlayout:1")).toMatchObject({ digest: lay, complete: true });
  });
});
