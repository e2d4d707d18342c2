// COPY/ADD source selection: turns the source arguments of one instruction into the context
// paths they name, with Docker/BuildKit's rules (context-relative paths, `..` confinement,
// Go filepath.Match wildcards per path segment, empty wildcards allowed, the named path itself
// followed when it is a symlink, `--exclude`, `--parents` with an optional `/./` pivot).
import { readdir } from "node:fs/promises";
import { join, posix } from "node:path";
import { KilnError } from "../errors.js";
import type { ContextEntry, DirContext, IgnoreFn } from "./build-context.js";
import { createIgnoreMatcher } from "./dockerignore.js";

export interface SelectedSource {
  kind: "context";
  ctx: DirContext;
  /** The source argument as written. */
  source: string;
  /** The matched path, symlinks followed (a real path inside the context; "" = the root). */
  entry: ContextEntry;
  /** The name the source has at the destination when copied into a directory (the name as written/matched). */
  name: string;
  /** With --parents: the matched path relative to the context root, or to the `/./` pivot. */
  parentsPath?: string;
  /** With --parents: the pivot directory (context-relative, "" = the root). */
  pivot?: string;
  /** True when the source argument had wildcards. */
  wildcard: boolean;
  /** --exclude matcher, applied to paths relative to a directory source (or a file's name). */
  exclude?: IgnoreFn;
}

export interface SelectOptions {
  exclude?: string[];
  parents?: boolean;
  /** BuildKit's Dockerfile frontend allows a wildcard to match nothing (default true). */
  allowEmptyWildcard?: boolean;
}

export async function selectSources(ctx: DirContext, sources: string[], options: SelectOptions = {}): Promise<SelectedSource[]> {
  const exclude = options.exclude && options.exclude.length > 0 ? createIgnoreMatcher(options.exclude) : undefined;
  const out: SelectedSource[] = [];
  for (const source of sources) {
    let pivot = "";
    let written = source;
    if (options.parents) {
      const at = source.indexOf("/./");
      if (at >= 0) {
        pivot = cleanSource(source.slice(0, at) || "/", source);
        written = source.slice(0, at) + "/" + source.slice(at + 3);
      }
    }
    const clean = cleanSource(written, source);
    const wildcard = hasWildcard(clean);
    const matches = wildcard ? await expandWildcards(ctx, clean, source) : [clean];
    if (wildcard && matches.length === 0 && options.allowEmptyWildcard === false) {
      throw new KilnError("CONTEXT_SOURCE_INVALID", `source "${source}": no source files were specified`);
    }
    for (const m of matches) {
      const real = await ctx.resolve(m, source);
      const entry = real === undefined ? undefined : await ctx.stat(real);
      if (!entry) {
        if (wildcard) continue; // a dangling symlink matched by a wildcard
        throw new KilnError("CONTEXT_SOURCE_NOT_FOUND", `source "${source}" not found in build context`);
      }
      const sel: SelectedSource = { kind: "context", ctx, source, entry, name: posix.basename(m), wildcard };
      if (m === "") sel.name = "";
      if (options.parents) {
        if (pivot !== "" && !(m === pivot || m.startsWith(`${pivot}/`))) {
          throw new KilnError("CONTEXT_SOURCE_INVALID", `source "${source}": path is not under its pivot "${pivot}"`);
        }
        sel.parentsPath = pivot === "" ? m : m.slice(pivot.length + 1);
        sel.pivot = pivot;
      }
      if (exclude) sel.exclude = exclude;
      out.push(sel);
    }
  }
  return out;
}

/** Context-relative, cleaned; a leading "/" is the context root; climbing out is an error. */
function cleanSource(p: string, source: string): string {
  const parts: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (parts.length === 0) throw new KilnError("CONTEXT_SOURCE_OUTSIDE", `source "${source}" is outside the build context`);
      parts.pop();
      continue;
    }
    parts.push(seg);
  }
  return parts.join("/");
}

function hasWildcard(p: string): boolean {
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === "\\") {
      i++;
      continue;
    }
    if (ch === "*" || ch === "?" || ch === "[") return true;
  }
  return false;
}

/** Go's filepath.Match for one path segment, as a RegExp. */
export function segmentPattern(seg: string): RegExp {
  let re = "^";
  for (let i = 0; i < seg.length; i++) {
    const ch = seg[i]!;
    if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "\\" && i + 1 < seg.length) re += escapeRe(seg[++i]!);
    else if (ch === "[") {
      let j = i + 1;
      let cls = "";
      if (seg[j] === "^") {
        cls = "^";
        j++;
      }
      let closed = false;
      for (; j < seg.length; j++) {
        const c = seg[j]!;
        if (c === "]" && j > i + 1 + (cls ? 1 : 0)) {
          closed = true;
          break;
        }
        if (c === "\\" && j + 1 < seg.length) {
          cls += `\\${seg[++j]}`;
          continue;
        }
        cls += c === "-" ? "-" : escapeRe(c);
      }
      if (!closed) throw new KilnError("CONTEXT_SOURCE_INVALID", `invalid source pattern "${seg}": syntax error in pattern`);
      re += `[${cls}]`;
      i = j;
    } else re += escapeRe(ch);
  }
  return new RegExp(`${re}$`);
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\/-]/.test(c) ? `\\${c}` : c;
}

function unescapeLiteral(seg: string): string {
  return seg.replace(/\\(.)/g, "$1");
}

/** Expands a wildcard source segment by segment against the context (ignored paths invisible). */
async function expandWildcards(ctx: DirContext, clean: string, source: string): Promise<string[]> {
  let candidates: string[] = [""];
  const segs = clean.split("/");
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const last = i === segs.length - 1;
    const next: string[] = [];
    for (const cand of candidates) {
      if (!hasWildcard(seg)) {
        next.push(cand === "" ? unescapeLiteral(seg) : `${cand}/${unescapeLiteral(seg)}`);
        continue;
      }
      const dir = await ctx.resolve(cand, source);
      if (dir === undefined) continue;
      const st = await ctx.stat(dir);
      if (!st || st.type !== "dir") continue;
      let names: string[];
      try {
        names = await readdir(join(ctx.root, dir));
      } catch {
        continue;
      }
      const re = segmentPattern(seg);
      names.sort();
      for (const name of names) {
        if (!re.test(name)) continue;
        const realChild = dir === "" ? name : `${dir}/${name}`;
        if (!(await ctx.stat(realChild))) continue; // ignored by .dockerignore
        const written = cand === "" ? name : `${cand}/${name}`;
        if (!last) {
          const r = await ctx.resolve(written, source).catch(() => undefined);
          if (r === undefined) continue;
        }
        next.push(written);
      }
    }
    candidates = next;
    if (candidates.length === 0) break;
  }
  return candidates;
}
