// The .git reader (src/context/git-dir.ts) against real git: checkouts made with the host's git
// (a plain repository, a linked worktree, a relative gitdir file, refs only in packed-refs, a detached HEAD, no commit yet,
// a SHA-256 repository, insteadOf rewrites, an include directive), and each answer compared with
// what `git rev-parse HEAD` / `git remote get-url origin` print for the same checkout. HOME is a
// temp directory for both, so the global config is the test's own.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { ASK_GIT, applyInsteadOf, findGitDirs, parseGitConfig, readHead, readOriginUrl, type GitDirs } from "../../src/context/git-dir.js";
import { readVcsInfo } from "../../src/context/vcs.js";
import { mustRun, run } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

let home: string;
const env = (): Record<string, string> => ({
  HOME: home, XDG_CONFIG_HOME: join(home, ".config"),
  GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com",
});
const git = (dir: string, ...args: string[]) => mustRun("git", ["-C", dir, ...args], { env: env() });
const readerEnv = (): NodeJS.ProcessEnv => ({ ...process.env, ...env() });

beforeAll(async () => {
  home = await temps.make("kiln-gitdir-home-");
});

/** A repository with one commit on main; returns its directory. */
async function repo(initArgs: string[] = []): Promise<string> {
  const dir = await temps.make("kiln-gitdir-");
  await git(dir, "init", "-q", "-b", "main", ...initArgs);
  await writeFile(join(dir, "f.txt"), "one\n");
  await git(dir, "add", "-A");
  await git(dir, "commit", "-q", "-m", "one");
  return dir;
}

function dirsOf(dir: string): GitDirs {
  const d = findGitDirs(dir);
  if (d === undefined || d === ASK_GIT) throw new Error(`no git dirs for ${dir}`);
  return d;
}

async function gitHead(dir: string): Promise<string> {
  return (await git(dir, "rev-parse", "HEAD")).stdout.trim();
}

