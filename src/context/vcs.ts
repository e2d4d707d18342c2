// The build context's version control state, for the provenance: when the context directory is
// inside a git checkout, its HEAD commit, its `origin` remote (credentials stripped from the URL)
// and, when asked (the engine asks as buildx does: BUILDX_GIT_CHECK_DIRTY), whether the work tree
// has changes not in that commit. The commit and the remote are read from the files under `.git`
// (git-dir.ts), the changes with one `git status` started when the build starts (no git process
// unless that is asked, or a file only git reads is found); a context that is no checkout has
// none. BuildOptions.vcs overrides it (a remote git context knows its commit and URL without a
// checkout of its own).
import { spawn } from "node:child_process";
import { ASK_GIT, findGitDirs, readHead, readOriginUrl } from "./git-dir.js";
import { cachedCommitAndRemote, type CommitAndRemote } from "./vcs-cache.js";

export interface VcsInfo {
  /** The full commit id the context was taken from. */
  commit: string;
  /** Where it came from (the `origin` remote), without credentials. */
  remote?: string;
  /** The work tree differs from the commit (tracked changes or untracked files). */
  dirty?: boolean;
}

/** Run git in `dir`: its output, undefined when it fails or cannot start (no stdin, stderr discarded). */
function git(dir: string, args: string[], signal?: AbortSignal): Promise<string | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let child;
    try {
      // core.fsmonitor off: a checkout's config must not make kiln run a command
      child = spawn("git", ["-c", "core.fsmonitor=false", "-C", dir, ...args], { stdio: ["ignore", "pipe", "ignore"], ...(signal ? { signal } : {}), env: gitEnv() });
    } catch {
      resolve(undefined);
      return;
    }
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.on("error", () => resolve(undefined));
    child.on("close", (code) => resolve(code !== 0 ? undefined : Buffer.concat(chunks).toString("utf8")));
  });
}

/**
 * A remote URL as the provenance may record it (the context's remote, and every dependency URI
 * of the statement): `scheme://user:password@host/...` loses its user and password (tokens live
 * there, and an unparsable URL loses what stands before its last `@`); scp-like `user@host:path` keeps its user, which names no
 * secret (`git@github.com:org/repo.git`).
 */
export function redactRemote(url: string): string {
  const trimmed = url.trim();
  // no "@" before the path (a digest's is after it): no user or password to drop, no URL parser to start
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(trimmed);
  if (!authority || !authority[1]!.includes("@")) return trimmed;
  try {
    const u = new URL(trimmed);
    if (u.username === "" && u.password === "") return trimmed;
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    // unparsable: drop everything between the scheme and the last @ before the host
    return trimmed.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, "$1");
  }
}

/**
 * The git state of `dir` (see the header), or undefined when it is not in a git checkout (or git
 * cannot read it, or the branch has no commit yet). HEAD's commit and `origin` come from the files
 * under `.git` (git-dir.ts; git only for what those files cannot tell); with `checkDirty`
 * (default) one `git status --porcelain=v2` for the dirty flag, started at once so that it runs
 * beside the caller's work (and as the check that git takes this checkout as one); without it,
 * and no file only git can read, no git process at all. None when no `.git` is found above `dir`.
 * `signal` ends the git processes. With `cacheDir` and no dirty check, the commit and remote are
 * kept there between builds while the files they came from are unchanged (vcs-cache.ts).
 */
export async function readVcsInfo(dir: string, signal?: AbortSignal, options: { checkDirty?: boolean; cacheDir?: string } = {}): Promise<VcsInfo | undefined> {
  if (options.checkDirty === false && options.cacheDir !== undefined) {
    // the commit and remote alone: kept in the cache directory while the files they came from are unchanged
    const kept = await cachedCommitAndRemote(options.cacheDir, dir, () => commitAndRemoteFromFiles(dir));
    if (kept === null) return undefined;
    if (kept) return kept;
  }
  const dirs = findGitDirs(dir);
  if (dirs === undefined) return undefined;
  const status = options.checkDirty === false ? Promise.resolve("") : workTreeChanges(dir, signal);
  const head = dirs === ASK_GIT ? ASK_GIT : readHead(dirs);
  const origin = dirs === ASK_GIT ? ASK_GIT : readOriginUrl(dirs);
  const [dirtyOut, commit, remote] = await Promise.all([
    status,
    head === ASK_GIT ? gitCommit(dir, signal) : head,
    origin === ASK_GIT ? git(dir, ["remote", "get-url", "origin"], signal) : origin,
  ]);
  if (dirtyOut === undefined || commit === undefined) return undefined; // not a checkout git reads, or no commit yet
  const info: VcsInfo = { commit };
  const url = remote?.trim();
  if (url) info.remote = redactRemote(url);
  if (dirtyOut !== "") info.dirty = true;
  return info;
}

/** The commit and remote as the files under `.git` tell them: null when `dir` is in no checkout, undefined when only git can tell. */
function commitAndRemoteFromFiles(dir: string): CommitAndRemote | null | undefined {
  const dirs = findGitDirs(dir);
  if (dirs === undefined) return null;
  if (dirs === ASK_GIT) return undefined;
  const commit = readHead(dirs);
  const origin = readOriginUrl(dirs);
  if (typeof commit !== "string" || origin === ASK_GIT) return undefined;
  const url = origin?.trim();
  return { commit, ...(url ? { remote: redactRemote(url) } : {}) };
}

/**
 * "changed" or "" (no changes), undefined when git does not take `dir` as a checkout. Without
 * --branch (HEAD is read from .git) and stashes: any line git prints is a change. The status is
 * read by a shell beside git and answered in its exit code (0 clean, 1 changed, 2 git failed), so
 * kiln's side is a child with no pipes at all (a spawn with pipes costs the build's thread ~1.5 ms
 * more); the shell and git are one process group of their own, killed together by `signal`.
 */
function workTreeChanges(dir: string, signal?: AbortSignal): Promise<string | undefined> {
  return new Promise((resolve) => {
    const args = ["-c", "core.fsmonitor=false", "-C", dir, "-c", "status.showStash=false", "status", "--porcelain=v2", "--untracked-files=normal"];
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn("/bin/sh", ["-c", 's=$(git "$@") || exit 2; [ -z "$s" ]', "kiln-git-status", ...args], { stdio: "ignore", detached: true, env: gitEnv() });
    } catch {
      resolve(undefined);
      return;
    }
    const stop = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone already */
      }
    };
    if (signal?.aborted) stop();
    else signal?.addEventListener("abort", stop, { once: true });
    child.on("error", () => resolve(undefined));
    child.on("exit", (code) => {
      signal?.removeEventListener("abort", stop);
      resolve(code === 0 ? "" : code === 1 ? "changed" : undefined);
    });
  });
}

/** git's environment: never ask for anything (credentials, pagers), never take optional locks, no locale. */
function gitEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0", LC_ALL: "C" };
}

/** HEAD's commit as git resolves it (`rev-parse --verify -q HEAD`), undefined with no commit yet. */
async function gitCommit(dir: string, signal?: AbortSignal): Promise<string | undefined> {
  const out = (await git(dir, ["rev-parse", "--verify", "-q", "HEAD"], signal))?.trim();
  return out && /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(out) ? out : undefined;
}
