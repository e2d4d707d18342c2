// Fetching git sources with the host's `git`: `resolveGitRef` asks the server which commit a ref
// names (`git ls-remote`, nothing fetched), `checkoutGit` makes a shallow checkout of exactly
// that commit (`git init` + `git fetch --depth 1 origin <ref>`, a full fetch when the server
// refuses a commit it does not advertise; submodules with `--depth 1` as BuildKit does), kept in
// the cache directory by remote and commit so the same commit is fetched once. Authentication:
// a token or header for HTTPS given through git's environment config (GIT_CONFIG_COUNT/KEY/VALUE,
// `http.<scheme://host/>.extraHeader`: sent to that host only, never on a command line), an agent
// socket for SSH; the user's ssh set-up (GIT_SSH_COMMAND, core.sshCommand, ~/.ssh/config) is
// used as it is, with no terminal to prompt on. Every command has a time limit and the
// AbortSignal (they stop git's whole process group); what git prints is redacted
// before it reaches an error message.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KilnError, abortError } from "../errors.js";
import { redactUrl, type GitRef } from "./git-url.js";
import type { IgnoreFn } from "./build-context.js";

export interface GitAuth {
  /** `--secret id=GIT_AUTH_TOKEN` (or `GIT_AUTH_TOKEN.<host>`): sent as basic auth x-access-token:TOKEN. */
  token?: string;
  /** `--secret id=GIT_AUTH_HEADER` (or `.<host>`): the whole Authorization header value. */
  header?: string;
  /** The agent socket SSH remotes authenticate with (`--ssh default`). */
  sshAuthSock?: string;
}

export interface GitOptions {
  auth?: GitAuth;
  signal?: AbortSignal;
  /** Limit of each git command in ms (default 10 minutes for fetches, 2 minutes for ls-remote). */
  timeoutMs?: number;
  /** Reports what is being done ("git fetch https://host/repo.git main"). */
  onInfo?: (message: string) => void;
}

/** What a ref resolved to on the server. */
export interface ResolvedGit {
  /** The commit (annotated tags peeled). */
  commit: string;
  /** The tag object when the ref is an annotated tag (a checksum may name either). */
  tagObject?: string;
  /** The full ref name that matched (refs/heads/main), or the commit itself. */
  refName: string;
}

const FULL_SHA = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;

/** The remote without userinfo (what a kept .git/config records and what cache keys name). */
export function remoteWithoutCredentials(remote: string): string {
  // http(s): userinfo is a credential; ssh: the user name stays (it picks the account), a password goes
  return remote.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@]*)@/i, (_, scheme: string, info: string) => (scheme.toLowerCase().startsWith("http") ? scheme : `${scheme}${info.split(":")[0]}@`));
}

/**
 * The commit `ref` names on the server (`git ls-remote`; a full commit id is taken as it is,
 * checked when fetched). A ref the server does not have is a GIT_REF_NOT_FOUND error.
 */
export async function resolveGitRef(src: GitRef, options: GitOptions = {}): Promise<ResolvedGit> {
  if (src.ref !== undefined && FULL_SHA.test(src.ref)) return { commit: src.ref, refName: src.ref };
  const pattern = src.ref ?? "HEAD";
  const out = await git(["ls-remote", "--", src.remote, ...(src.ref === undefined ? ["HEAD"] : [pattern, `${pattern}^{}`])], src, { ...options, timeoutMs: options.timeoutMs ?? 120_000 });
  const refs = new Map<string, string>();
  for (const line of out.split("\n")) {
    const m = /^([0-9a-f]{40,64})\t(.+)$/.exec(line.trim());
    if (m) refs.set(m[2]!, m[1]!);
  }
  const candidates = src.ref === undefined
    ? ["HEAD"]
    : pattern.startsWith("refs/") ? [pattern] : [`refs/heads/${pattern}`, `refs/tags/${pattern}`, pattern];
  for (const name of candidates) {
    const sha = refs.get(name);
    if (!sha) continue;
    const peeled = refs.get(`${name}^{}`);
    return peeled ? { commit: peeled, tagObject: sha, refName: name } : { commit: sha, refName: name };
  }
  throw new KilnError("GIT_REF_NOT_FOUND", `git source ${src.display}: ref "${pattern}" not found on the server`);
}

