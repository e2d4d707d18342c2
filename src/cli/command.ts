// What every kiln subcommand is (summary, usage, options, run) and the option groups several
// commands share: `--cache-dir`, the registry flags (and their RegistryOptions), `--pull`.
import { UsageError } from "../errors.js";
import { parseRegistryTimeout, type RegistryTimeouts } from "../registry/timeouts.js";
import { many, one, type OptionSpec, type ParsedArgs } from "./args.js";

export interface Command {
  summary: string;
  usage: string;
  options: OptionSpec[];
  /** false: options end at the first positional (the rest belongs to the command run, as with docker run). */
  interspersed?: boolean;
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
];

/** `--insecure-registry`, `--registry-ca` and `--registry-timeout`, as registry options. */
export function registryFrom(args: ParsedArgs): { insecureRegistries: string[]; caFile?: string; timeouts?: RegistryTimeouts } {
  const ca = one(args, "registry-ca");
  const timeout = one(args, "registry-timeout");
  return { insecureRegistries: many(args, "insecure-registry"), ...(ca ? { caFile: ca } : {}), ...(timeout !== undefined ? { timeouts: parseRegistryTimeout(timeout) } : {}) };
}

export const pullOption: OptionSpec = { name: "pull", type: "string", valueName: "POLICY", help: "registry images: always, missing or never (default missing)" };

export function pullPolicy(args: ParsedArgs): "always" | "missing" | "never" {
  const pull = one(args, "pull") ?? "missing";
  if (pull !== "always" && pull !== "missing" && pull !== "never") throw new UsageError("OPTION_INVALID", "--pull must be always, missing or never");
  return pull;
}
