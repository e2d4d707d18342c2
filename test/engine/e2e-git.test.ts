// End-to-end: git sources from servers on 127.0.0.1 — `git daemon` (git://) and `git
// http-backend` behind a node HTTP server with basic auth (smart HTTP). The build context and
// named contexts as git URLs (#ref:subdir and ?ref=&subdir=, submodules, .git left out unless
// BUILDKIT_CONTEXT_KEEP_GIT_DIR), GIT_AUTH_TOKEN sent to that host only, ADD <git-url> with
// --keep-git-dir and --checksum, cached by commit (a second build only lists refs), the commit in
// the metadata file, named git contexts fetched only when the target needs them, and the
// refusals: a missing ref, a checksum (ADD --checksum, ?checksum= on a context) that does not match.
import { readFile } from "node:fs/promises";
import { existsSync, readdirSync, statSync } from "node:fs";
import { prune } from "../../src/cache/prune.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLayout } from "../helpers/build.js";
import { kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";
import { startGitDaemon, startHttpGit, TestRepo, type HttpGit, type Served } from "../helpers/git-server.js";

const temps = new TempDirs();
const TOKEN = "kiln-test-token-9f3a1c";
const BASIC = `basic ${Buffer.from(`x-access-token:${TOKEN}`).toString("base64")}`;
let base: string;
let daemon: Served;
let http: HttpGit;
let open: HttpGit;
let repo: TestRepo;
let first: string;
let tagged: string;

beforeAll(async () => {
  base = await temps.make("kiln-git-srv-");
  const lib = await TestRepo.create(join(await temps.make("kiln-git-lib-"), "lib"));
  await lib.commit({ "lib.txt": "from the submodule\n" });
  await lib.bare(join(base, "lib.git"));
  daemon = await startGitDaemon(base);
  repo = await TestRepo.create(join(await temps.make("kiln-git-work-"), "repo"));
  await repo.commit({
    Dockerfile: "FROM scratch\nCOPY . /src\n",
    "hello.txt": "hello from git\n",
    "app/Dockerfile": "FROM scratch\nCOPY . /app\n",
    "app/main.txt": "main in app\n",
    "Dockerfile.named": "FROM scratch\nCOPY --from=other /hello.txt /other.txt\nCOPY hello.txt /local/hello.txt\n",
  });
  await repo.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", `${daemon.url}/lib.git`, "vendor/lib");
  first = await repo.commit({}, "with submodule");
  await repo.git("tag", "-a", "-m", "v1", "v1");
  tagged = first;
  await repo.bare(join(base, "repo.git"));
  http = await startHttpGit(base, [BASIC]);
  open = await startHttpGit(base, []);
});
afterAll(async () => {
  await daemon?.stop();
  await http?.stop();
  await open?.stop();
  await temps.cleanup();
});

async function files(layout: string): Promise<string> {
  return umociUnpack(temps, layout, "latest");
}

describe("kiln build: git contexts", () => {
  it("builds git://HOST/repo.git#main:app (the subdirectory is the context) and records the commit", async () => {
    const meta = join(await temps.make("kiln-git-meta-"), "meta.json");
    const { layout } = await buildLayout(temps, `${daemon.url}/repo.git#main:app`, ["-t", "latest", "--metadata-file", meta]);
    const root = await files(layout);
    expect(await readFile(join(root, "app/main.txt"), "utf8")).toBe("main in app\n");
    expect(existsSync(join(root, "app/Dockerfile"))).toBe(true);
    expect(existsSync(join(root, "app/hello.txt"))).toBe(false);
    const m = JSON.parse(await readFile(meta, "utf8")) as Record<string, unknown>;
    expect(m["vcs.revision"]).toBe(first);
    expect(m["vcs.source"]).toBe(`${daemon.url}/repo.git`);
    expect(m["kiln.git"]).toEqual([{ use: "context", remote: `${daemon.url}/repo.git`, ref: "main", subdir: "app", commit: first }]);
  });

  it("the ?ref=&subdir= form builds the same image as #ref:subdir", async () => {
    const a = await buildLayout(temps, `${daemon.url}/repo.git#main:app`, ["-t", "latest"]);
    const b = await buildLayout(temps, `${daemon.url}/repo.git?ref=main&subdir=app`, ["-t", "latest", "--build-arg", "SOURCE_DATE_EPOCH=0"]);
    const c = await buildLayout(temps, `${daemon.url}/repo.git#main:app`, ["-t", "latest", "--build-arg", "SOURCE_DATE_EPOCH=0"]);
    expect(b.digest).toBe(c.digest);
    expect(a.digest).toMatch(/^sha256:/);
  });

  it("checks out submodules and leaves every .git out; BUILDKIT_CONTEXT_KEEP_GIT_DIR=1 keeps it", async () => {
    const { layout } = await buildLayout(temps, `${daemon.url}/repo.git#v1`, ["-t", "latest"]);
    const root = await files(layout);
    expect(await readFile(join(root, "src/hello.txt"), "utf8")).toBe("hello from git\n");
    expect(await readFile(join(root, "src/vendor/lib/lib.txt"), "utf8")).toBe("from the submodule\n");
    expect(existsSync(join(root, "src/.git"))).toBe(false);
    expect(existsSync(join(root, "src/vendor/lib/.git"))).toBe(false);
    const kept = await buildLayout(temps, `${daemon.url}/repo.git#v1`, ["-t", "latest", "--build-arg", "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1"]);
    const keptRoot = await files(kept.layout);
    expect(existsSync(join(keptRoot, "src/.git/HEAD"))).toBe(true);
    expect(await readFile(join(keptRoot, "src/.git/config"), "utf8")).toContain(`${daemon.url}/repo.git`);
  });

  it("smart HTTP with --secret id=GIT_AUTH_TOKEN.<host>: the token goes to that host only, never into the output", async () => {
    const tokenFile = join(await temps.make("kiln-git-tok-"), "token");
    await import("node:fs/promises").then((fs) => fs.writeFile(tokenFile, `${TOKEN}\n`));
    const before = http.authorizations.length;
    const layout = join(await temps.make("kiln-git-out-"), "layout");
    const result = await kiln([
      "build", "--progress", "plain", "--cache-dir", await temps.make("kiln-git-c-"), "-t", "latest", "--output", `type=oci,dest=${layout}`,
      "--secret", `id=GIT_AUTH_TOKEN.${new URL(http.url).host},src=${tokenFile}`, "--build-context", `other=${open.url}/repo.git#main`, "-f", "Dockerfile.named", `${http.url}/repo.git#main`,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const root = await files(layout);
    expect(await readFile(join(root, "other.txt"), "utf8")).toBe("hello from git\n");
    expect(await readFile(join(root, "local/hello.txt"), "utf8")).toBe("hello from git\n");
    const seen = http.authorizations.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((a) => a === BASIC)).toBe(true);
    expect(open.authorizations.every((a) => a === undefined)).toBe(true);
    expect(result.stderr + result.stdout).not.toContain(TOKEN);
    expect(result.stderr + result.stdout).not.toContain(Buffer.from(`x-access-token:${TOKEN}`).toString("base64"));
  });

  it("--secret id=GIT_AUTH_HEADER sends that Authorization value", async () => {
    const before = http.authorizations.length;
    const layout = join(await temps.make("kiln-git-out-"), "layout");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-git-c-"), "-t", "latest", "--output", `type=oci,dest=${layout}`,
      "--secret", "id=GIT_AUTH_HEADER,env=KILN_TEST_GIT_HEADER", `${http.url}/repo.git#main:app`], { env: { KILN_TEST_GIT_HEADER: BASIC } });
    expect(r.code, r.stderr).toBe(0);
    expect(http.authorizations.slice(before).every((a) => a === BASIC)).toBe(true);
  });

  it("refuses without the token, and never prints a URL's credentials whole", async () => {
    const r = await kiln(["build", "--progress", "plain", "--cache-dir", await temps.make("kiln-git-c-"), `${http.url}/repo.git#main`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n").filter((l) => l.startsWith("error")).length).toBe(1);
    expect(r.stderr).toContain(`git source ${http.url}/repo.git#main`);
    const withInfo = http.url.replace("http://", `http://x-access-token:${TOKEN}@`);
    const bad = await kiln(["build", "--progress", "plain", "--cache-dir", await temps.make("kiln-git-c-"), `${withInfo}/repo.git#no-such-branch`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`git source ${http.url.replace("http://", "http://***@")}/repo.git#no-such-branch: ref "no-such-branch" not found`);
    expect(bad.stderr + bad.stdout).not.toContain(TOKEN);
  });

  it("a named git context only an unbuilt stage uses is never fetched (not even its refs listed); the target that uses it fetches it", async () => {
    const ctx = await temps.make("kiln-git-lazy-");
    const fs = await import("node:fs/promises");
    await fs.writeFile(join(ctx, "Dockerfile"), "FROM scratch AS uses\nCOPY --from=Lazy /hello.txt /lazy.txt\nFROM scratch AS final\nCOPY local.txt /local.txt\n");
    await fs.writeFile(join(ctx, "local.txt"), "local\n");
    const build = async (target: string): Promise<{ code: number; stderr: string; layout: string }> => {
      const layout = join(await temps.make("kiln-git-out-"), "layout");
      const r = await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-git-c-"), "-t", "latest", "--output", `type=oci,dest=${layout}`,
        "--build-context", `lazy=${open.url}/repo.git#main`, "--target", target, ctx]);
      return { code: r.code, stderr: r.stderr, layout };
    };
    const requests = open.authorizations.length;
    const fetches = open.fetches;
    const skipped = await build("final");
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(await readFile(join(await files(skipped.layout), "local.txt"), "utf8")).toBe("local\n");
    expect(open.authorizations.length).toBe(requests);
    expect(open.fetches).toBe(fetches);
    const used = await build("uses");
    expect(used.code, used.stderr).toBe(0);
    expect(await readFile(join(await files(used.layout), "lazy.txt"), "utf8")).toBe("hello from git\n");
    expect(open.fetches).toBeGreaterThan(fetches);
  });

  it("a named git context only a base image's ONBUILD trigger names is fetched when the trigger runs", async () => {
    const fs = await import("node:fs/promises");
    const baseCtx = await temps.make("kiln-git-onb-");
    await fs.writeFile(join(baseCtx, "Dockerfile"), "FROM scratch\nONBUILD COPY --from=lazy /hello.txt /from-onbuild.txt\n");
    const baseLayout = join(await temps.make("kiln-git-out-"), "layout");
    const b = await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-git-c-"), "-t", "latest", "--output", `type=oci,dest=${baseLayout}`, baseCtx]);
    expect(b.code, b.stderr).toBe(0);
    const ctx = await temps.make("kiln-git-onb-");
    await fs.writeFile(join(ctx, "Dockerfile"), "FROM base\n");
    const layout = join(await temps.make("kiln-git-out-"), "layout");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-git-c-"), "-t", "latest", "--output", `type=oci,dest=${layout}`,
      "--build-context", `base=oci-layout://${baseLayout}:latest`, "--build-context", `lazy=${open.url}/repo.git#main`, ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(await files(layout), "from-onbuild.txt"), "utf8")).toBe("hello from git\n");
  });

  it("?checksum= on the context and on a named context: builds when the ref resolves to it, else one line naming the redacted URL and both commits, exit 1, before any step", async () => {
    const ctxDir = await temps.make("kiln-git-sumctx-");
    const fs = await import("node:fs/promises");
    await fs.writeFile(join(ctxDir, "Dockerfile"), "FROM scratch\nCOPY local.txt /local.txt\nCOPY --from=other /hello.txt /other.txt\n");
    await fs.writeFile(join(ctxDir, "local.txt"), "local\n");
    const withInfo = open.url.replace("http://", `http://x-access-token:${TOKEN}@`);
    const shown = open.url.replace("http://", "http://***@");
    const wrong = "0123456789abcdef0123456789abcdef01234567";
    const build = async (args: string[]): Promise<{ code: number; stderr: string; layout: string }> => {
      const layout = join(await temps.make("kiln-git-out-"), "layout");
      const r = await kiln(["build", "--progress", "plain", "--cache-dir", await temps.make("kiln-git-c-"), "-t", "latest", "--output", `type=oci,dest=${layout}`, ...args]);
      return { code: r.code, stderr: r.stderr, layout };
    };
    // the main context: full and abbreviated commits match
    const ok = await build([`${withInfo}/repo.git?ref=main&subdir=app&checksum=${first}`]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await readFile(join(await files(ok.layout), "app/main.txt"), "utf8")).toBe("main in app\n");
    const short = await build(["--build-context", `other=${open.url}/repo.git?ref=v1&checksum=${first.slice(0, 10)}`, ctxDir]);
    expect(short.code, short.stderr).toBe(0);
    expect(await readFile(join(await files(short.layout), "other.txt"), "utf8")).toBe("hello from git\n");

    const fetches = open.fetches;
    const bad = await build([`${withInfo}/repo.git?ref=main&checksum=${wrong}`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe(`error: git source ${shown}/repo.git?ref=main&checksum=${wrong}: ref "main" resolves to commit ${first}, not the checksum ${wrong}`);
    const named = await build(["--build-context", `other=${withInfo}/repo.git?branch=main&checksum=${wrong}`, ctxDir]);
    expect(named.code).toBe(1);
    // one line: no step started (the COPY of the local file comes first in the Dockerfile)
    expect(named.stderr.trim()).toBe(`error: git source ${shown}/repo.git?branch=main&checksum=${wrong}: ref "refs/heads/main" resolves to commit ${first}, not the checksum ${wrong}`);
    // a commit given as the ref is checked too, without asking the server
    const pinned = await build([`${open.url}/repo.git?ref=${first}&checksum=${wrong}`]);
    expect(pinned.code).toBe(1);
    expect(pinned.stderr.trim()).toBe(`error: git source ${open.url}/repo.git?ref=${first}&checksum=${wrong}: ref "${first}" resolves to commit ${first}, not the checksum ${wrong}`);
    expect(open.fetches).toBe(fetches);
    expect(bad.stderr + named.stderr).not.toContain(TOKEN);
  });

  it("a ref the server does not have: one line naming the context URL, exit 1", async () => {
    const r = await kiln(["build", "--cache-dir", await temps.make("kiln-git-c-"), `${daemon.url}/repo.git#nope`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`error: git source ${daemon.url}/repo.git#nope: ref "nope" not found on the server`);
  });
});

describe("kiln build: ADD <git-url>", () => {
  async function addBuild(cacheDir: string, dockerfile: string, extra: string[] = []): Promise<{ code: number; stderr: string; steps: Array<{ instruction: string; cached: boolean }>; layout: string }> {
    const ctx = await temps.make("kiln-git-add-");
    const fs = await import("node:fs/promises");
    await fs.writeFile(join(ctx, "Dockerfile"), dockerfile);
    await fs.writeFile(join(ctx, "after.txt"), "after\n");
    const out = await temps.make("kiln-git-add-out-");
    const meta = join(out, "meta.json");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", cacheDir, "--metadata-file", meta, "-t", "latest", "--output", `type=oci,dest=${join(out, "layout")}`, ...extra, ctx]);
    const steps = r.code === 0 ? (JSON.parse(await readFile(meta, "utf8")) as { "kiln.steps": Array<{ instruction: string; cached: boolean }> })["kiln.steps"] : [];
    return { code: r.code, stderr: r.stderr, steps, layout: join(out, "layout") };
  }

  it("ADD --keep-git-dir, cached by commit: the same ref again only lists refs; a new commit re-runs it and the steps after", async () => {
    const cache = await temps.make("kiln-git-addcache-");
    const work = await TestRepo.create(join(await temps.make("kiln-git-w2-"), "moving"));
    const c1 = await work.commit({ "v.txt": "one\n" });
    await work.bare(join(base, "moving.git"));
    const df = `FROM scratch\nADD --keep-git-dir ${daemon.url}/repo.git#${first} /k\nADD ${http.url}/moving.git#main /m\nCOPY after.txt /after.txt\n`;
    const secret = ["--secret", `id=GIT_AUTH_TOKEN,env=KILN_TEST_GIT_TOKEN`];
    process.env.KILN_TEST_GIT_TOKEN = TOKEN;
    const one = await addBuild(cache, df, secret);
    expect(one.stderr).toBe("");
    expect(one.steps.map((s) => s.cached)).toEqual([false, false, false]);
    const root = await files(one.layout);
    expect(await readFile(join(root, "m/v.txt"), "utf8")).toBe("one\n");
    expect(existsSync(join(root, "m/.git"))).toBe(false);
    expect((await readFile(join(root, "k/.git/HEAD"), "utf8")).trim()).toBe(first);
    expect(await readFile(join(root, "k/vendor/lib/lib.txt"), "utf8")).toBe("from the submodule\n");

    const fetchesBefore = http.fetches;
    const two = await addBuild(cache, df, secret);
    expect(two.steps.map((s) => s.cached)).toEqual([true, true, true]);
    expect(http.fetches).toBe(fetchesBefore);

    const c2 = await work.commit({ "v.txt": "two\n" });
    await work.push();
    expect(c2).not.toBe(c1);
    const three = await addBuild(cache, df, secret);
    expect(three.steps.map((s) => s.cached)).toEqual([true, false, false]);
    expect(http.fetches).toBeGreaterThan(fetchesBefore);
    expect(await readFile(join(await files(three.layout), "m/v.txt"), "utf8")).toBe("two\n");

    // kiln prune: checkouts just used stay; unused past the grace period they go
    const checkouts = (): string[] => readdirSync(join(cache, "git"));
    expect(checkouts()).toHaveLength(3); // repo at first (with its submodule), moving at c1 and c2
    await prune(new BlobStore(cache));
    expect(checkouts()).toHaveLength(3);
    await prune(new BlobStore(cache), { now: Date.now() + 3_600_000 });
    expect(checkouts()).toEqual([]);
  });

  it("a commit that is no branch tip, from a server that refuses unadvertised commits (protocol v0): fetched whole instead", async () => {
    const home = await temps.make("kiln-git-home-");
    const fs = await import("node:fs/promises");
    await fs.writeFile(join(home, ".gitconfig"), "[protocol]\n\tversion = 0\n");
    const older = await repo.git("rev-parse", "HEAD~1");
    expect(older).not.toBe(first);
    const ctx = await temps.make("kiln-git-add-");
    await fs.writeFile(join(ctx, "Dockerfile"), `FROM scratch\nADD ${daemon.url}/repo.git#${older} /r\n`);
    const out = await temps.make("kiln-git-out-");
    const r = await kiln(["build", "--progress", "plain", "--cache-dir", join(out, "cache"), "-t", "latest", "--output", `type=oci,dest=${join(out, "layout")}`, ctx], { env: { HOME: home } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`git fetch ${daemon.url}/repo.git#${older}: the server refuses commit ${older.slice(0, 12)} by id; fetching its branches and tags`);
    const root = await files(join(out, "layout"));
    expect(await readFile(join(root, "r/hello.txt"), "utf8")).toBe("hello from git\n");
    expect(existsSync(join(root, "r/vendor"))).toBe(false); // the submodule came with the later commit
  });

  it("ADD --checksum=<commit>: builds when the ref resolves to it, else one line naming the Dockerfile line before fetching", async () => {
    const cache = await temps.make("kiln-git-sum-");
    const ok = await addBuild(cache, `FROM scratch\nADD --checksum=${tagged} --exclude=app --chown=7:8 ${daemon.url}/repo.git#v1 /r\n`);
    expect(ok.stderr).toBe("");
    const root = await files(ok.layout);
    expect(await readFile(join(root, "r/hello.txt"), "utf8")).toBe("hello from git\n");
    expect(existsSync(join(root, "r/app"))).toBe(false);
    expect(statSync(join(root, "r/hello.txt")).uid).toBe(7);
    const wrong = "0123456789abcdef0123456789abcdef01234567";
    const bad = await addBuild(cache, `FROM scratch\nCOPY after.txt /a\nADD --checksum=${wrong} ${daemon.url}/repo.git#v1 /r\n`);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe(`error: Dockerfile:3: ADD: git source ${daemon.url}/repo.git#v1: ref "v1" resolves to commit ${tagged}, not the checksum ${wrong}`);
    const missing = await addBuild(cache, `FROM scratch\nADD ${daemon.url}/repo.git#no-such-tag /r\n`);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe(`error: Dockerfile:2: ADD: git source ${daemon.url}/repo.git#no-such-tag: ref "no-such-tag" not found on the server`);
  });
});