/**
 * A checkout of `resolved.commit` (with its submodules unless turned off), `.git` included: a
 * directory in `cacheDir/git/` shared by every build that needs that commit of that remote.
 * Callers leave `.git` out unless asked to keep it.
 */
export async function checkoutGit(src: GitRef, resolved: ResolvedGit, cacheDir: string, options: GitOptions = {}): Promise<string> {
  const root = join(cacheDir, "git");
  const id = createHash("sha256").update(`${remoteWithoutCredentials(src.remote)}\0${src.submodules ? "submodules" : ""}`).digest("hex").slice(0, 24);
  const dir = join(root, `${id}-${resolved.commit}`);
  if (existsSync(join(dir, ".kiln-complete"))) {
    // last use, for `kiln prune`
    await utimes(join(dir, ".kiln-complete"), new Date(), new Date()).catch(() => undefined);
    return dir;
  }
  await mkdir(root, { recursive: true });
  await removeStaleTemp(root);
  const tmp = join(root, `tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
  await mkdir(tmp);
  try {
    const o = { ...options, cwd: tmp, timeoutMs: options.timeoutMs ?? 600_000 };
    await git(["init", "-q"], src, o);
    await git(["remote", "add", "origin", src.remote], src, o);
    options.onInfo?.(`git fetch ${src.display} ${src.ref ?? "HEAD"} (${resolved.commit.slice(0, 12)})`);
    const want = resolved.refName === resolved.commit ? resolved.commit : resolved.refName;
    try {
      await git(["fetch", "-q", "--depth", "1", "--no-tags", "origin", want], src, o);
    } catch (err) {
      // a server that refuses an unadvertised commit: fetch its branches and tags whole (as BuildKit does)
      if (want !== resolved.commit || (err as KilnError).code === "ABORTED") throw err;
      options.onInfo?.(`git fetch ${src.display}: the server refuses commit ${resolved.commit.slice(0, 12)} by id; fetching its branches and tags`);
      await git(["fetch", "-q", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"], src, o);
    }
    const has = await git(["cat-file", "-t", resolved.commit], src, o).catch(() => "");
    if (has.trim() !== "commit" && has.trim() !== "tag") {
      throw new KilnError("GIT_REF_NOT_FOUND", `git source ${src.display}: commit ${resolved.commit} not found on the server`);
    }
    await git(["-c", "advice.detachedHead=false", "checkout", "-q", resolved.commit], src, o);
    const head = (await git(["rev-parse", "HEAD"], src, o)).trim();
    if (head !== resolved.commit && resolved.tagObject === undefined) {
      throw new KilnError("GIT_FETCH_FAILED", `git source ${src.display}: checked out ${head}, expected ${resolved.commit}`);
    }
    if (src.submodules && existsSync(join(tmp, ".gitmodules"))) {
      await git(["submodule", "update", "--init", "--recursive", "--depth", "1"], src, o);
    }
    // a kept .git never records credentials
    await git(["remote", "set-url", "origin", remoteWithoutCredentials(src.remote)], src, o);
    await writeFile(join(tmp, ".kiln-complete"), "");
    try {
      await rename(tmp, dir);
    } catch (err) {
      if (!existsSync(join(dir, ".kiln-complete"))) throw err;
      await rm(tmp, { recursive: true, force: true }); // another build made it first
    }
    return dir;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** `tmp-<pid>-*` checkouts whose build process is gone (killed before it could clean up). */
async function removeStaleTemp(root: string): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const pid = /^tmp-(\d+)-/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid) continue;
    try {
      process.kill(Number(pid), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") await rm(join(root, name), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

/**
 * The environment git runs with: no prompts, the auth config for this host, the agent for SSH.
 * The user's ssh set-up is left as it is (GIT_SSH_COMMAND, GIT_SSH, core.sshCommand, ~/.ssh/config):
 * git runs in a session of its own (no controlling terminal) and askpass is off, so ssh cannot prompt.
 */
function gitEnv(src: GitRef, auth: GitAuth | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "", SSH_ASKPASS: "", SSH_ASKPASS_REQUIRE: "never", LC_ALL: "C" };
  delete env.GIT_CONFIG_PARAMETERS;
  const config: Array<[string, string]> = [];
  if ((src.transport === "https" || src.transport === "http") && src.host) {
    const value = auth?.header ?? (auth?.token !== undefined ? `basic ${Buffer.from(`x-access-token:${auth.token}`).toString("base64")}` : undefined);
    if (value !== undefined) {
      const prefix = `http.${src.transport}://${src.host}/`;
      config.push([`${prefix}.extraHeader`, `Authorization: ${value}`]);
      // a redirect would carry the header to another host: with credentials, none is followed
      config.push([`${prefix}.followRedirects`, "false"]);
    }
  }
  env.GIT_CONFIG_COUNT = String(config.length);
  config.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  if (auth?.sshAuthSock) env.SSH_AUTH_SOCK = auth.sshAuthSock;
  return env;
}

