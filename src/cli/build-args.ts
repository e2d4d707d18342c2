// `kiln build`'s command line turned into BuildOptions (all but the listener and the signal) and
// checked as far as the command line alone allows, without doing any work: every value the build
// would refuse for its spelling (outputs, secrets, modes, numbers, named contexts, cache specs,
// registry time limits) is a UsageError here. `kiln build` runs what this returns; examples and
// CI files are checked with it (checkCommandLine in main.ts).
import { UsageError } from "../errors.js";
import { parseNamedContext, parseOutput, parseSecret, type BuildOptions, type Isolation, type OutputSpec } from "../engine/options.js";
import { attestRequest, wantsAttestations } from "../attest/request.js";
import { parseCacheSpec } from "../cache/spec.js";
import { checkAttestationOutputs } from "../output/spec.js";
import type { Snapshotter } from "../snapshot/rootfs.js";
import { parseRegistryTimeout } from "../registry/timeouts.js";
import { parseTargetPlatforms } from "../image/platform.js";
import { ISOLATIONS } from "../run/index.js";
import { intOption, keyValues, many, one, parseCsv, type ParsedArgs } from "./args.js";
import type { ProgressMode } from "./progress.js";

export interface BuildRequest {
  options: Omit<BuildOptions, "onEvent" | "signal">;
  progress: ProgressMode;
}

function choice<T extends string>(args: ParsedArgs, name: string, allowed: readonly T[], dflt: T): T {
  const v = (one(args, name) ?? dflt) as T;
  if (!allowed.includes(v)) throw new UsageError("USAGE", `--${name} must be ${allowed.length > 3 ? "one of " : ""}${allowed.slice(0, -1).join(", ")} or ${allowed[allowed.length - 1]}`);
  return v;
}

/** The build `kiln build ARGS` asks for; throws a UsageError for anything misspelt. */
export function buildRequest(args: ParsedArgs): BuildRequest {
  if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln build: expected exactly one CONTEXT argument (see: kiln help build)");
  const context = args.positionals[0]!;
  const outputs: OutputSpec[] = many(args, "output").map((o) => parseOutput(parseCsv(o, "output"), o));
  if (args.flags.has("push")) outputs.push({ type: "image", names: [], push: true });
  const progress = choice(args, "progress", ["auto", "plain", "quiet"] as const, "auto");
  const format = choice(args, "format", ["oci", "docker"] as const, "oci");
  const isolation = (one(args, "isolation") ?? "auto") as Isolation;
  if (!ISOLATIONS.includes(isolation)) throw new UsageError("USAGE", `--isolation must be one of ${ISOLATIONS.join(", ")}`);
  const snapshotter = choice(args, "snapshotter", ["auto", "overlay", "dir"] as const, "auto") as Snapshotter;
  const network = choice(args, "network", ["host", "none"] as const, "host");
  const pull = choice(args, "pull", ["always", "missing", "never"] as const, "missing");
  const jobs = intOption(args, "jobs", 1, 1024);
  const level = intOption(args, "compression-level", 0, 9);
  const dockerfile = one(args, "file");
  const timeout = one(args, "registry-timeout");
  const buildContexts = keyValues(many(args, "build-context"), "build-context");
  for (const [name, value] of Object.entries(buildContexts)) parseNamedContext(name, value);
  const platform = one(args, "platform");
  if (platform !== undefined) {
    const platforms = parseTargetPlatforms(platform);
    if (platforms.length > 1 && outputs.some((o) => o.type === "docker")) {
      throw new UsageError("OPTION_INVALID", `--output type=docker takes one platform, not ${platforms.length} (${platform}); use type=oci for an image index`);
    }
  }
  const cacheFrom = many(args, "cache-from");
  const cacheTo = many(args, "cache-to");
  for (const s of cacheFrom) parseCacheSpec(s, "from");
  for (const s of cacheTo) parseCacheSpec(s, "to");
  const attest = attestRequest(one(args, "provenance"), one(args, "sbom"), many(args, "attest"));
  if (wantsAttestations(attest)) {
    checkAttestationOutputs(outputs);
    if (format === "docker") throw new UsageError("OPTION_INVALID", "--format docker cannot carry attestations (--provenance/--sbom/--attest need an OCI index): use --format oci");
  }
  const options: BuildRequest["options"] = {
    context,
    ...(dockerfile !== undefined ? { dockerfile } : {}),
    tags: many(args, "tag"),
    ...(args.flags.has("load") ? { load: true } : {}),
    buildArgs: keyValues(many(args, "build-arg"), "build-arg", (k) => process.env[k]),
    ...(one(args, "target") ? { target: one(args, "target")! } : {}),
    ...(one(args, "platform") ? { platform: one(args, "platform")! } : {}),
    labels: keyValues(many(args, "label"), "label"),
    annotations: keyValues(many(args, "annotation"), "annotation"),
    buildContexts,
    outputs,
    format,
    ...(one(args, "iidfile") ? { iidfile: one(args, "iidfile")! } : {}),
    ...(one(args, "metadata-file") ? { metadataFile: one(args, "metadata-file")! } : {}),
    ...(one(args, "cache-dir") ? { cacheDir: one(args, "cache-dir")! } : {}),
    isolation,
    snapshotter,
    network,
    addHosts: many(args, "add-host"),
    ...(jobs !== undefined ? { jobs } : {}),
    ...(level !== undefined ? { compressionLevel: level } : {}),
    pull,
    secrets: Object.fromEntries(many(args, "secret").map((v) => parseSecret(v, parseCsv(v, "secret")))),
    noCache: args.flags.has("no-cache"),
    noCacheFilter: many(args, "no-cache-filter"),
    cacheFrom,
    cacheTo,
    insecureRegistries: many(args, "insecure-registry"),
    ...(one(args, "registry-ca") ? { registryCa: one(args, "registry-ca")! } : {}),
    ...(timeout !== undefined ? { registryTimeouts: parseRegistryTimeout(timeout) } : {}),
    ...(wantsAttestations(attest) ? { attest } : {}),
  };
  return { options, progress };
}
