// Reads a git checkout's HEAD commit and its `origin` remote URL straight from the files under
// `.git`, without starting git: the `.git` directory or a worktree's/submodule's `.git` file
// (`gitdir:` and `commondir`), HEAD (a branch or detached), loose refs and packed-refs, 40- or
// 64-hex object ids (SHA-1 and SHA-256 repositories), and the config files git itself would read
// for the remote (system /etc/gitconfig for a /usr git, global, the repository's, and the
// worktree's), with `url.<base>.insteadOf` applied as `git remote get-url` applies it.
// The files are read synchronously (a few small ones). Nothing here runs anything: what it
// cannot read as git would (reftable refs, include/includeIf directives, GIT_DIR and the like in
// the environment, GIT_CONFIG* for the remote, a git not installed under /usr, legacy
// .git/remotes files, unusual syntax) is answered ASK_GIT, and the caller asks git (vcs.ts).
// Every path looked at is told, before it is read, to a caller that asks (consulted(): the kept
// answers of vcs-cache.ts rest on those paths).
import { existsSync, readFileSync, statSync } from "node:fs";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { homedir } from "node:os";

/** The answer when only git itself can tell (the caller then runs git for it). */
export const ASK_GIT = Symbol("ask git");
export type Answer<T> = T | typeof ASK_GIT;

export interface GitDirs {
  /** The work tree's top directory (where `.git` was found). */
  top: string;
  /** This work tree's git directory (HEAD, per-worktree refs). */
  gitDir: string;
  /** The repository's common directory (refs, packed-refs, config, objects): gitDir unless a linked worktree. */
  commonDir: string;
}

const OID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** Environment variables that change which repository git finds. */
const DISCOVERY_ENV = /^GIT_(DIR|WORK_TREE|COMMON_DIR|CEILING_DIRECTORIES|DISCOVERY_ACROSS_FILESYSTEM)$/;
/** Environment variables that change the config git reads (GIT_CONFIG_GLOBAL, _NOSYSTEM, _COUNT, _PARAMETERS, ...). */
const CONFIG_ENV = /^GIT_CONFIG/;

/** Whether the environment changes what git would find or read (another repository, other config files): then only git knows. */
export function gitEnvironmentMatters(env: NodeJS.ProcessEnv = process.env): boolean {
  return Object.keys(env).some((k) => DISCOVERY_ENV.test(k) || CONFIG_ENV.test(k));
}

/** Whether the environment tells git to find another repository than discovery would (then only git knows). */
export function gitEnvironmentOverrides(env: NodeJS.ProcessEnv = process.env): boolean {
  return Object.keys(env).some((k) => DISCOVERY_ENV.test(k));
}

/** Told of every path this module is about to look at (vcs-cache.ts records what an answer rests on). */
let consulting: ((path: string) => void) | undefined;

/** Run `read` with `onPath` told of every path looked at (before it is read: see vcs-cache.ts). */
export function consulted<T>(onPath: (path: string) => void, read: () => T): T {
  const outer = consulting;
  consulting = onPath;
  try {
    return read();
  } finally {
    consulting = outer;
  }
}

// The files read are a few small ones (HEAD, a ref, the config files): read synchronously, as a
// promise per file would cost far more than the read itself.
function readText(path: string): string | undefined {
  consulting?.(path);
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** readText of a file that is usually missing (commondir, most config files): looked up first, as an exception costs more than the lookup. */
function readOptional(path: string): string | undefined {
  consulting?.(path);
  return existsSync(path) ? readText(path) : undefined;
}

function isDirectory(path: string): boolean | undefined {
  consulting?.(path);
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory();
  } catch {
    return undefined;
  }
}

/**
 * The git directories of the checkout `dir` is in (the nearest `.git` above it), undefined when
 * there is none, ASK_GIT when the environment redirects git or a `.git` file cannot be read.
 */