/** Runs `git ARGS`; resolves with stdout, rejects with one redacted line (and git's last words). */
async function git(args: string[], src: GitRef, options: GitOptions & { cwd?: string }): Promise<string> {
  const { signal } = options;
  if (signal?.aborted) throw abortError(signal);
  const timeoutMs = options.timeoutMs ?? 600_000;
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, { cwd: options.cwd ?? process.cwd(), env: gitEnv(src, options.auth), stdio: ["ignore", "pipe", "pipe"], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let why: "timeout" | "abort" | undefined;
    // git leads its own process group: its ssh (or remote helper) stops with it
    const signalGroup = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    const stop = (reason: "timeout" | "abort"): void => {
      why = reason;
      signalGroup("SIGTERM");
      setTimeout(() => signalGroup("SIGKILL"), 2000).unref();
    };
    const timer = setTimeout(() => stop("timeout"), timeoutMs);
    const onAbort = (): void => stop("abort");
    signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      reject(e.code === "ENOENT"
        ? new KilnError("HOST_TOOL_MISSING", "git is not installed (git sources need the host's git: apt-get install git | dnf install git | apk add git)")
        : new KilnError("GIT_FETCH_FAILED", `git ${args[0]}: ${e.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (why === "abort" && signal) return reject(abortError(signal));
      if (why === "timeout") return reject(new KilnError("GIT_FETCH_FAILED", `git source ${src.display}: git ${args[0]} took longer than ${timeoutMs < 1000 ? `${timeoutMs}ms` : `${Math.round(timeoutMs / 1000)}s`}`));
      if (code === 0) return resolve(Buffer.concat(out).toString("utf8"));
      const said = redactText(Buffer.concat(err).toString("utf8")).trim().split("\n").filter((l) => l.trim() !== "").slice(-2).join("; ");
      reject(new KilnError("GIT_FETCH_FAILED", `git source ${src.display}: git ${args[0]} failed (exit ${code})${said ? `: ${said}` : ""}`));
    });
  });
}

/** Every URL in git's own words with its userinfo redacted. */
function redactText(text: string): string {
  return text.replace(/[a-z][a-z0-9+.-]*:\/\/[^\s'"]+/gi, (u) => redactUrl(u));
}

/**
 * `ignore` with git's metadata left out as well: `.git` at the top and in submodules (a tracked
 * file can never be named `.git`, so every such entry is git's) and kiln's completion marker.
 */
export function withoutGitDirs(ignore: IgnoreFn, keepGitDir = false): IgnoreFn {
  const isGit = (rel: string): boolean => rel === ".kiln-complete" || (!keepGitDir && (rel === ".git" || rel.startsWith(".git/") || rel.includes("/.git/") || rel.endsWith("/.git")));
  const fn = ((rel: string) => isGit(rel.replace(/^\.?\/+/, "")) || ignore(rel)) as IgnoreFn;
  fn.canSkipDir = (dir: string) => isGit(dir.replace(/^\.?\/+/, "")) || (ignore.canSkipDir?.(dir) ?? false);
  return fn;
}

/**
 * `kiln prune`: checkouts in `cacheDir/git/` last used before `before` (ms since the epoch), and
 * unfinished ones of dead builds, are removed (a checkout is fetched again when needed).
 */
export async function pruneGitCheckouts(cacheDir: string, before: number): Promise<{ removed: number }> {
  const root = join(cacheDir, "git");
  await removeStaleTemp(root);
  let removed = 0;
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{24}-[0-9a-f]{40,64}$/.test(name)) continue;
    const used = await stat(join(root, name, ".kiln-complete")).then((st) => st.mtimeMs, () => 0);
    if (used >= before) continue;
    await rm(join(root, name), { recursive: true, force: true });
    removed++;
  }
  return { removed };
}
