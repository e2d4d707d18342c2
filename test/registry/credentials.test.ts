// Credentials as Docker and podman store them: config.json auths (host or URL keys, Docker Hub's
// key), identity tokens, credHelpers before credsStore (real helper executables), auth.json.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveCredentials } from "../../src/registry/credentials.js";
import { login, logout } from "../../src/registry/login.js";
import { startFakeRegistry } from "./fake-registry.js";
import { KilnError } from "../../src/errors.js";
import { tempDir } from "./harness.js";

const b64 = (s: string): string => Buffer.from(s).toString("base64");

let root: string;
let binDir: string;
const savedEnv = { ...process.env };

/** A docker-credential-NAME script answering `get` from a fixed table and logging its calls. */
async function helper(name: string, table: Record<string, { Username: string; Secret: string }>): Promise<string> {
  const log = join(root, `${name}.log`);
  const script = `#!/bin/sh
read -r url
echo "$1 $url" >> ${log}
case "$1" in
  get)
    case "$url" in
${Object.entries(table).map(([k, v]) => `      "${k}") echo '${JSON.stringify({ ServerURL: k, ...v })}' ;;`).join("\n")}
      *) echo "credentials not found in native keychain"; exit 1 ;;
    esac ;;
  *) exit 0 ;;
esac
`;
  const p = join(binDir, `docker-credential-${name}`);
  await writeFile(p, script);
  await chmod(p, 0o755);
  return log;
}

beforeAll(async () => {
  root = tempDir("kiln-creds-");
  binDir = join(root, "bin");
  await mkdir(binDir);
  process.env.PATH = `${binDir}:${process.env.PATH}`;
  delete process.env.REGISTRY_AUTH_FILE;
  delete process.env.DOCKER_CONFIG;
  process.env.XDG_RUNTIME_DIR = join(root, "run");
});

afterAll(async () => {
  process.env = savedEnv;
  await rm(root, { recursive: true, force: true });
});

async function config(obj: unknown): Promise<string> {
  const dir = tempDir("kiln-dcfg-");
  await writeFile(join(dir, "config.json"), JSON.stringify(obj));
  return dir;
}

