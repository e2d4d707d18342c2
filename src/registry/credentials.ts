// Registry credentials, read the way Docker and podman read them: config.json `auths`
// (base64 `auth`, `identitytoken`), `credHelpers` before `credsStore` (docker-credential-NAME),
// and containers' auth.json. Credentials are only ever returned for the registry they belong to.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { DOCKER_HUB } from "../image/reference.js";
import type { RegistryOptions } from "./options.js";

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (Docker's `identitytoken`). */
  identityToken?: string;
}

/** Docker's config.json key for Docker Hub. */
export const DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/";

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

export interface DockerConfigFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [key: string]: unknown;
}

/** The path of Docker's config.json for these options. */
export function dockerConfigPath(options: Pick<RegistryOptions, "dockerConfig">): string {
  const explicit = options.dockerConfig;
  if (explicit !== undefined && explicit.endsWith(".json")) return explicit;
  const dir = explicit ?? (process.env.DOCKER_CONFIG && process.env.DOCKER_CONFIG.length > 0
    ? process.env.DOCKER_CONFIG
    : join(homedir(), ".docker"));
  return join(dir, "config.json");
}

/** The key Docker stores a registry's credentials under. */
export function authKey(registry: string): string {
  return isDockerHub(registry) ? DOCKER_HUB_AUTH_KEY : registry;
}

function isDockerHub(registry: string): boolean {
  return registry === DOCKER_HUB || registry === "index.docker.io" || registry === "registry-1.docker.io";
}

/** Normalise a config key ("https://host:5000/v1/", "host") to "host[:port]" plus optional path. */
export function normalizeAuthKey(key: string): string {
  let k = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  k = k.replace(/\/+$/, "");
  // Docker accepts keys with an API path ("host/v1", "host/v2"); they name the host.
  k = k.replace(/\/v[12]$/, "");
  if (k === "index.docker.io" || k === "registry-1.docker.io" || k === "index.docker.io/v1") return DOCKER_HUB;
  return k;
}