export function findGitDirs(dir: string): Answer<GitDirs | undefined> {
  if (gitEnvironmentOverrides()) return ASK_GIT;
  let d = resolve(dir);
  for (;;) {
    const dotGit = join(d, ".git");
    const kind = isDirectory(dotGit);
    if (kind === true) return withCommonDir(d, dotGit);
    if (kind === false) {
      // a linked worktree's or a submodule's `.git` file: "gitdir: <path>"
      const m = /^gitdir: (.+?)\r?\n?$/.exec(readText(dotGit) ?? "");
      if (!m) return ASK_GIT;
      return withCommonDir(d, resolve(d, m[1]!));
    }
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}

function withCommonDir(top: string, gitDir: string): GitDirs {
  const common = readOptional(join(gitDir, "commondir"))?.trim();
  return { top, gitDir, commonDir: common ? resolve(gitDir, common) : gitDir };
}

/** A ref name git could store as a loose file (no path tricks): refs/... only. */
function safeRefName(name: string): boolean {
  return /^refs\/[A-Za-z0-9._\/@+-]+$/.test(name) && !name.split("/").some((p) => p === "" || p === "." || p === ".." || p.endsWith(".lock"));
}

/** Per-worktree refs live in the worktree's git directory; all others in the common one. */
function refFile(dirs: GitDirs, name: string): string {
  const perWorktree = /^refs\/(bisect|worktree|rewritten)\//.test(name);
  return join(perWorktree ? dirs.gitDir : dirs.commonDir, name);
}

function packedRef(packed: string | undefined, name: string): string | undefined {
  for (const line of (packed ?? "").split("\n")) {
    if (line === "" || line.startsWith("#") || line.startsWith("^")) continue;
    const sp = line.indexOf(" ");
    if (sp > 0 && line.slice(sp + 1).replace(/\r$/, "") === name) return line.slice(0, sp);
  }
  return undefined;
}

/**
 * HEAD's commit: a detached HEAD's id, or the branch it names resolved through loose refs and
 * packed-refs; undefined when the branch has no commit yet; ASK_GIT for what git would store
 * otherwise (reftable, a malformed HEAD).
 */
export function readHead(dirs: GitDirs): Answer<string | undefined> {
  let content = readText(join(dirs.gitDir, "HEAD"))?.trim();
  if (content === undefined) return ASK_GIT;
  for (let depth = 0; depth < 5; depth++) {
    if (OID.test(content)) return content;
    const m = /^ref: (\S+)$/.exec(content);
    // a reftable repository's HEAD names refs/heads/.invalid: its refs are not files
    if (!m || !safeRefName(m[1]!) || m[1] === "refs/heads/.invalid") return ASK_GIT;
    const name = m[1]!;
    const loose = readText(refFile(dirs, name))?.trim();
    if (loose !== undefined) {
      content = loose;
      continue;
    }
    const id = packedRef(readText(join(dirs.commonDir, "packed-refs")), name);
    return id !== undefined && OID.test(id) ? id : id === undefined ? undefined : ASK_GIT;
  }
  return ASK_GIT;
}

/** One `section.subsection.key = value` of a config file (section and key lower-cased, as git compares them). */
export interface ConfigEntry {
  section: string;
  subsection?: string;
  key: string;
  value: string;
}

/**
 * The entries of a git config file, in order; ASK_GIT when it holds an include/includeIf
 * (only git follows those) or anything this reader does not parse exactly as git does.
 */
export function parseGitConfig(text: string): Answer<ConfigEntry[]> {
  const out: ConfigEntry[] = [];
  let section: string | undefined;
  let subsection: string | undefined;
  let i = 0;
  const n = text.length;
  const skipBlank = (): void => {
    while (i < n && (text[i] === " " || text[i] === "\t" || text[i] === "\r")) i++;
  };
  const toEol = (): void => {
    while (i < n && text[i] !== "\n") i++;
  };
  while (i < n) {
    skipBlank();
    if (i >= n) break;
    const c = text[i]!;
    if (c === "\n") {
      i++;
      continue;
    }
    if (c === "#" || c === ";") {
      toEol();
      continue;
    }
    if (c === "[") {
      const close = text.indexOf("]", i);
      if (close < 0) return ASK_GIT;
      const head = text.slice(i + 1, close);
      const q = /^\s*([A-Za-z0-9.-]+)\s+"((?:[^"\\\n]|\\.)*)"\s*$/.exec(head);
      const plain = /^\s*([A-Za-z0-9-]+)(?:\.([A-Za-z0-9.-]+))?\s*$/.exec(head);
      if (q && !q[1]!.includes(".")) {
        section = q[1]!.toLowerCase();
        subsection = q[2]!.replace(/\\(.)/g, "$1");
      } else if (plain) {
        section = plain[1]!.toLowerCase();
        subsection = plain[2]?.toLowerCase(); // the deprecated [section.sub] form: lower-cased by git
      } else {
        return ASK_GIT;
      }
      if (section === "include" || section === "includeif") return ASK_GIT;
      i = close + 1;
      continue;
    }
    // a key, then "= value" or nothing (a boolean true)
    const km = /^[A-Za-z][A-Za-z0-9-]*/.exec(text.slice(i, i + 256));
    if (!km || section === undefined) return ASK_GIT;
    const key = km[0].toLowerCase();
    i += km[0].length;
    skipBlank();
    let value = "true";
    if (text[i] === "=") {
      i++;
      const v = configValue(text, i);
      if (v === undefined) return ASK_GIT;
      value = v.value;
      i = v.end;
    } else if (i < n && text[i] !== "\n" && text[i] !== "#" && text[i] !== ";") {
      return ASK_GIT;
    } else {
      toEol();
    }
    out.push({ section, ...(subsection !== undefined ? { subsection } : {}), key, value });
  }
  return out;
}