describe("docker config.json", () => {
  it("reads auths keyed by host or URL, Docker Hub's v1 key, and identity tokens", async () => {
    const dir = await config({
      auths: {
        "https://index.docker.io/v1/": { auth: b64("hubuser:hubpass") },
        "https://reg.example:5000": { auth: b64("u1:p:with:colons") },
        "tok.example": { auth: b64("<token>:"), identitytoken: "refresh-1" },
      },
    });
    const o = { dockerConfig: dir };
    expect(await resolveCredentials("docker.io", o)).toEqual({ username: "hubuser", password: "hubpass" });
    expect(await resolveCredentials("reg.example:5000", o)).toEqual({ username: "u1", password: "p:with:colons" });
    expect(await resolveCredentials("tok.example", o)).toEqual({ username: "<token>", password: "", identityToken: "refresh-1" });
    // only for the registry they belong to
    expect(await resolveCredentials("reg.example", o)).toBeUndefined();
    expect(await resolveCredentials("evil.example", o)).toBeUndefined();
    await rm(dir, { recursive: true, force: true });
  });

  it("uses DOCKER_CONFIG when no option is given, and rejects a broken auth value in one line", async () => {
    const dir = await config({ auths: { "env.example": { auth: b64("e:f") }, "bad.example": { auth: b64("nocolon") } } });
    process.env.DOCKER_CONFIG = dir;
    try {
      expect(await resolveCredentials("env.example", {})).toEqual({ username: "e", password: "f" });
      const err = await resolveCredentials("bad.example", {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as Error).message).toMatch(/invalid "auth" value in .*config\.json/);
    } finally {
      delete process.env.DOCKER_CONFIG;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("asks credHelpers before credsStore, with the server URL on stdin", async () => {
    const perLog = await helper("per", { "ghcr.io": { Username: "gh", Secret: "ghs" } });
    const storeLog = await helper("store", {
      "https://index.docker.io/v1/": { Username: "<token>", Secret: "hub-refresh" },
      "other.example": { Username: "o", Secret: "os" },
    });
    const dir = await config({ credHelpers: { "ghcr.io": "per" }, credsStore: "store", auths: { "plain.example": { auth: b64("a:b") } } });
    const o = { dockerConfig: dir };
    expect(await resolveCredentials("ghcr.io", o)).toEqual({ username: "gh", password: "ghs" });
    expect(await resolveCredentials("docker.io", o)).toEqual({ identityToken: "hub-refresh" });
    expect(await resolveCredentials("other.example", o)).toEqual({ username: "o", password: "os" });
    // the store has nothing for it: fall back to auths
    expect(await resolveCredentials("plain.example", o)).toEqual({ username: "a", password: "b" });
    expect(await readFile(perLog, "utf8")).toBe("get ghcr.io\n");
    expect(await readFile(storeLog, "utf8")).toContain("get https://index.docker.io/v1/\n");
    expect(await readFile(storeLog, "utf8")).not.toContain("ghcr.io");
    await rm(dir, { recursive: true, force: true });
  });

  it("reports a missing helper in one line", async () => {
    const dir = await config({ credsStore: "does-not-exist" });
    const err = await resolveCredentials("x.example", { dockerConfig: dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as Error).message).toMatch(/^credential helper docker-credential-does-not-exist failed to start/);
    await rm(dir, { recursive: true, force: true });
  });
});

describe("containers auth.json", () => {
  it("reads REGISTRY_AUTH_FILE (with repository-scoped keys) and $XDG_RUNTIME_DIR/containers/auth.json", async () => {
    const file = join(root, "auth.json");
    await writeFile(file, JSON.stringify({
      auths: {
        "quay.example": { auth: b64("all:repos") },
        "quay.example/team": { auth: b64("team:only") },
      },
    }));
    process.env.REGISTRY_AUTH_FILE = file;
    try {
      const none = { dockerConfig: join(root, "missing") };
      expect(await resolveCredentials("quay.example", none, "team/app")).toEqual({ username: "team", password: "only" });
      expect(await resolveCredentials("quay.example", none, "teamx/app")).toEqual({ username: "all", password: "repos" });
    } finally {
      delete process.env.REGISTRY_AUTH_FILE;
    }
    await mkdir(join(root, "run", "containers"), { recursive: true });
    await writeFile(join(root, "run", "containers", "auth.json"), JSON.stringify({ auths: { "podman.example": { auth: b64("pod:man") } } }));
    expect(await resolveCredentials("podman.example", { dockerConfig: join(root, "missing") })).toEqual({ username: "pod", password: "man" });
    expect(await resolveCredentials("podman.example", { authFile: file })).toEqual({ username: "pod", password: "man" });
  });
});

describe("login with a credential store", () => {
  it("verifies against the registry, then hands the secret to docker-credential-NAME store", async () => {
    const reg = await startFakeRegistry({ basic: { user: "lu", password: "lp" } });
    const log = await helper("rec", {});
    const dir = await config({ credsStore: "rec" });
    try {
      const bad = await login(reg.host, "lu", "nope", { dockerConfig: dir }).catch((e: unknown) => e);
      expect((bad as Error).message).toBe(`login to ${reg.host} failed: invalid username or password`);
      expect(bad).toMatchObject({ name: "RegistryError", code: "REGISTRY_DENIED", status: 401, registry: reg.host });
      await login(reg.host, "lu", "lp", { dockerConfig: dir });
      expect(await readFile(log, "utf8")).toContain(`store {"ServerURL":"${reg.host}","Username":"lu","Secret":"lp"}`);
      const cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as { auths: Record<string, unknown>; credsStore: string };
      expect(cfg.auths[reg.host]).toEqual({});
      expect(cfg.credsStore).toBe("rec");
      await logout(reg.host, { dockerConfig: dir });
      expect(await readFile(log, "utf8")).toContain(`erase ${reg.host}`);
      const after = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as { auths: Record<string, unknown> };
      expect(after.auths[reg.host]).toBeUndefined();
    } finally {
      await reg.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