async function readJSONFile<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new KilnError("CREDENTIALS_INVALID", `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new KilnError("CREDENTIALS_INVALID", `invalid JSON in ${path}`);
  }
}

export async function readDockerConfig(path: string): Promise<DockerConfigFile | undefined> {
  return readJSONFile<DockerConfigFile>(path);
}

function entryToCredentials(e: AuthEntry, where: string): Credentials | undefined {
  const c: Credentials = {};
  if (e.auth) {
    const decoded = Buffer.from(e.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon === -1) throw new KilnError("CREDENTIALS_INVALID", `invalid "auth" value in ${where}: expected base64 of user:password`);
    c.username = decoded.slice(0, colon);
    c.password = decoded.slice(colon + 1);
  } else if (e.username !== undefined || e.password !== undefined) {
    c.username = e.username;
    c.password = e.password;
  }
  if (e.identitytoken) c.identityToken = e.identitytoken;
  return c.username !== undefined || c.identityToken !== undefined ? c : undefined;
}

/** Find the entry for `registry` (and optionally a repository, for auth.json's scoped keys). */
function findEntry(auths: Record<string, AuthEntry> | undefined, registry: string, repository?: string): AuthEntry | undefined {
  if (!auths) return undefined;
  const host = isDockerHub(registry) ? DOCKER_HUB : registry;
  let best: { len: number; entry: AuthEntry } | undefined;
  for (const [key, entry] of Object.entries(auths)) {
    const k = normalizeAuthKey(key);
    const slash = k.indexOf("/");
    const kHost = slash === -1 ? k : k.slice(0, slash);
    const kPath = slash === -1 ? "" : k.slice(slash + 1);
    if (kHost !== host) continue;
    if (kPath !== "") {
      // repository-scoped key (containers auth.json): must be a path prefix of the repository
      if (repository === undefined) continue;
      if (repository !== kPath && !repository.startsWith(`${kPath}/`)) continue;
    }
    if (!best || kPath.length + 1 > best.len) best = { len: kPath.length + 1, entry };
  }
  return best?.entry;
}

/** Run `docker-credential-NAME <action>` with `input` on stdin. */
export function runCredentialHelper(helper: string, action: "get" | "store" | "erase", input: string): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(helper)) return Promise.reject(new KilnError("CREDENTIAL_HELPER_FAILED", `invalid credential helper name "${helper}"`));
  const bin = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [action], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => errOut.push(b));
    child.on("error", (err) => reject(new KilnError("CREDENTIAL_HELPER_FAILED", `credential helper ${bin} failed to start: ${err.message}`)));
    child.on("close", (code) => {
      const stdout = Buffer.concat(out).toString("utf8");
      if (code === 0) resolve(stdout);
      else {
        const msg = (stdout.trim() || Buffer.concat(errOut).toString("utf8").trim()).split("\n")[0];
        // the helper protocol's answer for a server it holds nothing for ("credentials not found in native keychain")
        const code = msg !== undefined && /credentials not found/i.test(msg) ? "CREDENTIALS_NOT_FOUND" : "CREDENTIAL_HELPER_FAILED";
        reject(new KilnError(code, `credential helper ${bin} ${action}: ${msg || `exit code ${code}`}`));
      }
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(input);
  });
}

async function fromHelper(helper: string, registry: string): Promise<Credentials | undefined> {
  const serverURL = authKey(registry);
  let out: string;
  try {
    out = await runCredentialHelper(helper, "get", serverURL);
  } catch (err) {
    if (err instanceof KilnError && err.code === "CREDENTIALS_NOT_FOUND") return undefined;
    throw err;
  }
  let parsed: { Username?: string; Secret?: string };
  try {
    parsed = JSON.parse(out) as { Username?: string; Secret?: string };
  } catch {
    throw new KilnError("CREDENTIAL_HELPER_FAILED", `credential helper docker-credential-${helper} returned invalid JSON`);
  }
  if (!parsed.Secret) return undefined;
  if (parsed.Username === "<token>") return { identityToken: parsed.Secret };
  return { username: parsed.Username ?? "", password: parsed.Secret };
}

function podmanAuthFiles(options: RegistryOptions): string[] {
  const files: string[] = [];
  if (options.authFile) files.push(options.authFile);
  else if (process.env.REGISTRY_AUTH_FILE) files.push(process.env.REGISTRY_AUTH_FILE);
  return files;
}

function podmanDefaultAuthFile(): string | undefined {
  const xdg = process.env.XDG_RUNTIME_DIR;
  return xdg ? join(xdg, "containers", "auth.json") : undefined;
}

/**
 * Credentials for `registry` (as written in references: "docker.io", "host:5000"), or undefined.
 * Order: `--creds` (for the registries it names), explicit auth.json (authFile / REGISTRY_AUTH_FILE), Docker's config (credHelpers, then
 * credsStore, then auths), then podman's default $XDG_RUNTIME_DIR/containers/auth.json.
 */
export async function resolveCredentials(registry: string, options: RegistryOptions, repository?: string): Promise<Credentials | undefined> {
  const given = options.credentials;
  if (given && given.registries.some((r) => normalizeAuthKey(r) === normalizeAuthKey(registry))) return { username: given.username, password: given.password };
  for (const f of podmanAuthFiles(options)) {
    const cfg = await readJSONFile<DockerConfigFile>(f);
    const e = findEntry(cfg?.auths, registry, repository);
    const c = e && entryToCredentials(e, f);
    if (c) return c;
  }
  const cfgPath = dockerConfigPath(options);
  const cfg = await readDockerConfig(cfgPath);
  if (cfg) {
    const hostKey = isDockerHub(registry) ? DOCKER_HUB : registry;
    const helper = Object.entries(cfg.credHelpers ?? {}).find(([k]) => normalizeAuthKey(k) === hostKey)?.[1];
    if (helper) {
      const c = await fromHelper(helper, registry);
      if (c) return c;
    } else if (cfg.credsStore) {
      const c = await fromHelper(cfg.credsStore, registry);
      if (c) return c;
    }
    const e = findEntry(cfg.auths, registry, repository);
    const c = e && entryToCredentials(e, cfgPath);
    if (c) return c;
  }
  const podman = podmanDefaultAuthFile();
  if (podman) {
    const pcfg = await readJSONFile<DockerConfigFile>(podman);
    const e = findEntry(pcfg?.auths, registry, repository);
    const c = e && entryToCredentials(e, podman);
    if (c) return c;
  }
  return undefined;
}
