// kiln login / logout: verify credentials against the registry, then store them the way Docker
// does (config.json `auths` entry written atomically with mode 0600, or the configured
// credential helper), and remove them again.
import { KilnError, RegistryError } from "../errors.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import { RegistryClient } from "./client.js";
import { drain } from "./response.js";
import { authKey, dockerConfigPath, normalizeAuthKey, readDockerConfig, runCredentialHelper, type DockerConfigFile } from "./credentials.js";
import type { RegistryOptions } from "./options.js";

/** "https://index.docker.io/v1/", "docker.io", "host:5000" -> the registry name used in references. */
function registryName(s: string): string {
  const n = normalizeAuthKey(s);
  if (n.length === 0 || n.includes("/")) throw new KilnError("REFERENCE_INVALID", `invalid registry "${s}"`);
  return n;
}

async function writeConfigAtomic(path: string, cfg: DockerConfigFile): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(cfg, null, "\t")}\n`, { mode: 0o600, mkdirMode: 0o700 });
}

function helperFor(cfg: DockerConfigFile | undefined, registry: string): string | undefined {
  const own = Object.entries(cfg?.credHelpers ?? {}).find(([k]) => normalizeAuthKey(k) === registry)?.[1];
  return own ?? cfg?.credsStore;
}

/** Check `username`/`password` against `registry`, then save them. */
export async function login(registry: string, username: string, password: string, options: RegistryOptions = {}): Promise<void> {
  const name = registryName(registry);
  if (username.length === 0) throw new KilnError("OPTION_INVALID", "login: username is empty");
  const client = new RegistryClient(name, options);
  client.setCredentials({ username, password });
  try {
    const res = await client.request({ method: "GET", url: "/v2/", scopes: [] });
    if (res.status === 401) {
      await drain(res);
      throw new RegistryError("REGISTRY_DENIED", `login to ${name} failed: invalid username or password`, { status: 401, registry: name, repository: "", codes: [] });
    }
    await client.expect(res, [200], "login");
    await drain(res);
  } finally {
    await client.close();
  }
  const path = dockerConfigPath(options);
  const cfg: DockerConfigFile = (await readDockerConfig(path)) ?? {};
  const helper = helperFor(cfg, name);
  if (helper) {
    await runCredentialHelper(helper, "store", JSON.stringify({ ServerURL: authKey(name), Username: username, Secret: password }));
    cfg.auths = { ...(cfg.auths ?? {}) };
    for (const k of Object.keys(cfg.auths)) if (normalizeAuthKey(k) === name) delete cfg.auths[k];
    cfg.auths[authKey(name)] = {};
  } else {
    cfg.auths = { ...(cfg.auths ?? {}) };
    for (const k of Object.keys(cfg.auths)) if (normalizeAuthKey(k) === name) delete cfg.auths[k];
    cfg.auths[authKey(name)] = { auth: Buffer.from(`${username}:${password}`).toString("base64") };
  }
  await writeConfigAtomic(path, cfg);
}

/** Forget the credentials stored for `registry` (no error when there were none). */
export async function logout(registry: string, options: RegistryOptions = {}): Promise<void> {
  const name = registryName(registry);
  const path = dockerConfigPath(options);
  const cfg = await readDockerConfig(path);
  if (!cfg) return;
  const helper = helperFor(cfg, name);
  if (helper) {
    try {
      await runCredentialHelper(helper, "erase", authKey(name));
    } catch (err) {
      if (!(err instanceof KilnError && err.code === "CREDENTIALS_NOT_FOUND")) throw err;
    }
  }
  if (cfg.auths) {
    let changed = false;
    for (const k of Object.keys(cfg.auths)) {
      if (normalizeAuthKey(k) === name) {
        delete cfg.auths[k];
        changed = true;
      }
    }
    if (changed) await writeConfigAtomic(path, cfg);
  }
}
