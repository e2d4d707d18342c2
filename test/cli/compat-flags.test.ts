// Flags pasted from `docker buildx build`, podman/buildah and kaniko jobs (src/cli/compat-flags.ts):
// what kiln accepts does what it says (real builds, a real registry, skopeo as the judge; RUN
// limits read back from inside the step), and the rest is one line naming what to use (exit 2).
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { BuildRequest } from "../../src/cli/build-args.js";
import { checkCommandLine } from "../../src/cli/check.js";
import { expectBuilt, kiln, mustRun } from "../helpers/kiln.js";
import { useBusyboxBase } from "../helpers/busybox.js";
import { startRegistry, useRegistry } from "../helpers/registry.js";
import { makeCerts } from "../registry/harness.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());
const registry = useRegistry();
const base = useBusyboxBase();

/** The build `kiln build ARGV` asks for, through the real option table. */
function parsed(argv: string[]): BuildRequest["options"] {
  return checkCommandLine(["build", ...argv])!.options;
}

async function context(files: Record<string, string>): Promise<string> {
  const dir = await temps.make("kiln-compat-");
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

describe("flags people paste", () => {
  it("--pull alone means always (buildx); --pull=VALUE and --pull VALUE keep their meaning", async () => {
    expect((parsed(["--pull", "."])).pull).toBe("always");
    expect((parsed(["--pull", "never", "."])).pull).toBe("never");
    expect((parsed(["--pull=missing", "."])).pull).toBe("missing");
    expect((parsed(["--pull=true", "."])).pull).toBe("always");
    expect((parsed(["--pull=false", "."])).pull).toBe("missing");
    expect((parsed(["."])).pull).toBe("missing");
    expect(() => checkCommandLine(["build", "--pull=sometimes", "."])).toThrow(/--pull must be always, missing or never/);
  });

  it("-q prints only the image digest (stdout) and nothing on stderr", async () => {
    const ctx = await context({ Dockerfile: "FROM scratch\nCOPY a /a\n", a: "x" });
    const cache = await temps.make();
    const r = await kiln(["build", "-q", "--cache-dir", cache, "-o", `type=oci,dest=${join(cache, "out")}`, ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    expect(r.stderr).toBe("");
  });

  it("--cache-from/--cache-to type=gha|s3|azblob: one line naming what kiln supports (exit 2); type=local parses", async () => {
    for (const t of ["gha", "s3", "azblob"]) {
      const r = await kiln(["build", "--cache-to", `type=${t},mode=max`, "."]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(`--cache-to type=${t} is not supported: kiln keeps its cache in a registry (type=registry,ref=REF) or an OCI layout directory (type=local,dest=DIR`);
    }
    const r = await kiln(["build", "--cache-from", "type=gha", "."]);
    expect(r.stderr).toContain("type=local,src=DIR");
    expect(() => checkCommandLine(["build", "--cache-to", "type=local,dest=/tmp/c", "--cache-from", "type=local,src=/tmp/c", "."])).not.toThrow();
  });

  it("kaniko flags without a meaning in kiln: one line 'kaniko flag --X: use Y', exit 2", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--tar-path", "/x.tar"], /^error: kaniko flag --tar-path: use --output type=docker,dest=FILE\n$/],
      [["--single-snapshot"], /^error: kaniko flag --single-snapshot: kiln writes one layer per step/],
      [["--skip-tls-verify"], /^error: kaniko flag --skip-tls-verify: kiln always verifies TLS; trust the registry's CA with --registry-ca FILE/],
      [["--verbosity=debug"], /^error: kaniko flag --verbosity: use --progress plain, --progress quiet or -q\n$/],
      [["--reproducible"], /^error: kaniko flag --reproducible: set SOURCE_DATE_EPOCH/],
      [["--context", "git://github.com/x/y"], /^error: kaniko flag --context git:\/\/github.com\/x\/y: kiln reads a local directory/],
      [["--cache=true"], /^error: kaniko flag --cache=true: give --cache-repo REPO/],
    ];
    for (const [flags, want] of cases) {
      const r = await kiln(["build", ...flags, ...(flags[0] === "--context" ? [] : ["."])]);
      expect(r.code, flags.join(" ")).toBe(2);
      expect(r.stderr).toMatch(want);
    }
  });

  it("kaniko's job line works: --context dir:// --dockerfile --destination --cache=true --cache-repo --insecure --digest-file --snapshot-mode --use-new-run", async () => {
    const ctx = await context({ "build.Dockerfile": "FROM scratch\nCOPY a /a\n", a: "kaniko" });
    const cache = await temps.make();
    const host = registry().host;
    const digestFile = join(cache, "digest");
    const r = await kiln([
      "build", "--cache-dir", cache, "--progress", "plain",
      `--context=dir://${ctx}`, "--dockerfile", join(ctx, "build.Dockerfile"),
      "--destination", `${host}/team/app:1`, "--cache=true", `--cache-repo=${host}/team/app-cache`,
      "--insecure", "--digest-file", digestFile, "--snapshot-mode=redo", "--use-new-run", "--skip-unused-stages",
    ]);
    const digest = expectBuilt(r);
    expect((await readFile(digestFile, "utf8")).trim()).toBe(digest);
    // pushed with buildx's default min provenance: an index; skopeo picks this platform's image
    const pushed = JSON.parse((await mustRun("skopeo", ["inspect", "--tls-verify=false", `docker://${host}/team/app:1`])).stdout);
    expect(pushed.Layers).toHaveLength(1);
    const cacheManifest = JSON.parse((await mustRun("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${host}/team/app-cache:latest`])).stdout);
    expect(cacheManifest.layers.length).toBeGreaterThan(0);
    // --no-push: named, not pushed
    const r2 = await kiln(["build", "--cache-dir", cache, "-q", `--context=${ctx}`, "--dockerfile", join(ctx, "build.Dockerfile"), "--destination", `${host}/team/other:1`, "--no-push"]);
    expectBuilt(r2);
    expect((await kiln(["images", "--cache-dir", cache])).stdout).toContain(`${host}/team/other`);
    expect((await mustRun("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${host}/team/other:1`]).catch((e: Error) => e)) instanceof Error).toBe(true);
  });

  it("--ulimit and --shm-size reach the RUN step (oci and chroot isolation)", async () => {
    const ctx = await context({ Dockerfile: "FROM base\nRUN ulimit -n > /nofile && ulimit -Hn > /nofile-hard && df -k /dev/shm | tail -1 > /shm\n" });
    for (const isolation of ["oci", "chroot"]) {
      const cache = await temps.make();
      const out = join(cache, "fs");
      const r = await kiln([
        "build", "--cache-dir", cache, "--isolation", isolation, "--progress", "plain", "--build-context", `base=${base().buildContext}`,
        "--ulimit", "nofile=512:1024", "--shm-size", "32m", "-o", `type=local,dest=${out}`, ctx,
      ]);
      expectBuilt(r);
      expect((await readFile(join(out, "nofile"), "utf8")).trim(), isolation).toBe("512");
      expect((await readFile(join(out, "nofile-hard"), "utf8")).trim(), isolation).toBe("1024");
      expect((await readFile(join(out, "shm"), "utf8")).trim().split(/\s+/)[1], isolation).toBe(String(32 * 1024));
    }
    expect(() => checkCommandLine(["build", "--ulimit", "nofile=2048:1024", "."])).toThrow(/soft limit is above the hard limit/);
    expect(() => checkCommandLine(["build", "--ulimit", "files=1", "."])).toThrow(/unknown limit "files"/);
    expect(() => checkCommandLine(["build", "--shm-size", "lots", "."])).toThrow(/--shm-size lots: expected a size/);
    const r = await kiln(["build", "--isolation", "plain-chroot", "--shm-size", "1g", "--build-context", `base=${base().buildContext}`, ctx]);
    expect(r.stderr).toMatch(/--shm-size: isolation plain-chroot has no \/dev\/shm mount of its own/);
  });

  it("--allow network.host is accepted; security.insecure is a clear error (exit 1); others are usage errors", async () => {
    expect(() => checkCommandLine(["build", "--allow", "network.host", "."])).not.toThrow();
    const r = await kiln(["build", "--allow", "security.insecure", "."]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: --allow security.insecure: kiln runs no privileged RUN steps/);
    expect((await kiln(["build", "--allow", "device", "."])).code).toBe(2);
  });

  it("--creds USER:PASS goes to the destination's registry only; --authfile is read", async () => {
    const certs = await makeCerts(await temps.make());
    const secured = await startRegistry({ tls: certs, htpasswd: { user: "ci", password: "s3cret" } });
    try {
      const ctx = await context({ Dockerfile: "FROM scratch\nCOPY a /a\n", a: "creds" });
      const cache = await temps.make();
      const ref = `${secured.host}/app:creds`;
      const env = { DOCKER_CONFIG: await temps.make(), XDG_RUNTIME_DIR: await temps.make() };
      const denied = await kiln(["build", "--cache-dir", cache, "--registry-ca", certs.caCert, "-t", ref, "--push", ctx], { env });
      expect(denied.code).toBe(1);
      const r = await kiln(["build", "--cache-dir", cache, "--registry-ca", certs.caCert, "--creds", "ci:s3cret", "-t", ref, "--push", ctx], { env });
      expectBuilt(r);
      expect(r.stderr).not.toContain("s3cret");
      const seen = JSON.parse((await mustRun("skopeo", ["inspect", "--tls-verify=false", "--creds", "ci:s3cret", `docker://${ref}`])).stdout);
      expect(seen.Layers).toHaveLength(1);
      // an auth.json as podman writes it
      const authfile = join(await temps.make(), "auth.json");
      await writeFile(authfile, JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from("ci:s3cret").toString("base64") } } }));
      expectBuilt(await kiln(["build", "--cache-dir", cache, "--registry-ca", certs.caCert, "--authfile", authfile, "-t", `${secured.host}/app:authfile`, "--push", ctx], { env }));
      // kiln pull and kiln push take them too
      const other = await temps.make();
      expect((await kiln(["pull", "-q", "--cache-dir", other, "--registry-ca", certs.caCert, ref], { env })).code).toBe(1);
      expect((await kiln(["pull", "-q", "--cache-dir", other, "--registry-ca", certs.caCert, "--creds", "ci:s3cret", ref], { env })).code).toBe(0);
      const pushed = await kiln(["push", "-q", "--cache-dir", other, "--registry-ca", certs.caCert, "--authfile", authfile, ref, `${secured.host}/app:copy`], { env });
      expect(pushed.code, pushed.stderr).toBe(0);
      // never handed to another registry
      const { resolveCredentials } = await import("../../src/registry/credentials.js");
      const given = { username: "ci", password: "s3cret", registries: [secured.host] };
      const opts = { credentials: given, dockerConfig: env.DOCKER_CONFIG };
      expect(await resolveCredentials(secured.host, opts)).toEqual({ username: "ci", password: "s3cret" });
      expect(await resolveCredentials(registry().host, opts)).toBeUndefined();
      expect(await resolveCredentials("docker.io", opts)).toBeUndefined();
      // no registry named: --creds has nowhere to go
      expect(() => checkCommandLine(["build", "--creds", "ci:s3cret", "."])).toThrow(/--creds: kiln gives them only to the registries of the image names/);
      expect(() => checkCommandLine(["build", "--creds", "nopassword", "-t", "r.example/x", "."])).toThrow(/--creds: expected USER:PASSWORD/);
    } finally {
      await secured.stop();
    }
  });
});
