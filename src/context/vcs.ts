// The build context's version control state, for the provenance: when the context directory is
// inside a git checkout, its HEAD commit, its `origin` remote (credentials stripped from the URL)
// and whether the work tree has changes not in that commit. Read with the host's `git`; a
// context that is no checkout (or no git on the host) has none. BuildOptions.vcs overrides it
// (a remote git context knows its commit and URL without a checkout of its own).
import { execFile } from "node:child_process";

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
 * A remote URL as the provenance may record it: `scheme://user:password@host/...` loses its
 * user and password (tokens live there); scp-like `user@host:path` keeps its user, which names no
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

/** The git state of `dir` (see the header), or undefined when it is not in a git checkout. */
export async function readVcsInfo(dir: string, signal?: AbortSignal): Promise<VcsInfo | undefined> {
  const head = (await git(dir, ["rev-parse", "--verify", "-q", "HEAD"], signal))?.trim();
  if (!head || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(head)) return undefined;
  const info: VcsInfo = { commit: head };
  const remote = (await git(dir, ["remote", "get-url", "origin"], signal))?.trim();
  if (remote) info.remote = redactRemote(remote);
  const status = await git(dir, ["status", "--porcelain", "--untracked-files=normal"], signal);
  if (status !== undefined && status.trim() !== "") info.dirty = true;
  return info;
}
