// The context's git state as the provenance records it, read with the host's git from real
// checkouts: the HEAD commit, the origin remote without its credentials, a dirty work tree; a
// directory outside any checkout has none.
import { afterAll, describe, expect, it } from "vitest";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readVcsInfo, redactRemote } from "../../src/context/vcs.js";
import { provenancePredicate } from "../../src/attest/provenance.js";
import { mustRun } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const GIT_ENV = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };

/** A checkout with one commit (and `origin` when given); returns its dir and HEAD. */
async function gitCheckout(files: Record<string, string>, origin?: string): Promise<{ dir: string; commit: string }> {
  const dir = await temps.make("kiln-vcs-");
  const git = (...args: string[]) => mustRun("git", ["-C", dir, ...args], { env: GIT_ENV });
  await git("init", "-q", "-b", "main");
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, ".."), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  await git("add", "-A");
  await git("commit", "-q", "-m", "one");
  if (origin) await git("remote", "add", "origin", origin);
  return { dir, commit: (await git("rev-parse", "HEAD")).stdout.trim() };
}

describe("readVcsInfo", () => {
  it("reads HEAD and origin (credentials stripped), clean, from the checkout and from a subdirectory of it", async () => {
    const { dir, commit } = await gitCheckout({ "Dockerfile": "FROM scratch\n", "app/x.txt": "x\n" }, "https://bot:ghp_s3cret@git.example.com/org/app.git");
    expect(commit).toMatch(/^[0-9a-f]{40}$/);
    expect(await readVcsInfo(dir)).toEqual({ commit, remote: "https://git.example.com/org/app.git" });
    expect(await readVcsInfo(join(dir, "app"))).toEqual({ commit, remote: "https://git.example.com/org/app.git" });
  });

  it("marks a work tree with changes or untracked files dirty, and has no remote without origin", async () => {
    const { dir, commit } = await gitCheckout({ "Dockerfile": "FROM scratch\n" });
    expect(await readVcsInfo(dir)).toEqual({ commit });
    await writeFile(join(dir, "new.txt"), "untracked\n");
    expect(await readVcsInfo(dir)).toEqual({ commit, dirty: true });
    await writeFile(join(dir, "Dockerfile"), "FROM scratch\nRUN true\n");
    expect(await readVcsInfo(dir)).toEqual({ commit, dirty: true });
    // not asked (buildx's default: BUILDX_GIT_CHECK_DIRTY unset): the commit alone, no status read
    expect(await readVcsInfo(dir, undefined, { checkDirty: false })).toEqual({ commit });
  });

  it("never runs a command the checkout's config names (core.fsmonitor)", async () => {
    const { dir, commit } = await gitCheckout({ "Dockerfile": "FROM scratch\n" });
    const marker = join(await temps.make("kiln-vcs-marker-"), "ran");
    await writeFile(join(dir, ".git", "hook.sh"), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    await mustRun("git", ["-C", dir, "config", "core.fsmonitor", join(dir, ".git", "hook.sh")]);
    expect(await readVcsInfo(dir)).toEqual({ commit });
    expect(await stat(marker).catch(() => undefined)).toBeUndefined();
    // (git itself would have run it)
    await mustRun("git", ["-C", dir, "status", "--porcelain"]);
    expect(await stat(marker).catch(() => undefined)).toBeDefined();
  });

  it("reads several checkouts at once, each with its own git status", async () => {
    const clean = await gitCheckout({ "Dockerfile": "FROM scratch\n" });
    const dirty = await gitCheckout({ "Dockerfile": "FROM scratch\n" });
    await writeFile(join(dirty.dir, "new.txt"), "untracked\n");
    expect(await Promise.all([readVcsInfo(clean.dir), readVcsInfo(dirty.dir), readVcsInfo(clean.dir)])).toEqual([
      { commit: clean.commit }, { commit: dirty.commit, dirty: true }, { commit: clean.commit },
    ]);
  });

  it("ends its git process with the signal: an aborted read has nothing", async () => {
    const { dir, commit } = await gitCheckout({ "Dockerfile": "FROM scratch\n" });
    expect(await readVcsInfo(dir, AbortSignal.abort())).toBeUndefined();
    expect(await readVcsInfo(dir)).toEqual({ commit });
  });

  it("has nothing for a directory outside any checkout", async () => {
    expect(await readVcsInfo(await temps.make("kiln-novcs-"))).toBeUndefined();
  });

  it("redacts URL credentials but keeps scp-like remotes", () => {
    expect(redactRemote("https://user:tok@h.example/r.git")).toBe("https://h.example/r.git");
    expect(redactRemote("ssh://git@h.example:2222/r.git")).toBe("ssh://h.example:2222/r.git");
    expect(redactRemote("git@github.com:org/repo.git")).toBe("git@github.com:org/repo.git");
    expect(redactRemote("https://h.example/r.git\n")).toBe("https://h.example/r.git");
    expect(redactRemote("https://tok@h.example/r.git")).toBe("https://h.example/r.git");
    // an "@" after the host (a digest, a path) is no credential
    expect(redactRemote("docker-image://reg.example/app@sha256:abcd")).toBe("docker-image://reg.example/app@sha256:abcd");
    expect(redactRemote("https://h.example/u@x/r.git")).toBe("https://h.example/u@x/r.git");
  });
});

describe("provenance with a git context", () => {
  const base = {
    mode: "min" as const, dockerfile: { path: "Dockerfile", sha256: "ab".repeat(32) }, buildArgs: {}, platform: "linux/amd64",
    dependencies: [{ uri: "oci-layout:///b:v1", digest: { sha256: "cd".repeat(32) } }], steps: [], version: "0", startedOn: new Date(0), finishedOn: new Date(0), invocationId: "i",
  };
  const commit = "0123456789abcdef0123456789abcdef01234567";

  it("records vcs:source/vcs:revision, buildkit_metadata.vcs and a git+URL@commit dependency first", () => {
    const p = provenancePredicate({ ...base, vcs: { commit, remote: "https://x:y@git.example/o/r.git" } }) as any;
    expect(p.buildDefinition.externalParameters.request.args).toEqual({ "vcs:source": "https://git.example/o/r.git", "vcs:revision": commit });
    expect(p.runDetails.metadata.buildkit_metadata).toEqual({ vcs: { source: "https://git.example/o/r.git", revision: commit } });
    expect(p.buildDefinition.resolvedDependencies[0]).toEqual({ uri: `git+https://git.example/o/r.git@${commit}`, digest: { sha1: commit } });
    expect(p.buildDefinition.resolvedDependencies).toHaveLength(2);
    expect(JSON.stringify(p)).not.toContain("x:y");
  });

  it("records a dirty tree as such, and a checkout without a remote by its revision only", () => {
    const dirty = provenancePredicate({ ...base, vcs: { commit, remote: "https://git.example/o/r.git", dirty: true } }) as any;
    expect(dirty.buildDefinition.externalParameters.request.args["vcs:revision"]).toBe(`${commit}-dirty`);
    expect(dirty.buildDefinition.resolvedDependencies[0].annotations).toEqual({ "kiln.dev/git-dirty": "true" });
    const local = provenancePredicate({ ...base, vcs: { commit } }) as any;
    expect(local.buildDefinition.externalParameters.request.args).toEqual({ "vcs:revision": commit });
    expect(local.buildDefinition.resolvedDependencies).toHaveLength(1);
    const none = provenancePredicate(base) as any;
    expect(none.runDetails.metadata.buildkit_metadata).toBeUndefined();
  });
});
