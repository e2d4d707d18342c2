// Root-confined path resolution: resolves a path inside a root directory as if that directory
// were `/` (openat2 RESOLVE_IN_ROOT semantics, done component by component with lstat/readlink).
// `..` never climbs above the root, absolute symlinks resolve from the root, relative ones from
// their own directory, and more than 255 symlinks on one walk is an error (ELOOP, like Linux).
import { lstatSync, readlinkSync } from "node:fs";
import { posix } from "node:path";
import { KilnError } from "../errors.js";

/** Linux's limit on symlinks followed during one path walk. */
export const MAX_SYMLINKS = 255;

export interface ResolveOptions {
  /** Follow a symlink in the final component too (default false: the link itself is returned). */
  followFinal?: boolean;
}

/** Split a path into clean components (drops "", "."; keeps ".."). */
function components(p: string): string[] {
  return p.split("/").filter((c) => c !== "" && c !== ".");
}

/**
 * Lexically normalise an in-image path to a relative POSIX path without leading "/" or "./".
 * Returns null when the path climbs above the root with "..". The root itself is "".
 */
export function cleanImagePath(p: string): string | null {
  const out: string[] = [];
  for (const c of components(p)) {
    if (c === "..") {
      if (out.length === 0) return null;
      out.pop();
    } else {
      out.push(c);
    }
  }
  return out.join("/");
}

/**
 * Resolve `path` (interpreted inside `root`) to a host path that is guaranteed to lie inside
 * `root`. Components that do not exist are appended literally (they cannot be symlinks).
 * `root` must be an absolute, already-resolved host directory.
 */
export async function resolveInRoot(root: string, path: string, options: ResolveOptions = {}): Promise<string> {
  const resolved: string[] = [];
  const pending = components(path).reverse(); // stack: next component at the end
  let links = 0;
  // resolved.length once the first missing component is appended (null: all so far exist). A
  // ".." back above it returns to components that exist, which must be looked at again (a
  // symlink's text like "missing/../link" must not carry "link" through unresolved).
  let missingAt: number | null = null;
  while (pending.length > 0) {
    const c = pending.pop() as string;
    if (c === "..") {
      resolved.pop();
      if (missingAt !== null && resolved.length < missingAt) missingAt = null;
      continue;
    }
    const isFinal = pending.length === 0;
    if (missingAt !== null) {
      resolved.push(c);
      continue;
    }
    const host = posix.join(root, ...resolved, c);
    // Synchronous: one cached metadata lookup is cheaper than a thread-pool round trip.
    let st;
    try {
      st = lstatSync(host, { throwIfNoEntry: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOTDIR") throw err;
    }
    if (st === undefined) {
      resolved.push(c);
      missingAt = resolved.length;
      continue;
    }
    if (st.isSymbolicLink() && (!isFinal || options.followFinal)) {
      if (++links > MAX_SYMLINKS) {
        throw new KilnError("PATH_UNRESOLVABLE", `path "${path}": too many levels of symbolic links`);
      }
      const target = readlinkSync(host);
      if (target.startsWith("/")) resolved.length = 0;
      const tc = components(target);
      for (let i = tc.length - 1; i >= 0; i--) pending.push(tc[i]);
      continue;
    }
    resolved.push(c);
  }
  return resolved.length === 0 ? root : posix.join(root, ...resolved);
}

/**
 * Resolve the parent of `path` inside `root` (following symlinks), keeping the final component
 * unresolved: what you need to create, replace or remove the object named by `path` itself.
 */
export async function resolveParentInRoot(root: string, path: string): Promise<{ parent: string; name: string; host: string }> {
  const clean = cleanImagePath(path);
  if (clean === null || clean === "") {
    throw new KilnError("PATH_UNRESOLVABLE", `path "${path}" does not name an object inside the root`);
  }
  const idx = clean.lastIndexOf("/");
  const name = idx < 0 ? clean : clean.slice(idx + 1);
  const parent = await resolveInRoot(root, idx < 0 ? "" : clean.slice(0, idx), { followFinal: true });
  return { parent, name, host: posix.join(parent, name) };
}
