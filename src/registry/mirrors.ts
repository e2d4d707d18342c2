// Registry mirrors for pulls: kaniko's `--registry-mirror HOST[/PATH]` (for docker.io) and the
// mirrors of a containers-registries.conf v2 file (`[[registry]] location = "docker.io"` with
// `[[registry.mirror]] location = "..."`, `insecure = true`) or of a buildkitd.toml
// (`[registry."docker.io"] mirrors = ["..."]`). A pull tries each mirror in order and falls back to
// the origin; each endpoint is its own RegistryClient, so credentials are only ever looked up for
// (and sent to) the host being asked. The TOML read here is the subset these files use.
// Which files: `--registries-conf` or $CONTAINERS_REGISTRIES_CONF alone when given, else the ones
// containers-registries.conf(5) and .conf.d(5) give, in their order (registriesConfFiles).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { KilnError, UsageError } from "../errors.js";
import { DOCKER_HUB } from "../image/reference.js";

export interface RegistryMirror {
  /** `host[:port]`, optionally followed by a path prefix for the repositories (`mirror:5000/hub`). */
  location: string;
  /** Plain HTTP (or TLS without verification) for this mirror. */
  insecure?: boolean;
  /**
   * Set on the entry of a registry whose configuration forbids or changes its pulls in a way kiln
   * does not follow (`blocked = true`, a `location` rewriting the `prefix`): a pull from that
   * registry fails with it (pullEndpoints), every other registry's pulls are unaffected.
   */
  refusal?: { code: "REGISTRY_BLOCKED" | "FEATURE_UNSUPPORTED"; message: string };
}

/** Mirrors by the registry they stand in for ("docker.io", "quay.io", "host:5000"). */
export type MirrorMap = Record<string, RegistryMirror[]>;

/** The host of a mirror location and its repository prefix. */
export function splitMirror(location: string): { host: string; prefix: string } {
  const clean = location.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "");
  const slash = clean.indexOf("/");
  return slash < 0 ? { host: clean, prefix: "" } : { host: clean.slice(0, slash), prefix: clean.slice(slash + 1) };
}

function checkLocation(location: string, where: string): string {
  const { host } = splitMirror(location);
  if (!/^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\])(?::\d+)?$/.test(host)) throw new UsageError("OPTION_INVALID", `${where}: invalid registry location "${location}"`);
  return location.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "");
}

/** kaniko's `--registry-mirror` values: mirrors of docker.io, in order. */
export function dockerHubMirrors(values: string[]): MirrorMap {
  if (values.length === 0) return {};
  return { [DOCKER_HUB]: values.map((v) => ({ location: checkLocation(v, "--registry-mirror") })) };
}

type TomlValue = string | boolean | number | string[];

/** The TOML subset of registries.conf / buildkitd.toml: tables, arrays of tables, strings, booleans, numbers, string arrays. */
function parseToml(text: string, file: string): Array<{ path: string[]; array: boolean; values: Record<string, TomlValue> }> {
  const sections: Array<{ path: string[]; array: boolean; values: Record<string, TomlValue> }> = [{ path: [], array: false, values: {} }];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = stripComment(lines[i]!).trim();
    if (line === "") continue;
    const where = `${file}:${i + 1}`;
    const table = /^(\[\[?)\s*(.+?)\s*(\]\]?)$/.exec(line);
    if (table && (table[1]!.length === table[3]!.length)) {
      sections.push({ path: splitKey(table[2]!, where), array: table[1] === "[[", values: {} });
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new KilnError("OPTION_INVALID", `${where}: expected key = value`);
    let raw = line.slice(eq + 1).trim();
    // a string array may span lines
    while (raw.startsWith("[") && !balanced(raw) && i + 1 < lines.length) raw += " " + stripComment(lines[++i]!).trim();
    line = line.slice(0, eq).trim();
    const key = splitKey(line, where).join(".");
    sections.at(-1)!.values[key] = parseValue(raw, where);
  }
  return sections;
}

function stripComment(line: string): string {
  let quoted: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === "\\" && quoted === '"') i++;
      else if (c === quoted) quoted = null;
    } else if (c === '"' || c === "'") quoted = c;
    else if (c === "#") return line.slice(0, i);
  }
  return line;
}

function balanced(raw: string): boolean {
  return stripComment(raw).trim().endsWith("]");
}

function splitKey(key: string, where: string): string[] {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(\.|$)/y;
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < key.length && (m = re.exec(key)) !== null) {
    parts.push(m[1] ?? m[2] ?? m[3]!);
    at = re.lastIndex;
    if (m[4] === "") break;
  }
  if (at < key.length || parts.length === 0) throw new KilnError("OPTION_INVALID", `${where}: invalid key "${key}"`);
  return parts;
}

