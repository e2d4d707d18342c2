// A build's git sources: the credentials a fetch from one host gets (the GIT_AUTH_TOKEN /
// GIT_AUTH_HEADER secrets, the `GIT_AUTH_TOKEN.<host>` forms first, as BuildKit reads them; the
// `--ssh default` agent for SSH remotes), and a git URL turned into a checked-out tree — for the
// main context before anything is planned, for the named contexts the plan needs before any step
// (one only a base image's ONBUILD names: when that step reads it), for ADD when its step runs — with
// the resolved commit recorded for the metadata file and provenance.
import { join } from "node:path";
import { existsSync, statSync } from "node:fs";
import { KilnError } from "../errors.js";
import { checkoutGit, resolveGitRef, type GitAuth, type GitOptions, type ResolvedGit } from "../context/git.js";
import { parseGitUrl, redactUrl, type GitRef } from "../context/git-url.js";
import type { EngineConfig, GitSourceRecord } from "./config.js";
import type { NamedContext } from "./options.js";
import { secretValue } from "./secret-value.js";

/** The auth a fetch from `src` uses: only secrets meant for git, only for its own host. */
export async function gitAuth(config: EngineConfig, src: GitRef): Promise<GitAuth> {
  const auth: GitAuth = {};
  if (src.transport === "https" || src.transport === "http") {
    // the most specific id first: host:port, host, then the one for every host
    const ids = (name: string): string[] => [...new Set([`${name}.${src.host}`, `${name}.${src.host.replace(/:\d+$/, "")}`, name])];
    const first = async (name: string): Promise<Buffer | undefined> => {
      for (const id of ids(name)) {
        const v = await secretValue(config, id);
        if (v) return v;
      }
      return undefined;
    };
    const token = await first("GIT_AUTH_TOKEN");
    const header = await first("GIT_AUTH_HEADER");
    if (token) auth.token = token.toString("utf8").trim();
    if (header) auth.header = header.toString("utf8").trim();
  }
  if (src.transport === "ssh" && config.ssh.has("default")) auth.sshAuthSock = await config.ssh.socket("default");
  return auth;
}

export function gitOptions(config: EngineConfig, auth: GitAuth): GitOptions {
  return {
    auth,
    ...(config.signal ? { signal: config.signal } : {}),
    onInfo: (message) => config.emit({ type: "info", message }),
  };
}

/** Resolve a git source's ref on its server, with the build's credentials. */
export async function resolveGit(config: EngineConfig, src: GitRef): Promise<{ resolved: ResolvedGit; options: GitOptions }> {
  const options = gitOptions(config, await gitAuth(config, src));
  return { resolved: await resolveGitRef(src, options), options };
}

export function recordGit(config: EngineConfig, record: GitSourceRecord): void {
  if (!config.gitSources.some((r) => r.use === record.use && r.commit === record.commit && r.remote === record.remote)) config.gitSources.push(record);
}

/** A fetched git context: the directory that is the context (the subdirectory when one is named). */
export interface GitTree {
  dir: string;
  src: GitRef;
  commit: string;
}

/**
 * A git URL given as the build context or a named context, checked out (from the cache when
 * that commit was fetched before). `use` names it in errors and in the metadata file.
 */
export async function fetchGitContext(config: EngineConfig, url: string, use: string): Promise<GitTree> {
  const src = parseGitUrl(url);
  const { resolved, options } = await resolveGit(config, src);
  if (src.checksum !== undefined) checkGitChecksum(src, resolved, src.checksum);
  const checkout = await checkoutGit(src, resolved, config.cacheDir, options);
  const dir = src.subdir ? join(checkout, src.subdir) : checkout;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new KilnError("CONTEXT_NOT_DIRECTORY", `git source ${src.display}: "${src.subdir}" is not a directory at ${resolved.commit.slice(0, 12)}`);
  }
  recordGit(config, { use, remote: redactUrl(src.remote), ...(src.ref ? { ref: src.ref } : {}), ...(src.subdir ? { subdir: src.subdir } : {}), commit: resolved.commit });
  return { dir, src, commit: resolved.commit };
}

/** BUILDKIT_CONTEXT_KEEP_GIT_DIR's value as BuildKit reads it (a boolean; unset: false). */
export function keepGitDirArg(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|t|yes|on)$/i.test(v.trim());
}

/** `--build-context NAME=<git url>` fetched: the directory it is read as (`.git` left out unless kept). */
export async function fetchNamedGitContext(config: EngineConfig, name: string, url: string): Promise<NamedContext & { kind: "dir" }> {
  const tree = await fetchGitContext(config, url, `context:${name}`);
  return { kind: "dir", path: tree.dir, ...(keepGitDirArg(config.buildArgs.BUILDKIT_CONTEXT_KEEP_GIT_DIR) ? {} : { withoutGit: true }) };
}

/** `--checksum` / `?checksum=`: the ref must resolve to that commit (or tag object); a prefix of 7+ hex digits is enough. */
export function checkGitChecksum(src: GitRef, resolved: ResolvedGit, checksum: string): void {
  const want = checksum.toLowerCase();
  if (resolved.commit.startsWith(want) || (resolved.tagObject?.startsWith(want) ?? false)) return;
  throw new KilnError("GIT_CHECKSUM_MISMATCH", `git source ${src.display}: ref "${src.ref ?? "HEAD"}" resolves to commit ${resolved.commit}, not the checksum ${checksum}`);
}