async function gitOrigin(dir: string): Promise<string | undefined> {
  const r = await run("git", ["-C", dir, "remote", "get-url", "origin"], { env: env() });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

describe("the .git reader", () => {
  it("reads HEAD and origin of a plain repository, from its top and a subdirectory, as git prints them", async () => {
    const dir = await repo();
    await git(dir, "remote", "add", "origin", "https://git.example.com/org/app.git");
    await mkdir(join(dir, "sub", "deeper"), { recursive: true });
    for (const d of [dir, join(dir, "sub", "deeper")]) {
      const dirs = dirsOf(d);
      expect(dirs.top).toBe(dir);
      expect(readHead(dirs)).toBe(await gitHead(dir));
      expect(readOriginUrl(dirs, readerEnv())).toBe(await gitOrigin(dir));
    }
    expect(readOriginUrl(dirsOf(dir), readerEnv())).toBe("https://git.example.com/org/app.git");
  });

  it("follows a linked worktree's .git file and commondir to its own HEAD and the shared refs and config", async () => {
    const dir = await repo();
    await git(dir, "remote", "add", "origin", "git@git.example.com:org/app.git");
    const wt = join(await temps.make("kiln-gitdir-wt-"), "wt");
    await git(dir, "worktree", "add", "-q", "-b", "side", wt);
    await writeFile(join(wt, "g.txt"), "two\n");
    await git(wt, "add", "-A");
    await git(wt, "commit", "-q", "-m", "two");
    const dirs = dirsOf(wt);
    expect(dirs.gitDir).not.toBe(dirs.commonDir);
    expect(readHead(dirs)).toBe(await gitHead(wt));
    expect(readHead(dirs)).not.toBe(await gitHead(dir));
    expect(readOriginUrl(dirs, readerEnv())).toBe(await gitOrigin(wt));
  });

  it("follows a relative gitdir (as a submodule's .git file names its repository)", async () => {
    const dir = await repo();
    await git(dir, "remote", "add", "origin", "https://git.example.com/sub.git");
    const elsewhere = join(dir, "..", `${basename(dir)}-gitdir`);
    await rename(join(dir, ".git"), elsewhere);
    await writeFile(join(dir, ".git"), `gitdir: ../${basename(elsewhere)}\n`);
    try {
      const dirs = dirsOf(dir);
      expect(dirs.gitDir).toBe(elsewhere);
      expect(readHead(dirs)).toBe(await gitHead(dir));
      expect(readOriginUrl(dirs, readerEnv())).toBe(await gitOrigin(dir));
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it("finds a branch that is only in packed-refs, and a detached HEAD", async () => {
    const dir = await repo();
    await git(dir, "pack-refs", "--all", "--prune");
    const dirs = dirsOf(dir);
    expect(readHead(dirs)).toBe(await gitHead(dir));
    await writeFile(join(dir, "f.txt"), "two\n");
    await git(dir, "commit", "-q", "-am", "two");
    const first = (await git(dir, "rev-parse", "HEAD~1")).stdout.trim();
    await git(dir, "checkout", "-q", "--detach", first);
    expect(readHead(dirs)).toBe(first);
    expect(readHead(dirs)).toBe(await gitHead(dir));
  });

  it("has no commit for a repository without one, and no remote without origin", async () => {
    const dir = await temps.make("kiln-gitdir-empty-");
    await git(dir, "init", "-q", "-b", "main");
    const dirs = dirsOf(dir);
    expect(readHead(dirs)).toBeUndefined();
    expect(readOriginUrl(dirs, readerEnv())).toBeUndefined();
    expect(await gitOrigin(dir)).toBeUndefined();
    expect(await readVcsInfo(dir)).toBeUndefined();
    expect(findGitDirs(await temps.make("kiln-gitdir-none-"))).toBeUndefined();
  });

  it("reads a SHA-256 repository's 64-hex commit", async () => {
    const dir = await repo(["--object-format=sha256"]);
    const head = readHead(dirsOf(dir));
    expect(head).toMatch(/^[0-9a-f]{64}$/);
    expect(head).toBe(await gitHead(dir));
  });

  it("applies insteadOf (global and local, longest prefix) as git remote get-url does, and the provenance strips the credentials", async () => {
    const dir = await repo();
    await git(dir, "remote", "add", "origin", "gh:org/app.git");
    await writeFile(join(home, ".gitconfig"), '[url "https://bot:ghp_s3cret@github.example.com/"]\n\tinsteadOf = gh:\n');
    await git(dir, "config", 'url.https://mirror.example.com/org-.insteadOf', "gh:org/");
    const dirs = dirsOf(dir);
    expect(readOriginUrl(dirs, readerEnv())).toBe(await gitOrigin(dir));
    expect(readOriginUrl(dirs, readerEnv())).toBe("https://mirror.example.com/org-app.git");
    await git(dir, "config", "--unset", 'url.https://mirror.example.com/org-.insteadOf');
    expect(readOriginUrl(dirs, readerEnv())).toBe(await gitOrigin(dir));
    expect(readOriginUrl(dirs, readerEnv())).toBe("https://bot:ghp_s3cret@github.example.com/org/app.git");
    await writeFile(join(home, ".gitconfig"), "");
    await git(dir, "remote", "set-url", "origin", "https://bot:ghp_s3cret@git.example.com/org/app.git");
    const commit = await gitHead(dir);
    expect(await readVcsInfo(dir)).toEqual({ commit, remote: "https://git.example.com/org/app.git" });
  });

  it("leaves a config with include directives to git, whose answer readVcsInfo then records", async () => {
    const dir = await repo();
    const extra = join(home, "extra.gitconfig");
    await writeFile(extra, '[remote "origin"]\n\turl = https://included.example.com/app.git\n');
    await git(dir, "config", "include.path", extra);
    const dirs = dirsOf(dir);
    expect(readOriginUrl(dirs, readerEnv())).toBe(ASK_GIT);
    expect(await gitOrigin(dir)).toBe("https://included.example.com/app.git");
    // readVcsInfo runs with this process's HOME: the include is in the repository's own config
    expect(await readVcsInfo(dir)).toEqual({ commit: await gitHead(dir), remote: "https://included.example.com/app.git" });
  });

  it("leaves a redirected git (GIT_DIR and the like; GIT_CONFIG* for the remote) and an unreadable .git file to git", async () => {
    const dir = await repo();
    expect(readOriginUrl(dirsOf(dir), { ...readerEnv(), GIT_CONFIG_GLOBAL: join(home, "other") })).toBe(ASK_GIT);
    expect(readHead(dirsOf(dir))).toBe(await gitHead(dir));
    const saved = process.env.GIT_DIR;
    process.env.GIT_DIR = join(dir, ".git");
    try {
      expect(findGitDirs(dir)).toBe(ASK_GIT);
    } finally {
      if (saved === undefined) delete process.env.GIT_DIR;
      else process.env.GIT_DIR = saved;
    }
    const odd = await temps.make("kiln-gitdir-odd-");
    await writeFile(join(odd, ".git"), "not a gitdir line\n");
    expect(findGitDirs(odd)).toBe(ASK_GIT);
  });
});

describe("parseGitConfig", () => {
  it("reads sections, quoted subsections, values with quotes, escapes, comments and continuations as git config --list does", async () => {
    const text = [
      "# comment",
      "[core]",
      "\tbare = false ; trailing comment",
      '[remote "or\\"ig"]',
      '\turl = "https://h.example/a b.git" # why',
      "\tfetch = +refs/heads/*:refs/remotes/origin/* \\",
      "  more",
      '\tpushurl = "tab\\there" \t',
      "[Remote.Origin] URL = x\ty  ",
      "[url.Base] insteadOf = q",
    ].join("\n");
    const file = join(await temps.make("kiln-gitdir-cfg-"), "config");
    await writeFile(file, text);
    const listed = (await mustRun("git", ["config", "--file", file, "--list", "-z"])).stdout.split("\0").filter((e) => e !== "");
    const parsed = parseGitConfig(text);
    if (parsed === ASK_GIT) throw new Error("not parsed");
    expect(parsed.map((e) => `${e.section}${e.subsection !== undefined ? `.${e.subsection}` : ""}.${e.key}\n${e.value}`)).toEqual(listed);
    expect(parsed[2]).toEqual({ section: "remote", subsection: 'or"ig', key: "fetch", value: "+refs/heads/*:refs/remotes/origin/*   more" });
    expect(parseGitConfig("[core]\n\tflag\n")).toEqual([{ section: "core", key: "flag", value: "true" }]);
  });

  it("answers ASK_GIT for include and includeIf, and for what it does not parse", () => {
    expect(parseGitConfig("[include]\n\tpath = x\n")).toBe(ASK_GIT);
    expect(parseGitConfig('[includeIf "gitdir:/x/"]\n\tpath = y\n')).toBe(ASK_GIT);
    expect(parseGitConfig('[core]\n\tx = "unterminated\n')).toBe(ASK_GIT);
    expect(parseGitConfig("[core]\n\tx = bad \\q escape\n")).toBe(ASK_GIT);
    expect(parseGitConfig("key-before-section = 1\n")).toBe(ASK_GIT);
  });

  it("rewrites with the longest insteadOf prefix, the first of equal length", () => {
    const entries = [
      { section: "url", subsection: "A:", key: "insteadof", value: "x" },
      { section: "url", subsection: "B:", key: "insteadof", value: "xy" },
      { section: "url", subsection: "C:", key: "insteadof", value: "xy" },
    ];
    expect(applyInsteadOf("xyz", entries)).toBe("B:z");
    expect(applyInsteadOf("xz", entries)).toBe("A:z");
    expect(applyInsteadOf("qq", entries)).toBe("qq");
  });
});