function parseValue(raw: string, where: string): TomlValue {
  if (raw === "true" || raw === "false") return raw === "true";
  if (/^-?\d+$/.test(raw)) return Number(raw);
  const str = /^"((?:[^"\\]|\\.)*)"$|^'([^']*)'$/.exec(raw);
  if (str) return str[2] ?? JSON.parse(`"${str[1]}"`);
  if (raw.startsWith("[") && raw.endsWith("]")) {
    const inner = raw.slice(1, -1).trim();
    if (inner === "") return [];
    const items: string[] = [];
    for (const m of inner.matchAll(/\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')\s*(?:,|$)/g)) items.push(m[2] ?? JSON.parse(`"${m[1]}"`));
    return items;
  }
  throw new KilnError("OPTION_INVALID", `${where}: unsupported value ${raw}`);
}

/**
 * The mirrors a registries.conf (v2: `[[registry]]` with `location`/`prefix` and
 * `[[registry.mirror]]` entries) or buildkitd.toml (`[registry."HOST"] mirrors = [...]`) names.
 */
export function parseRegistriesConf(text: string, file: string): MirrorMap {
  const out = registryEntries(text, file);
  for (const k of Object.keys(out)) if (out[k]!.length === 0) delete out[k];
  return out;
}

/** parseRegistriesConf's entries, a registry named without mirrors too (a drop-in's such entry clears what an earlier file gave it). */
function registryEntries(text: string, file: string): MirrorMap {
  const out: MirrorMap = {};
  let current: string | undefined;
  for (const s of parseToml(text, file)) {
    const path = s.path.join(".");
    if (s.array && path === "registry") {
      const loc = s.values.prefix ?? s.values.location;
      if (typeof loc !== "string") throw new KilnError("OPTION_INVALID", `${file}: a [[registry]] needs location = "HOST"`);
      // what kiln does not do is an error for that registry's pulls, never a registry silently pulled
      // from anyway (and no error for the other registries' pulls: the system's files are read by default)
      const { prefix, location } = s.values;
      current = normalizeRegistry(loc);
      out[current] ??= [];
      if (typeof prefix === "string" && typeof location === "string" && normalizeRegistry(prefix) !== normalizeRegistry(location)) {
        out[current].push({ location: "", refusal: { code: "FEATURE_UNSUPPORTED", message: `${file}: [[registry]] prefix = "${prefix}" with location = "${location}" (a rewrite) is not supported; name the other host in a [[registry.mirror]]` } });
      } else if (s.values.blocked === true) {
        out[current].push({ location: "", refusal: { code: "REGISTRY_BLOCKED", message: `pulls from ${current} are blocked by ${file} ([[registry]] blocked = true)` } });
      }
    } else if (s.array && path === "registry.mirror") {
      if (!current) throw new KilnError("OPTION_INVALID", `${file}: [[registry.mirror]] before any [[registry]]`);
      const loc = s.values.location;
      if (typeof loc !== "string") throw new KilnError("OPTION_INVALID", `${file}: a [[registry.mirror]] needs location = "HOST"`);
      if (s.values["pull-from-mirror"] === "digest-only") continue; // kiln cannot tell which pulls those are: leave it to the origin
      out[current]!.push({ location: checkLocation(loc, file), ...(s.values.insecure === true ? { insecure: true } : {}) });
    } else if (!s.array && s.path.length === 2 && s.path[0] === "registry") {
      // buildkitd.toml
      const host = normalizeRegistry(s.path[1]!);
      const mirrors = s.values.mirrors;
      if (mirrors !== undefined && !Array.isArray(mirrors)) throw new KilnError("OPTION_INVALID", `${file}: mirrors must be a list of hosts`);
      const insecure = s.values.http === true || s.values.insecure === true;
      out[host] = [...(out[host] ?? []), ...(mirrors ?? []).map((m) => ({ location: checkLocation(m, file), ...(insecure ? { insecure: true } : {}) }))];
    }
  }
  return out;
}

function normalizeRegistry(location: string): string {
  const l = location.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "");
  return l === "index.docker.io" || l === "registry-1.docker.io" ? DOCKER_HUB : l;
}

/** Read and parse a registries.conf / buildkitd.toml file (a small file read whole). */
export function readRegistriesConf(file: string): MirrorMap {
  return parseRegistriesConf(readConf(file), file);
}

