// Package scanners over the files scan-files.ts kept: Debian (dpkg status and distroless
// status.d/), Alpine (apk installed db), RPM (rpmdb.ts), npm (node_modules/*/package.json, and package-lock.json
// through npm-lock.ts, one package per install), Python (*.dist-info/METADATA) and Go binaries'
// module info (go-buildinfo.ts). Each package gets a purl (package-url spec) and, where the
// database records one, its declared license. Pure functions of the file contents.

import { posix } from "node:path";
import { enc, npmPurl, type FoundPackage } from "./found.js";
import { fromGoRecord, goPackages } from "./go-buildinfo.js";
import { parsePackageLock } from "./npm-lock.js";
import { RPM_SQLITE, RPM_UNSUPPORTED, isRpmMarker, isRpmSqlite, parseRpmSqlite } from "./rpmdb.js";

export type { FoundPackage, PackageType } from "./found.js";

/** RFC 822-style stanzas (dpkg status, METADATA headers): continuation lines folded into the field. */
function stanzas(text: string): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  let cur: Record<string, string> = {};
  let last: string | undefined;
  const flush = (): void => {
    if (Object.keys(cur).length > 0) out.push(cur);
    cur = {};
    last = undefined;
  };
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === "") {
      flush();
      continue;
    }
    if ((line.startsWith(" ") || line.startsWith("\t")) && last !== undefined) {
      cur[last] += `\n${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim();
    cur[last] = line.slice(colon + 1).trim();
  }
  flush();
  return out;
}

/** The distribution's ID from os-release (the purl namespace of deb/apk packages). */
export function osReleaseId(text: string | undefined, fallback: string): string {
  const m = text ? /^ID=("?)([A-Za-z0-9._-]+)\1\s*$/m.exec(text) : null;
  return m ? m[2]!.toLowerCase() : fallback;
}

/** Installed packages of a dpkg status file (or one status.d/ file, which has no Status field). */
export function parseDpkgStatus(text: string, source: string, distro: string): FoundPackage[] {
  const out: FoundPackage[] = [];
  for (const s of stanzas(text)) {
    const name = s.Package;
    const version = s.Version;
    if (!name || !version) continue;
    if (s.Status !== undefined && s.Status.split(/\s+/)[2] !== "installed") continue;
    const arch = s.Architecture;
    const pkg: FoundPackage = {
      type: "deb", name, version, source,
      purl: `pkg:deb/${enc(distro)}/${enc(name)}@${enc(version)}${arch ? `?arch=${enc(arch)}` : ""}`,
    };
    if (arch) pkg.arch = arch;
    out.push(pkg);
  }
  return out;
}

/** Installed packages of apk's /lib/apk/db/installed (P: name, V: version, A: arch, L: license). */
export function parseApkInstalled(text: string, source: string, distro: string): FoundPackage[] {
  const out: FoundPackage[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const f: Record<string, string> = {};
    for (const line of block.split("\n")) if (line.length > 2 && line[1] === ":") f[line[0]!] = line.slice(2).trim();
    if (!f.P || !f.V) continue;
    const pkg: FoundPackage = {
      type: "apk", name: f.P, version: f.V, source,
      purl: `pkg:apk/${enc(distro)}/${enc(f.P)}@${enc(f.V)}${f.A ? `?arch=${enc(f.A)}` : ""}`,
    };
    if (f.A) pkg.arch = f.A;
    if (f.L) pkg.license = f.L;
    out.push(pkg);
  }
  return out;
}

/** One node_modules package.json (undefined when it names no package or version). */
export function parseNpmPackage(text: string, source: string): FoundPackage | undefined {
  let doc: { name?: unknown; version?: unknown; license?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null || typeof doc.name !== "string" || typeof doc.version !== "string") return undefined;
  const name = doc.name;
  const pkg: FoundPackage = { type: "npm", name, version: doc.version, source, location: posix.dirname(source.replace(/^\//, "")), purl: npmPurl(name, doc.version) };
  const lic = typeof doc.license === "string" ? doc.license : typeof (doc.license as { type?: unknown } | null)?.type === "string" ? (doc.license as { type: string }).type : undefined;
  if (lic) pkg.license = lic;
  return pkg;
}

/** One Python *.dist-info/METADATA (its header block). */
export function parsePythonMetadata(text: string, source: string): FoundPackage | undefined {
  const head = stanzas(text.split(/\r?\n\r?\n/)[0] ?? "")[0] ?? {};
  const name = head.Name;
  const version = head.Version;
  if (!name || !version) return undefined;
  const pkg: FoundPackage = { type: "pypi", name, version, source, purl: `pkg:pypi/${enc(name.toLowerCase().replace(/[-_.]+/g, "-"))}@${enc(version)}` };
  const lic = head["License-Expression"] ?? head.License;
  if (lic && !lic.includes("\n")) pkg.license = lic;
  return pkg;
}

/**
 * One package per npm install: a package-lock.json entry naming the same name@version at the same
 * directory as a node_modules package.json is the same package (the package.json's finding is
 * kept, with the lockfile's license when the package.json has none).
 */
function dedupNpm(pkgs: FoundPackage[]): FoundPackage[] {
  const installed = new Map<string, FoundPackage>();
  const id = (p: FoundPackage): string => `${p.name}\0${p.version}\0${p.location ?? ""}`;
  for (const p of pkgs) if (p.type === "npm" && p.source.endsWith("/package.json")) installed.set(id(p), p);
  return pkgs.filter((p) => {
    if (p.type !== "npm" || p.source.endsWith("/package.json")) return true;
    const same = installed.get(id(p));
    if (!same) return true;
    if (same.license === undefined && p.license !== undefined) same.license = p.license;
    return false;
  });
}

/** rpm databases: the SQLite one read, the others (and what cannot be read) named in a warning. */
function rpmPackages(path: string, data: Buffer, files: ReadonlyMap<string, Buffer>, distro: string, warn: (message: string) => void): FoundPackage[] {
  const src = `/${path}`;
  const base = posix.basename(path);
  const dir = posix.dirname(path);
  if (base === RPM_SQLITE) {
    if (data.length === 0) {
      warn(`SBOM: the RPM database ${src} is empty or larger than the scan's limit and was not read: its packages are not listed`);
      return [];
    }
    try {
      return parseRpmSqlite(data, src, distro);
    } catch (err) {
      warn(`SBOM: the RPM database ${src} cannot be read (${(err as Error).message}): its packages are not listed`);
      return [];
    }
  }
  if (base === `${RPM_SQLITE}-wal`) {
    if (files.has(`${dir}/${RPM_SQLITE}`)) warn(`SBOM: the RPM database's write-ahead log ${src} is not empty and is not read: packages installed since its last checkpoint may be missing`);
    return [];
  }
  // BerkeleyDB or NDB: not read; no warning when rpm's SQLite database is next to it (left from a migration)
  if (!files.has(`${dir}/${RPM_SQLITE}`)) warn(`SBOM: ${src} is an RPM ${RPM_UNSUPPORTED[base]} database, which kiln does not read: its RPM packages are not listed`);
  return [];
}

