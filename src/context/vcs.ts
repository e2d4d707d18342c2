// The build context's version control state, for the provenance: when the context directory is
// inside a git checkout, its HEAD commit, its `origin` remote (credentials stripped from the URL)
// and whether the work tree has changes not in that commit. Read with the host's `git` (no git
// process at all unless a `.git` is found above the directory); a context that is no checkout
// (or no git on the host) has none. BuildOptions.vcs overrides it
// (a remote git context knows its commit and URL without a checkout of its own).
import { execFile } from "node:child_process";
import { lstat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";

export interface VcsInfo {
  /** The full commit id the context was taken from. */
  commit: string;
  /** Where it came from (the `origin` remote), without credentials. */
  remote?: string;
  /** The work tree differs from the commit (tracked changes or untracked files). */
  dirty?: boolean;
}

function git(dir: string, args: string[], signal?: AbortSignal): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      "git",
      // core.fsmonitor off: a checkout's config must not make kiln run a command
      ["-c", "core.fsmonitor=false", "-C", dir, ...args],
      // never ask for anything (credentials, pagers), never read an editor
      { encoding: "utf8", maxBuffer: 16 * 1024 * 1024, ...(signal ? { signal } : {}), env: { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0", LC_ALL: "C" } },
      (err, stdout) => resolve(err ? undefined : stdout),
    );
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
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) return trimmed;
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

/** Whether `dir` or a parent holds `.git` (a directory, or a worktree's file): checked before any git process starts. */
async function inCheckout(dir: string): Promise<boolean> {
  if (process.env.GIT_DIR !== undefined || process.env.GIT_WORK_TREE !== undefined) return true; // git decides
  let d = resolve(dir);
  for (;;) {
    try {
      await lstat(join(d, ".git"));
      return true;
    } catch {
      // not here
    }
    const up = dirname(d);
    if (up === d) return false;
    d = up;
  }
}

/**
 * The git state of `dir` (see the header), or undefined when it is not in a git checkout. Two git
 * processes at most, run at once: `status --porcelain=v2 --branch` (HEAD's commit as branch.oid,
 * and the changes) and `remote get-url origin`; none when no `.git` is found above `dir`.
 */
export async function readVcsInfo(dir: string, signal?: AbortSignal): Promise<VcsInfo | undefined> {
  if (!(await inCheckout(dir))) return undefined;
  const [status, remoteOut] = await Promise.all([
    git(dir, ["status", "--porcelain=v2", "--branch", "--untracked-files=normal"], signal),
    git(dir, ["remote", "get-url", "origin"], signal),
  ]);
  if (status === undefined) return undefined;
  const lines = status.split("\n").filter((l) => l !== "");
  const head = /^# branch\.oid ([0-9a-f]{40}(?:[0-9a-f]{24})?)$/.exec(lines.find((l) => l.startsWith("# branch.oid ")) ?? "")?.[1];
  if (!head) return undefined; // no commit yet
  const info: VcsInfo = { commit: head };
  const remote = remoteOut?.trim();
  if (remote) info.remote = redactRemote(remote);
  if (lines.some((l) => !l.startsWith("#"))) info.dirty = true;
  return info;
}