function readConf(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new KilnError("OPTION_INVALID", `cannot read registries config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Where the default registries.conf files are looked up (injectable: tests never read the machine's). */
export interface RegistriesConfPaths {
  /** The system file: /etc/containers/registries.conf. */
  system: string;
  /** Its drop-in directory: /etc/containers/registries.conf.d. */
  systemDir: string;
  /** The user's home ($HOME), for .config/containers/registries.conf and its .conf.d; none: no user files. */
  home?: string;
}

export function defaultRegistriesConfPaths(env: NodeJS.ProcessEnv = process.env): RegistriesConfPaths {
  const home = env.HOME || safeHomedir();
  return { system: "/etc/containers/registries.conf", systemDir: "/etc/containers/registries.conf.d", ...(home ? { home } : {}) };
}

function safeHomedir(): string | undefined {
  try {
    return homedir() || undefined;
  } catch {
    return undefined;
  }
}

/** Whether `path` is (a symlink to) a regular file; one that cannot even be looked up is not there. */
function isFile(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    return false;
  }
}

/** The `.conf` files directly in `dir` in alpha-numerical (code point) order; none when it does not exist. */
function dropIns(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true }).filter((e) => !e.isDirectory() && e.name.endsWith(".conf")).map((e) => e.name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return [];
    throw new KilnError("OPTION_INVALID", `cannot read registries config directory ${dir}: ${code ?? (err as Error).message}`);
  }
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((n) => join(dir, n)).filter(isFile);
}

/**
 * The registries.conf files a pull reads, in the order later ones override earlier ones: the
 * explicit file alone (`--registries-conf`, else $CONTAINERS_REGISTRIES_CONF); else, as
 * containers-registries.conf(5) and containers-registries.conf.d(5) give, the user's
 * $HOME/.config/containers/registries.conf with only the user's drop-ins when it exists, or the
 * system file (when it exists), the system drop-ins and then the user's.
 */
export function registriesConfFiles(options: { registriesConf?: string }, env: NodeJS.ProcessEnv = process.env, paths: RegistriesConfPaths = defaultRegistriesConfPaths(env)): string[] {
  const file = options.registriesConf ?? (env.CONTAINERS_REGISTRIES_CONF || undefined);
  if (file) return [file];
  const userFile = paths.home ? join(paths.home, ".config/containers/registries.conf") : undefined;
  const userDir = paths.home ? join(paths.home, ".config/containers/registries.conf.d") : undefined;
  if (userFile && isFile(userFile)) return [userFile, ...(userDir ? dropIns(userDir) : [])];
  return [...(isFile(paths.system) ? [paths.system] : []), ...dropIns(paths.systemDir), ...(userDir ? dropIns(userDir) : [])];
}

/**
 * The mirrors of registries.conf files read in order, a later file's [[registry]] replacing an
 * earlier one's for the same registry (containers-registries.conf.d(5): tables with the same prefix
 * are overwritten, new ones added).
 */
export function readRegistriesConfs(files: string[]): MirrorMap {
  const out: MirrorMap = {};
  for (const file of files) Object.assign(out, registryEntries(readConf(file), file));
  for (const k of Object.keys(out)) if (out[k]!.length === 0) delete out[k];
  return out;
}

/** Both sources merged: the file's mirrors first, then `--registry-mirror` ones for docker.io. */
export function mergeMirrors(...maps: MirrorMap[]): MirrorMap {
  const out: MirrorMap = {};
  for (const m of maps) for (const [k, v] of Object.entries(m)) out[k] = [...(out[k] ?? []), ...v];
  return out;
}

/**
 * The endpoints a pull of `registry`/`repository` tries, in order: each mirror (its host and the
 * repository under its prefix), then the origin.
 */
export function pullEndpoints(registry: string, repository: string, mirrors: MirrorMap | undefined): Array<{ registry: string; repository: string; insecure: boolean; mirror: boolean }> {
  const refusal = mirrors?.[registry]?.find((m) => m.refusal)?.refusal;
  if (refusal) throw refusal.code === "REGISTRY_BLOCKED" ? new KilnError("REGISTRY_BLOCKED", refusal.message) : new KilnError("FEATURE_UNSUPPORTED", refusal.message);
  const list = (mirrors?.[registry] ?? []).map((m) => {
    const { host, prefix } = splitMirror(m.location);
    return { registry: host, repository: prefix ? `${prefix}/${repository}` : repository, insecure: m.insecure === true, mirror: true };
  });
  return [...list, { registry, repository, insecure: false, mirror: false }];
}

/**
 * The mirrors of `--registries-conf FILE` (else $CONTAINERS_REGISTRIES_CONF, else the default
 * files, as podman reads them: registriesConfFiles) and `--registry-mirror` values (docker.io's),
 * merged in that order.
 */
export function loadMirrors(options: { registriesConf?: string; registryMirrors?: string[] }, env: NodeJS.ProcessEnv = process.env, paths?: RegistriesConfPaths): MirrorMap | undefined {
  const files = registriesConfFiles(options, env, paths ?? defaultRegistriesConfPaths(env));
  const merged = mergeMirrors(readRegistriesConfs(files), dockerHubMirrors(options.registryMirrors ?? []));
  return Object.keys(merged).length > 0 ? merged : undefined;
}
