// The build context's version control state, for the provenance: when the context directory is
// inside a git checkout, its HEAD commit, its `origin` remote (credentials stripped from the URL)
// and whether the work tree has changes not in that commit. The commit and the remote are read
// from the files under `.git` (git-dir.ts), the changes with one `git status` started when the
// build starts (no git process at all unless a `.git` is found above the directory); a context
// that is no checkout (or no git on the host) has none. BuildOptions.vcs overrides it
// (a remote git context knows its commit and URL without a checkout of its own).
import { spawn } from "node:child_process";
import { ASK_GIT, findGitDirs, readHead, readOriginUrl } from "./git-dir.js";

export interface VcsInfo {
  /** The full commit id the context was taken from. */
  commit: string;
  /** Where it came from (the `origin` remote), without credentials. */
  remote?: string;
  /** The work tree differs from the commit (tracked changes or untracked files). */
  dirty?: boolean;
}

/**
 * Run git in `dir`: its output (undefined when it fails or cannot start), or with `changes` only
 * whether it printed a line other than a `#` header, as "changed" or "" (nothing kept: the status
 * of a much changed tree can be large). No stdin, stderr discarded: the least a child process
 * costs the parent.
 */
function git(dir: string, args: string[], signal?: AbortSignal, changes = false): Promise<string | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let changed = false;
    let lineStart = true;
    let child;
    try {
      child = spawn(
        "git",
        // core.fsmonitor off: a checkout's config must not make kiln run a command
        ["-c", "core.fsmonitor=false", "-C", dir, ...args],
        // never ask for anything (credentials, pagers), never read an editor
        { stdio: ["ignore", "pipe", "ignore"], ...(signal ? { signal } : {}), env: { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0", LC_ALL: "C" } },
      );
    } catch {
      resolve(undefined);
      return;
    }
    child.stdout.on("data", (c: Buffer) => {
      if (!changes) {
        chunks.push(c);
        return;
      }
      for (let i = 0; i < c.length && !changed; i++) {
        if (lineStart && c[i] !== 0x23 && c[i] !== 0x0a) changed = true; // a line not starting with "#"
        lineStart = c[i] === 0x0a;
      }
    });
    child.on("error", () => resolve(undefined));
    child.on("close", (code) => resolve(code !== 0 ? undefined : changes ? (changed ? "changed" : "") : Buffer.concat(chunks).toString("utf8")));
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

/**
 * The git state of `dir` (see the header), or undefined when it is not in a git checkout (or git
 * cannot read it, or the branch has no commit yet). HEAD's commit and `origin` come from the files
 * under `.git` (git-dir.ts; git only for what those files cannot tell); the one git process is
 * `status --porcelain=v2` for the dirty flag (and as the check that git takes this checkout as
 * one), started at once so that it runs beside the caller's work; none when no `.git` is found
 * above `dir`. `signal` ends that process.
 */
export async function readVcsInfo(dir: string, signal?: AbortSignal): Promise<VcsInfo | undefined> {
  const dirs = findGitDirs(dir);
  if (dirs === undefined) return undefined;
  const status = workTreeChanges(dir, signal);
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

/**
 * "changed" or "" (no changes), undefined when git does not take `dir` as a checkout. Without
 * --branch (HEAD is read from .git): no ahead/behind count to make.
 */
function workTreeChanges(dir: string, signal?: AbortSignal): Promise<string | undefined> {
  return git(dir, ["-c", "status.showStash=false", "status", "--porcelain=v2", "--untracked-files=normal"], signal, true);
}

/** HEAD's commit as git resolves it (`rev-parse --verify -q HEAD`), undefined with no commit yet. */
async function gitCommit(dir: string, signal?: AbortSignal): Promise<string | undefined> {
  const out = (await git(dir, ["rev-parse", "--verify", "-q", "HEAD"], signal))?.trim();
  return out && /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(out) ? out : undefined;
}
