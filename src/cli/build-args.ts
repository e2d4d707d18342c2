// `kiln build`'s command line turned into BuildOptions (all but the listener and the signal) and
// checked as far as the command line alone allows, without doing any work: every value the build
// would refuse for its spelling (outputs, secrets, modes, numbers, named contexts, cache specs,
// registry time limits) is a UsageError here. `kiln build` runs what this returns; examples and
// CI files are checked with it (checkCommandLine in main.ts).
import { UsageError } from "../errors.js";
import { isGitUrl, parseGitUrl } from "../context/git-url.js";
import { parseNamedContext, parseOutput, parseSecret, type BuildOptions, type Isolation, type OutputSpec } from "../engine/options.js";
import { attestRequest, checkReferrers, effectiveAttestations, wantsAttestations } from "../attest/request.js";
import { parseCacheSpec } from "../cache/spec.js";
import { checkAttestationOutputs } from "../output/spec.js";
import { outputCompression } from "../output/write.js";
import type { Snapshotter } from "../snapshot/rootfs.js";
import { parseRegistryTimeout } from "../registry/timeouts.js";
import { parseTargetPlatforms } from "../image/platform.js";
import { ISOLATIONS } from "../run/index.js";
import { parseSshSpec } from "../run/ssh-agent.js";
import { intOption, keyValues, many, one, parseCsv, type ParsedArgs } from "./args.js";
import { checkEntitlements, kanikoSettings } from "./compat-flags.js";
import { credentialsOption, registryOf } from "./command.js";
import { parseShmSize, parseUlimit } from "../run/limits.js";
import { dockerHubMirrors } from "../registry/mirrors.js";
import { PROGRESS_MODES, type ProgressMode } from "./progress.js";

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
  const kaniko = kanikoSettings(args);
  if (kaniko.context === undefined && args.positionals.length !== 1) throw new UsageError("USAGE", "kiln build: expected exactly one CONTEXT argument (see: kiln help build)");
  if (kaniko.context !== undefined && args.positionals.length > 0) throw new UsageError("USAGE", "kiln build: expected exactly one CONTEXT argument (see: kiln help build)");
  const context = kaniko.context ?? args.positionals[0]!;
  if (isGitUrl(context)) parseGitUrl(context); // a malformed git URL fails before any work
  const outputs: OutputSpec[] = many(args, "output").map((o) => parseOutput(parseCsv(o, "output"), o));
  if (args.flags.has("push") || kaniko.push) outputs.push({ type: "image", names: [], push: true });
  const quiet = args.flags.has("quiet");
  if (quiet && one(args, "progress") !== undefined && one(args, "progress") !== "quiet") throw new UsageError("USAGE", "kiln build: -q/--quiet and --progress given both");
  const progress = quiet ? "quiet" : choice(args, "progress", PROGRESS_MODES, "auto");
  const format = choice(args, "format", ["oci", "docker"] as const, "oci");
  outputCompression(outputs, format);
  const isolation = (one(args, "isolation") ?? "auto") as Isolation;
  if (!ISOLATIONS.includes(isolation)) throw new UsageError("USAGE", `--isolation must be one of ${ISOLATIONS.join(", ")}`);
  const snapshotter = choice(args, "snapshotter", ["auto", "overlay", "dir"] as const, "auto") as Snapshotter;
  const network = choice(args, "network", ["host", "none"] as const, "host");
  // buildx's `--pull` alone (or =true) means always; =false is the default
  const pullValue = one(args, "pull");
  if (pullValue === "true" || pullValue === "false") args.options.set("pull", [pullValue === "true" ? "always" : "missing"]);
  const pull = choice(args, "pull", ["always", "missing", "never"] as const, "missing");
  const jobs = intOption(args, "jobs", 1, 1024);
  const level = intOption(args, "compression-level", 0, 9);
  const dockerfile = one(args, "file") ?? kaniko.dockerfile;
  const ulimits = many(args, "ulimit").map(parseUlimit);
  const shm = one(args, "shm-size");
  const shmSize = shm !== undefined ? parseShmSize(shm) : undefined;
  checkEntitlements(many(args, "allow"));
  for (const m of many(args, "registry-mirror")) dockerHubMirrors([m]);
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
  const cacheFrom = [...many(args, "cache-from"), ...kaniko.cacheFrom];
  const cacheTo = [...many(args, "cache-to"), ...kaniko.cacheTo];
  const tags = [...many(args, "tag"), ...kaniko.tags];
  const iidfile = one(args, "iidfile") ?? kaniko.iidfile;
  for (const s of cacheFrom) parseCacheSpec(s, "from");
  for (const s of cacheTo) parseCacheSpec(s, "to");
  const attest = attestRequest(one(args, "provenance"), one(args, "sbom"), many(args, "attest"));
  if (args.flags.has("attest-referrers")) attest.referrers = true;
  if (wantsAttestations(attest)) {
    checkAttestationOutputs(outputs);
    if (format === "docker") throw new UsageError("OPTION_INVALID", "--format docker cannot carry attestations (--provenance/--sbom/--attest need an OCI index): use --format oci");
  }
  // --creds goes only to the registries the build pushes to or caches in (and pulls from there)
  const named = [...tags, ...outputs.flatMap((o) => (o.type === "image" ? o.names : [])), ...cacheFrom.flatMap((c) => cacheRef(c, "from")), ...cacheTo.flatMap((c) => cacheRef(c, "to"))];
  const credentials = credentialsOption(args, named.flatMap(registryOf));
  checkReferrers(effectiveAttestations(attest, outputs, format) ?? attest, outputs);
  const options: BuildRequest["options"] = {
    context,
    ...(dockerfile !== undefined ? { dockerfile } : {}),
    tags,
    ...(args.flags.has("load") ? { load: true } : {}),
    buildArgs: keyValues(many(args, "build-arg"), "build-arg", (k) => process.env[k]),
    ...(one(args, "target") ? { target: one(args, "target")! } : {}),
    ...(one(args, "platform") ? { platform: one(args, "platform")! } : {}),
    labels: keyValues(many(args, "label"), "label"),
    annotations: keyValues(many(args, "annotation"), "annotation"),
    buildContexts,
    outputs,
    format,
    ...(iidfile ? { iidfile } : {}),
    ...(one(args, "metadata-file") ? { metadataFile: one(args, "metadata-file")! } : {}),
    ...(one(args, "cache-dir") ? { cacheDir: one(args, "cache-dir")! } : {}),
    isolation,
    snapshotter,
    network,
    ...(ulimits.length > 0 ? { ulimits } : {}),
    ...(shmSize !== undefined ? { shmSize } : {}),
    addHosts: many(args, "add-host"),
    ...(jobs !== undefined ? { jobs } : {}),
    ...(level !== undefined ? { compressionLevel: level } : {}),
    pull,
    secrets: Object.fromEntries(many(args, "secret").map((v) => parseSecret(v, parseCsv(v, "secret")))),
    ...(many(args, "ssh").length > 0 ? { ssh: Object.fromEntries(many(args, "ssh").map((v) => parseSshSpec(v))) } : {}),
    noCache: args.flags.has("no-cache"),
    noCacheFilter: many(args, "no-cache-filter"),
    cacheFrom,
    cacheTo,
    insecureRegistries: [...many(args, "insecure-registry"), ...kaniko.insecureRegistries],
    ...(one(args, "registry-ca") ? { registryCa: one(args, "registry-ca")! } : {}),
    ...(one(args, "authfile") ? { authFile: one(args, "authfile")! } : {}),
    ...(many(args, "registry-mirror").length > 0 ? { registryMirrors: many(args, "registry-mirror") } : {}),
    ...(one(args, "registries-conf") ? { registriesConf: one(args, "registries-conf")! } : {}),
    ...(credentials ? { credentials } : {}),
    ...(timeout !== undefined ? { registryTimeouts: parseRegistryTimeout(timeout) } : {}),
    // any attestation flag given (--provenance=false too: it turns off the default when pushing)
    ...(Object.keys(attest).length > 0 ? { attest } : {}),
  };
  return { options, progress };
}

/** The registry reference of a `type=registry` cache spec, if it is one. */
function cacheRef(spec: string, direction: "from" | "to"): string[] {
  const parsed = parseCacheSpec(spec, direction);
  return parsed.type === "registry" ? [parsed.ref] : [];
}
