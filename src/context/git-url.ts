// Git source references as buildx and the Dockerfile frontend write them: which strings are git
// URLs (`https://host/repo.git`, `git@host:repo.git`, `ssh://`, `git://`), and their parts — the
// remote, the ref and subdirectory of the `#ref:subdir` fragment or of the `?ref=..&subdir=..`
// query form, and the query's `checksum`, `keep-git-dir` and `submodules`. `redactUrl` is how any
// git URL is printed: userinfo (a token, a password) never appears whole.
import { KilnError } from "../errors.js";

export interface GitRef {
  /** What git fetches from (userinfo kept: git needs it; print `display` instead). */
  remote: string;
  /** Branch, tag, `refs/...` or a full commit; undefined: the remote's HEAD. */
  ref?: string;
  /** The directory inside the repository that is the context (no leading or trailing slash). */
  subdir?: string;
  /** The commit the ref must resolve to (`?checksum=`, or ADD --checksum). */
  checksum?: string;
  /** `?keep-git-dir=true`. */
  keepGitDir?: boolean;
  /** `?submodules=false` turns submodule checkout off (default on). */
  submodules: boolean;
  /** "https" | "http" | "ssh" | "git" | "file": how it is fetched and authenticated. */
  transport: "https" | "http" | "ssh" | "git" | "file";
  /** The server's host name (auth tokens are only sent there); empty for file://. */
  host: string;
  /** The URL as printed: userinfo redacted. */
  display: string;
}

const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!\/\/)/;

/**
 * Whether a context / ADD source names a git repository (as BuildKit decides; a bare
 * `github.com/org/repo` stays a local path: BuildKit's ADD takes it as one too).
 */
export function isGitUrl(source: string): boolean {
  if (/^(git|ssh):\/\//i.test(source) || SCP_LIKE.test(source) || /^git@/i.test(source)) return true;
  if (!/^https?:\/\//i.test(source)) return false;
  const base = source.replace(/[#].*$/, "");
  const path = base.replace(/\?.*$/, "");
  if (/\.git\/?$/i.test(path)) return true;
  // the query form: `https://host/repo?ref=main` with a git-only parameter
  const query = /\?(.*)$/.exec(base)?.[1];
  return query !== undefined && /(^|&)(ref|tag|branch|subdir|keep-git-dir|submodules)=/.test(query);
}

/** Userinfo replaced by `***` (scp-like `user@host:` keeps a bare user name, which is no secret). */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@]*)@/i, (_, scheme: string, info: string) => (info.includes(":") || scheme.toLowerCase().startsWith("http") ? `${scheme}***@` : `${scheme}${info}@`));
}

/** Parse a git source; a malformed one is a KilnError naming it (redacted). */
export function parseGitUrl(source: string): GitRef {
  const display = redactUrl(source);
  const fail = (why: string): never => {
    throw new KilnError("GIT_URL_INVALID", `git source ${display}: ${why}`);
  };
  let rest = source;
  let fragment: string | undefined;
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    fragment = rest.slice(hash + 1);
    rest = rest.slice(0, hash);
  }
  const params = new Map<string, string>();
  const q = rest.indexOf("?");
  if (q >= 0) {
    for (const part of rest.slice(q + 1).split("&")) {
      if (part === "") continue;
      const eq = part.indexOf("=");
      const k = eq >= 0 ? part.slice(0, eq) : part;
      const v = eq >= 0 ? decodeURIComponent(part.slice(eq + 1)) : "";
      if (!["ref", "tag", "branch", "subdir", "checksum", "keep-git-dir", "submodules"].includes(k)) fail(`unknown query parameter "${k}"`);
      params.set(k, v);
    }
    rest = rest.slice(0, q);
  }
  let ref: string | undefined;
  let subdir: string | undefined;
  if (fragment !== undefined) {
    if (params.size > 0) fail("give the ref either as #fragment or as ?ref=, not both");
    const colon = fragment.indexOf(":");
    ref = (colon >= 0 ? fragment.slice(0, colon) : fragment) || undefined;
    subdir = colon >= 0 ? fragment.slice(colon + 1) : undefined;
  }
  const named = ["ref", "tag", "branch"].filter((k) => params.has(k));
  if (named.length > 1) fail(`?${named.join("= and ?")}= name the ref twice`);
  if (named.length === 1) {
    const k = named[0]!;
    const v = params.get(k)!;
    ref = k === "tag" ? `refs/tags/${v}` : k === "branch" ? `refs/heads/${v}` : v;
  }
  if (params.has("subdir")) subdir = params.get("subdir");
  if (ref !== undefined && (/^-/.test(ref) || /[\s\\~^:?*[\0]|\.\./.test(ref))) fail(`invalid ref "${ref}"`);
  if (subdir !== undefined) {
    subdir = subdir.replace(/^\/+|\/+$/g, "").replace(/^(\.\/)+/, "");
    if (subdir.split("/").includes("..")) fail(`subdirectory "${subdir}" leaves the repository`);
    if (subdir === "" || subdir === ".") subdir = undefined;
  }
  const bool = (k: string): boolean | undefined => {
    const v = params.get(k);
    if (v === undefined) return undefined;
    if (v === "" || v === "true" || v === "1") return true;
    if (v === "false" || v === "0") return false;
    return fail(`?${k}= must be true or false`);
  };
  const checksum = params.get("checksum");
  if (checksum !== undefined && !/^[0-9a-f]{7,64}$/.test(checksum)) fail(`?checksum= must be a commit (hex), not "${checksum}"`);
  let transport: GitRef["transport"];
  let host: string;
  if (SCP_LIKE.test(rest) && !/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    transport = "ssh";
    host = /@([^:]+):/.exec(rest)![1]!;
  } else {
    let u: URL;
    try {
      u = new URL(rest);
    } catch {
      return fail("not a URL");
    }
    const scheme = u.protocol.replace(/:$/, "").toLowerCase();
    if (scheme !== "https" && scheme !== "http" && scheme !== "ssh" && scheme !== "git" && scheme !== "file") fail(`unsupported scheme ${scheme}:`);
    transport = scheme as GitRef["transport"];
    host = u.host;
  }
  const keep = bool("keep-git-dir");
  const submodules = bool("submodules");
  return {
    remote: rest,
    ...(ref !== undefined ? { ref } : {}),
    ...(subdir !== undefined ? { subdir } : {}),
    ...(checksum !== undefined ? { checksum } : {}),
    ...(keep !== undefined ? { keepGitDir: keep } : {}),
    submodules: submodules ?? true,
    transport,
    host,
    display,
  };
}