/**
 * Every package the scanner files show, in a stable order (type, name, version, source). What
 * cannot be read (an RPM database kiln does not support) is reported to `warn`, never left out silently.
 */
export function findPackages(files: ReadonlyMap<string, Buffer>, warn: (message: string) => void = () => undefined): FoundPackage[] {
  const text = (p: string): string | undefined => files.get(p)?.toString("utf8");
  const osRelease = text("etc/os-release") ?? text("usr/lib/os-release");
  const out: FoundPackage[] = [];
  for (const [path, data] of files) {
    const src = `/${path}`;
    const body = (): string => data.toString("utf8");
    if (path === "var/lib/dpkg/status" || path.startsWith("var/lib/dpkg/status.d/")) out.push(...parseDpkgStatus(body(), src, osReleaseId(osRelease, "debian")));
    else if (path === "lib/apk/db/installed") out.push(...parseApkInstalled(body(), src, osReleaseId(osRelease, "alpine")));
    else if (isRpmSqlite(path) || isRpmMarker(path)) out.push(...rpmPackages(path, data, files, osReleaseId(osRelease, "redhat"), warn));
    else if (path.endsWith("/package.json")) {
      const p = parseNpmPackage(body(), src);
      if (p) out.push(p);
    } else if (path === "package-lock.json" || path.endsWith("/package-lock.json")) out.push(...parsePackageLock(body(), path));
    else if (path.endsWith(".dist-info/METADATA")) {
      const p = parsePythonMetadata(body(), src);
      if (p) out.push(p);
    } else {
      const go = fromGoRecord(data);
      if (go) out.push(...goPackages(go, src));
    }
  }
  const key = (p: FoundPackage): string => `${p.type}\0${p.name}\0${p.version}\0${p.source}`;
  return dedupNpm(out).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}
