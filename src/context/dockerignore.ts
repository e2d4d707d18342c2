// .dockerignore: reading the ignore file (Dockerfile-specific `<name>.dockerignore` first, as
// BuildKit does) and matching context paths with Docker's semantics (moby/patternmatcher):
// cleaned patterns, `!` exceptions, later patterns win, `**`, and a pattern that matches a
// directory excluding everything beneath it. Also used for `COPY --exclude`.
import { readFile } from "node:fs/promises";
import { basename, dirname, join, posix } from "node:path";
import { KilnError } from "../errors.js";

/** Reads the ignore patterns for a build: `<Dockerfile>.dockerignore` wins over `<context>/.dockerignore`. */
export async function readIgnoreFile(contextDir: string | undefined, dockerfilePath?: string): Promise<string[]> {
  const candidates: string[] = [];
  if (dockerfilePath) candidates.push(join(dirname(dockerfilePath), `${basename(dockerfilePath)}.dockerignore`));
  if (contextDir) candidates.push(join(contextDir, ".dockerignore"));
  for (const file of candidates) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      throw new KilnError("CONTEXT_READ", `cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    return parseIgnoreFile(text);
  }
  return [];
}

/** Parses ignore-file text into cleaned patterns (exceptions keep their leading `!`). */
export function parseIgnoreFile(text: string): string[] {
  const out: string[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (const raw of lines) {
    if (raw.startsWith("#")) continue;
    let pattern = raw.trim();
    if (pattern === "") continue;
    const invert = pattern.startsWith("!");
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) pattern = cleanPattern(pattern);
    out.push(invert ? `!${pattern}` : pattern);
  }
  return out;
}

/** filepath.Clean, then a leading "/" dropped (patterns are context-relative). */
function cleanPattern(p: string): string {
  let c = posix.normalize(p);
  if (c.length > 1 && c.endsWith("/")) c = c.slice(0, -1);
  if (c.startsWith("/")) {
    // Clean("/..") is "/": climbing above the root stays at the root.
    c = posix.normalize(c).replace(/^\/(\.\.\/?)*/, "/");
    if (c.length > 1) c = c.slice(1);
  }
  return c;
}

interface CompiledPattern {
  exclusion: boolean;
  text: string;
  regex: RegExp;
  /** The literal part before the first wildcard (for deciding whether a subtree can be pruned). */
  prefix: string;
}

const SPECIAL = /[.+^${}()|\]\\]/;

/** Translates one pattern to a regex the way moby/patternmatcher does (`**` crosses `/`). */
export function patternToRegExp(pattern: string): RegExp {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*") {
      if (pattern[i + 1] === "*") {
        i++;
        if (pattern[i + 1] === "/") i++;
        re += i + 1 >= pattern.length ? ".*" : "(.*/)?";
      } else {
        re += "[^/]*";
      }
    } else if (ch === "?") {
      re += "[^/]";
    } else if (ch === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) {
        re += "\\[";
        continue;
      }
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith("!")) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else if (ch === "\\") {
      const next = pattern[i + 1];
      if (next === undefined) {
        re += "\\\\";
      } else {
        i++;
        re += SPECIAL.test(next) || next === "*" || next === "?" || next === "[" ? `\\${next}` : next;
      }
    } else if (SPECIAL.test(ch)) {
      re += `\\${ch}`;
    } else {
      re += ch;
    }
  }
  try {
    return new RegExp(`${re}$`);
  } catch {
    throw new KilnError("DOCKERIGNORE_INVALID", `invalid ignore pattern "${pattern}"`);
  }
}

function compile(patterns: string[]): CompiledPattern[] {
  const out: CompiledPattern[] = [];
  for (const raw of patterns) {
    const exclusion = raw.startsWith("!");
    let text = exclusion ? raw.slice(1) : raw;
    if (text === "") continue;
    text = cleanPattern(text);
    const wild = text.search(/[*?[\\]/);
    out.push({ exclusion, text, regex: patternToRegExp(text), prefix: wild < 0 ? text : text.slice(0, wild) });
  }
  return out;
}

/** A matcher: true when `relPath` (context-relative, posix) is excluded. */
export type IgnoreMatcher = ((relPath: string) => boolean) & {
  /** True when `dirRel` is excluded and no exception pattern can re-include anything beneath it. */
  canSkipDir: (dirRel: string) => boolean;
  /** True when there are no patterns at all. */
  readonly empty: boolean;
};

/** Builds a matcher with Docker's semantics: later patterns win, parents' matches apply to children. */
export function createIgnoreMatcher(patterns: string[]): IgnoreMatcher {
  const compiled = compile(patterns);
  // No patterns: nothing is excluded, so no path needs normalising (a walk calls this per file).
  if (compiled.length === 0) return Object.assign((_relPath: string) => false, { canSkipDir: (_dirRel: string) => false, empty: true });
  const hasExceptions = compiled.some((p) => p.exclusion);
  const matches = (relPath: string): boolean => {
    const file = normalizeRel(relPath);
    if (file === "") return false;
    const parts = file.split("/");
    let matched = false;
    for (const p of compiled) {
      // An exception can only flip a match; an exclusion can only set one.
      if (p.exclusion !== matched) continue;
      let hit = p.regex.test(file);
      if (!hit) {
        for (let i = 1; i < parts.length && !hit; i++) hit = p.regex.test(parts.slice(0, i).join("/"));
      }
      if (hit) matched = !p.exclusion;
    }
    return matched;
  };
  const canSkipDir = (dirRel: string): boolean => {
    const dir = normalizeRel(dirRel);
    if (!matches(dir)) return false;
    if (!hasExceptions) return true;
    return noExceptionBeneath(compiled, dir);
  };
  return Object.assign(matches, { canSkipDir, empty: compiled.length === 0 });
}

/**
 * True when no exception pattern could re-include a path under `dir` (so a walk can skip it).
 * Conservative: any exception whose literal prefix overlaps `dir` keeps the directory walkable.
 */
function noExceptionBeneath(compiled: CompiledPattern[], dir: string): boolean {
  const withSlash = `${dir}/`;
  for (const p of compiled) {
    if (!p.exclusion) continue;
    if (p.prefix === "" || p.prefix.startsWith(withSlash) || withSlash.startsWith(p.prefix)) return false;
    if (p.prefix.startsWith(dir) && p.text.length > dir.length) return false;
  }
  return true;
}

function normalizeRel(p: string): string {
  let n = posix.normalize(p.replace(/\\/g, "/"));
  n = n.replace(/^(\.\/)+/, "").replace(/^\/+/, "");
  if (n === ".") return "";
  if (n.endsWith("/")) n = n.slice(0, -1);
  return n;
}
