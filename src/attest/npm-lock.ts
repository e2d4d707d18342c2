// npm's package-lock.json (lockfile v1: the nested `dependencies` tree; v2 and v3: the flat
// `packages` map keyed by install path) as a source of SBOM packages. Each package carries the
// directory it is installed at, so that findPackages can count a package once when
// node_modules/<name>/package.json shows the same name@version at the same place.
import { posix } from "node:path";
import { npmPurl, type FoundPackage } from "./found.js";

interface LockEntry {
  name?: unknown;
  version?: unknown;
  license?: unknown;
  link?: unknown;
  dependencies?: unknown;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The package name an install path ends in: "a/node_modules/@s/x" → "@s/x". */
function nameOfPath(key: string): string | undefined {
  const i = key.lastIndexOf("node_modules/");
  return i < 0 ? undefined : key.slice(i + "node_modules/".length) || undefined;
}

/** npm aliases ("npm:real-name@1.2.3") name the real package; other versions are taken as written. */
function resolveAlias(name: string, version: string): { name: string; version: string } {
  if (!version.startsWith("npm:")) return { name, version };
  const spec = version.slice(4);
  const at = spec.lastIndexOf("@");
  return at > 0 ? { name: spec.slice(0, at), version: spec.slice(at + 1) } : { name, version };
}

function found(name: string, version: string, license: unknown, source: string, location: string): FoundPackage {
  const r = resolveAlias(name, version);
  const pkg: FoundPackage = { type: "npm", name: r.name, version: r.version, source, location, purl: npmPurl(r.name, r.version) };
  if (typeof license === "string" && license !== "") pkg.license = license;
  return pkg;
}

/** v1: `dependencies` nest as node_modules directories do. */
function walkV1(deps: Record<string, unknown>, dir: string, source: string, out: FoundPackage[]): void {
  for (const [name, entry] of Object.entries(deps)) {
    if (!isObject(entry)) continue;
    const e = entry as LockEntry;
    const location = posix.join(dir, "node_modules", name);
    if (typeof e.version === "string" && e.version !== "" && !e.version.startsWith("file:") && !e.version.startsWith("link:")) {
      out.push(found(name, e.version, undefined, source, location));
    }
    if (isObject(e.dependencies)) walkV1(e.dependencies, location, source, out);
  }
}

/**
 * The packages a package-lock.json at `path` (relative to "/", no leading slash) records: the
 * project itself (when it has a name and version) and every installed dependency; links
 * (workspace symlinks) are left to the entry they point at. Garbage gives nothing.
 */
export function parsePackageLock(text: string, path: string): FoundPackage[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return [];
  }
  if (!isObject(doc)) return [];
  const dir = posix.dirname(path) === "." ? "" : posix.dirname(path);
  const source = `/${path}`;
  const out: FoundPackage[] = [];
  if (isObject(doc.packages)) {
    for (const [key, entry] of Object.entries(doc.packages)) {
      if (!isObject(entry)) continue;
      const e = entry as LockEntry;
      if (e.link === true || typeof e.version !== "string" || e.version === "") continue;
      const name = typeof e.name === "string" && e.name !== "" ? e.name : key === "" ? undefined : nameOfPath(key);
      if (!name) continue;
      out.push(found(name, e.version, e.license, source, posix.join(dir, key)));
    }
    return out;
  }
  if (typeof doc.name === "string" && doc.name !== "" && typeof doc.version === "string" && doc.version !== "") {
    out.push(found(doc.name, doc.version, undefined, source, dir));
  }
  if (isObject(doc.dependencies)) walkV1(doc.dependencies, dir, source, out);
  return out;
}
