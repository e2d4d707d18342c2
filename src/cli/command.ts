// What every kiln subcommand is (summary, usage, options, run) and the option groups several
// commands share: `--cache-dir`, the registry flags (and their RegistryOptions, with `--creds`), `--pull`.
import { UsageError } from "../errors.js";
import { parseRegistryTimeout } from "../registry/timeouts.js";
import type { RegistryOptions } from "../registry/options.js";
import { loadMirrors } from "../registry/mirrors.js";
import { many, one, type OptionSpec, type ParsedArgs } from "./args.js";
import { parseReference } from "../image/reference.js";

export interface Command {
  summary: string;
  usage: string;
  options: OptionSpec[];
  /** false: options end at the first positional (the rest belongs to the command run, as with docker run). */
  interspersed?: boolean;
  /** Options kiln does not have, each with the one line that says what to use instead (exit 2). */
  hints?: Readonly<Record<string, string>>;
  run(args: ParsedArgs): Promise<number>;
}

/** `--cache-dir`: the blob store (and, for build, the work directory). */
export function cacheDirOption(what = "blob store"): OptionSpec {
  return { name: "cache-dir", type: "string", valueName: "DIR", help: `${what} (default $XDG_CACHE_HOME/kiln)` };
}

export const registryOptions: OptionSpec[] = [
  { name: "insecure-registry", type: "string", repeatable: true, valueName: "HOST", help: "use plain HTTP for this registry host[:port]" },
  { name: "registry-ca", type: "string", valueName: "FILE", help: "extra CA bundle (PEM) for registry TLS" },
  { name: "registry-timeout", type: "string", valueName: "SPEC", help: "registry time limits: idle DURATION, or connect=D,idle=D,total=D (default 30s/30s/1h)" },
  { name: "registry-mirror", type: "string", repeatable: true, valueName: "HOST[/PATH]", help: "pull docker.io images through this mirror first (repeatable, tried in order; then docker.io)" },
  { name: "registries-conf", type: "string", valueName: "FILE", help: "registries.conf ([[registry]] mirrors) or buildkitd.toml ([registry.\"HOST\"] mirrors) for pulls (default $CONTAINERS_REGISTRIES_CONF, else ~/.config/containers/registries.conf or /etc/containers/registries.conf and its .conf.d)" },
];

/** podman/buildah's `--creds USER:PASS` and `--authfile FILE` (kiln push, kiln pull). */
export const credentialOptions: OptionSpec[] = [
  { name: "creds", type: "string", valueName: "USER:PASS", help: "credentials for the registry of the references given (podman/buildah)" },
  { name: "authfile", type: "string", valueName: "FILE", help: "a containers auth.json, read before Docker's config" },
];

/**
 * `--insecure-registry`, `--registry-ca` and `--registry-timeout` (and, for commands with
 * credentialOptions, `--authfile` and `--creds` for the registries of `refs`), as registry options;
 * registry warnings (a failed pull mirror) go to stderr as `WARNING: ...`.
 */
export function registryFrom(args: ParsedArgs, refs: string[] = []): Pick<RegistryOptions, "insecureRegistries" | "caFile" | "timeouts" | "authFile" | "credentials" | "mirrors" | "onWarning"> {
  const ca = one(args, "registry-ca");
  const timeout = one(args, "registry-timeout");
  const authFile = one(args, "authfile");
  const credentials = credentialsOption(args, refs.flatMap(registryOf));
  const conf = one(args, "registries-conf");
  const mirrors = loadMirrors({ ...(conf ? { registriesConf: conf } : {}), registryMirrors: many(args, "registry-mirror") });
  return {
    ...(mirrors ? { mirrors } : {}),
    insecureRegistries: many(args, "insecure-registry"),
    ...(ca ? { caFile: ca } : {}),
    ...(timeout !== undefined ? { timeouts: parseRegistryTimeout(timeout) } : {}),
    ...(authFile ? { authFile } : {}),
    ...(credentials ? { credentials } : {}),
    // on stderr as a build's warnings are printed, --quiet too
    onWarning: (message) => process.stderr.write(`WARNING: ${message}\n`),
  };
}

export const pullOption: OptionSpec = { name: "pull", type: "string", valueName: "POLICY", help: "registry images: always, missing or never (default missing)" };

export function pullPolicy(args: ParsedArgs): "always" | "missing" | "never" {
  const pull = one(args, "pull") ?? "missing";
  if (pull !== "always" && pull !== "missing" && pull !== "never") throw new UsageError("OPTION_INVALID", "--pull must be always, missing or never");
  return pull;
}

/** The registry host of a reference ("docker.io" for Docker Hub names); none for what is not one (a layout path). */
export function registryOf(ref: string): string[] {
  try {
    return [parseReference(ref).registry];
  } catch {
    return [];
  }
}

/** `--creds USER:PASS` (podman/buildah), given to `registries` only. */
export function credentialsOption(args: ParsedArgs, registries: string[]): { username: string; password: string; registries: string[] } | undefined {
  const creds = one(args, "creds");
  if (creds === undefined) return undefined;
  const colon = creds.indexOf(":");
  if (colon <= 0) throw new UsageError("OPTION_INVALID", "--creds: expected USER:PASSWORD");
  if (registries.length === 0) throw new UsageError("USAGE", "--creds: kiln gives them only to the registries of the image names (-t, --destination, REF), and none is given");
  return { username: creds.slice(0, colon), password: creds.slice(colon + 1), registries: [...new Set(registries)] };
}