/** A value from `start` (after `=`) to its end of line, as git reads it: quotes, escapes, continuations, comments, outer blanks trimmed. */
function configValue(text: string, start: number): { value: string; end: number } | undefined {
  let i = start;
  let value = "";
  let quoted = false;
  let pendingSpace = ""; // blanks kept only when something follows them
  let started = false;
  for (; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\n") {
      if (quoted) return undefined;
      break;
    }
    if (!quoted && (c === "#" || c === ";")) {
      while (i < text.length && text[i] !== "\n") i++;
      break;
    }
    if (!quoted && (c === " " || c === "\t" || c === "\r")) {
      if (started) pendingSpace += " "; // git keeps inner blanks, each as a space, and drops trailing ones
      continue;
    }
    value += pendingSpace;
    pendingSpace = "";
    if (c === "\\") {
      const e = text[i + 1];
      i++;
      if (e === "\n") continue; // continuation
      if (e === "\r" && text[i + 1] === "\n") {
        i++;
        continue;
      }
      const esc: Record<string, string> = { "\\": "\\", '"': '"', n: "\n", t: "\t", b: "\b" };
      if (e === undefined || esc[e] === undefined) return undefined;
      value += esc[e];
      started = true;
      continue;
    }
    if (c === '"') {
      quoted = !quoted;
      started = true;
      continue;
    }
    value += c;
    started = true;
  }
  if (quoted) return undefined;
  return { value, end: i };
}

/** The system config file of a git installed under /usr (what `git` on PATH is); undefined when that is not the git here. */
function systemConfig(env: NodeJS.ProcessEnv): string | undefined {
  // (looked up each time, a stat per PATH entry up to git's: what an answer rests on, see consulted())
  for (const d of (env.PATH ?? "").split(delimiter)) {
    if (!isAbsolute(d) || isDirectory(join(d, "git")) !== false) continue;
    return d === "/usr/bin" || d === "/bin" || d === "/usr/sbin" || d === "/sbin" ? "/etc/gitconfig" : undefined;
  }
  return undefined;
}

/**
 * The config files git reads for this checkout, in git's order: system, global (XDG, then
 * ~/.gitconfig), the repository's, the worktree's (extensions.worktreeConfig); ASK_GIT when the
 * system file's place is not known.
 */
function configFiles(dirs: GitDirs, env: NodeJS.ProcessEnv): Answer<string[]> {
  const system = systemConfig(env);
  if (system === undefined) return ASK_GIT;
  const home = env.HOME ?? homedir();
  const xdg = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== "" ? env.XDG_CONFIG_HOME : join(home, ".config");
  return [system, join(xdg, "git", "config"), join(home, ".gitconfig"), join(dirs.commonDir, "config"), join(dirs.gitDir, "config.worktree")];
}

/** `url` with the longest matching `url.<base>.insteadOf` prefix replaced by its base (the first of equal length wins). */
export function applyInsteadOf(url: string, entries: ConfigEntry[]): string {
  let best: { base: string; prefix: string } | undefined;
  for (const e of entries) {
    if (e.section !== "url" || e.subsection === undefined || e.key !== "insteadof") continue;
    if (url.startsWith(e.value) && (!best || e.value.length > best.prefix.length)) best = { base: e.subsection, prefix: e.value };
  }
  return best ? best.base + url.slice(best.prefix.length) : url;
}

/**
 * The `origin` remote's (first) URL as `git remote get-url origin` prints it (insteadOf applied),
 * undefined when there is no such remote, ASK_GIT when only git can tell.
 */
export function readOriginUrl(dirs: GitDirs, env: NodeJS.ProcessEnv = process.env): Answer<string | undefined> {
  if (Object.keys(env).some((k) => CONFIG_ENV.test(k))) return ASK_GIT;
  const files = configFiles(dirs, env);
  if (files === ASK_GIT) return ASK_GIT;
  const entries: ConfigEntry[] = [];
  for (const text of files.map(readOptional)) {
    if (text === undefined) continue;
    const parsed = parseGitConfig(text);
    if (parsed === ASK_GIT) return ASK_GIT;
    entries.push(...parsed);
  }
  if (entries.some((e) => e.section === "extensions" && e.key === "refstorage")) return ASK_GIT;
  const urls = entries.filter((e) => e.section === "remote" && e.subsection === "origin" && e.key === "url").map((e) => e.value);
  if (urls.includes("")) return ASK_GIT; // an empty url resets the list in newer gits
  const url = urls[0];
  if (url === undefined) {
    // git also reads a remote from the legacy .git/remotes/origin and .git/branches/origin files
    const legacy = [join(dirs.commonDir, "remotes", "origin"), join(dirs.commonDir, "branches", "origin")].map(isDirectory);
    return legacy.some((k) => k !== undefined) ? ASK_GIT : undefined;
  }
  return applyInsteadOf(url, entries);
}
