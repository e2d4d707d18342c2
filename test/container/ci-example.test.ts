// testdata/examples/ci/ci.sh, the build → test in the image → push pattern, against a real
// registry: the passing image is pushed (the registry's digest is kiln's); a broken build's tests
// fail inside the image, the script exits 1 and nothing is pushed.
import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { useBusyboxBase } from "../helpers/busybox.js";
import { KILN_BIN, REPO_ROOT, run } from "../helpers/kiln.js";
import { useRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const base = useBusyboxBase();
const registry = useRegistry();
afterAll(() => temps.cleanup());

const script = join(REPO_ROOT, "testdata", "examples", "ci", "ci.sh");

async function ci(image: string, cache: string, buildFlags = ""): Promise<Awaited<ReturnType<typeof run>>> {
  return run("sh", [script], {
    env: {
      KILN: `${process.execPath} ${KILN_BIN}`,
      KILN_FLAGS: `--cache-dir ${cache}`,
      PUSH_FLAGS: `--insecure-registry ${registry().host}`,
      BUILD_FLAGS: buildFlags,
      IMAGE: image,
      BASE: base().buildContext,
    },
  });
}

async function remoteDigest(ref: string): Promise<string> {
  const r = await run("skopeo", ["inspect", "--tls-verify=false", "--format", "{{.Digest}}", `docker://${ref}`]);
  return r.code === 0 ? r.stdout.trim() : "";
}

describe("the CI example: build, test inside the image, push when green", () => {
  it("pushes an image whose tests pass", async () => {
    const cache = await temps.make("kiln-ci-");
    const image = `${registry().host}/ci/app:1`;
    const r = await ci(image, cache);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("ok - greet\n");
    const local = await run(process.execPath, [KILN_BIN, "images", "--cache-dir", cache, "--format", "json"]);
    const stored = (JSON.parse(local.stdout) as Array<{ name: string; digest: string }>).find((x) => x.name === image);
    expect(stored).toBeDefined();
    expect(r.stdout.trim().split("\n").pop()).toBe(stored!.digest);
    expect(await remoteDigest(image)).toBe(stored!.digest);
  });

  it("does not push an image whose tests fail", async () => {
    const cache = await temps.make("kiln-ci-broken-");
    const image = `${registry().host}/ci/broken:1`;
    const r = await ci(image, cache, "--build-arg BROKEN=1");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("not ok - greet: got 'goodbye kiln'\n");
    expect(r.stderr).toContain(`ci: tests failed in ${image}: not pushed\n`);
    expect(await remoteDigest(image)).toBe("");
  });
});
