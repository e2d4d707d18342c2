// Flags people paste into `kiln build` from `docker buildx build`, podman/buildah and kaniko jobs:
// the ones with an honest meaning in kiln are options here (and turned into kiln's own settings
// by `kanikoSettings`); the others have a one-line hint naming what to use instead (a usage
// error, exit 2). `examples/README.md` and docs/gitlab-ci.md table the same mapping.
import { KilnError, UsageError } from "../errors.js";
import { parseReference } from "../image/reference.js";
import { many, one, type OptionSpec, type ParsedArgs } from "./args.js";
import { registryOf } from "./command.js";

export const compatBuildOptions: OptionSpec[] = [
  { name: "quiet", short: "q", type: "boolean", help: "print only the image digest (as buildx -q)" },
  { name: "ulimit", type: "string", repeatable: true, valueName: "NAME=SOFT[:HARD]", help: "resource limit of RUN steps, e.g. nofile=1024:2048 (repeatable)" },
  { name: "shm-size", type: "string", valueName: "SIZE", help: "size of /dev/shm in RUN steps (default 64m)" },
  { name: "allow", type: "string", repeatable: true, valueName: "ENTITLEMENT", help: "network.host (always allowed); security.insecure is not supported" },
  { name: "creds", type: "string", valueName: "USER:PASS", help: "registry credentials for the registries of the -t/--destination names (podman/buildah)" },
  { name: "authfile", type: "string", valueName: "FILE", help: "a containers auth.json, read before Docker's config (podman/buildah)" },
  { name: "destination", type: "string", repeatable: true, valueName: "REF", help: "(kaniko) name and push to REF: -t REF --push" },
  { name: "context", type: "string", valueName: "DIR", help: "(kaniko) the build context: DIR or dir://DIR, instead of the CONTEXT argument" },
  { name: "dockerfile", type: "string", valueName: "PATH", help: "(kaniko) the Dockerfile: -f PATH" },
  { name: "no-push", type: "boolean", help: "(kaniko) build the --destination names without pushing them" },
  { name: "cache", type: "boolean", help: "(kaniko) with --cache-repo REPO (or DESTINATION/cache): --cache-from/--cache-to type=registry,ref=REPO,mode=max" },
  { name: "cache-repo", type: "string", valueName: "REPO", help: "(kaniko) the registry cache of --cache=true" },
  { name: "insecure", type: "boolean", help: "(kaniko) plain HTTP for the --destination and --cache-repo registries" },
  { name: "digest-file", type: "string", valueName: "FILE", help: "(kaniko) the image digest into FILE: --iidfile FILE" },
  { name: "snapshot-mode", type: "string", valueName: "full|redo|time", help: "(kaniko) accepted: kiln always compares each RUN's files exactly" },
  { name: "use-new-run", type: "boolean", help: "(kaniko) accepted: kiln's RUN always works that way" },
  { name: "skip-unused-stages", type: "boolean", help: "(kaniko) accepted: only the stages the target needs are ever built" },
];

/** Flags kiln has no honest meaning for, with what to use instead (`kiln build --X` prints the line). */
export const BUILD_FLAG_HINTS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries({
    "tar-path": "use --output type=docker,dest=FILE",
    "oci-layout-path": "use --output type=oci,dest=DIR",
    "image-name-with-digest-file": "use --metadata-file FILE (JSON: containerimage.digest, image.name)",
    "custom-platform": "use --platform OS/ARCH",
    "single-snapshot": "kiln writes one layer per step and cannot squash them; leave it out",
    "skip-tls-verify": "kiln always verifies TLS; trust the registry's CA with --registry-ca FILE, or use --insecure-registry HOST for plain HTTP",
    "skip-tls-verify-pull": "kiln always verifies TLS; trust the registry's CA with --registry-ca FILE, or use --insecure-registry HOST for plain HTTP",
    "skip-tls-verify-registry": "kiln always verifies TLS; trust the registry's CA with --registry-ca FILE",
    "insecure-pull": "use --insecure-registry HOST for the registry the bases come from",
    "registry-certificate": "use --registry-ca FILE",
    "registry-map": "use --registry-mirror HOST (docker.io) or a --registries-conf file with [[registry]] mirrors",
    verbosity: "use --progress plain, --progress quiet or -q",
    "log-format": "use --progress rawjson for machine-readable events",
    "log-timestamp": "use --progress rawjson (every event is a JSON object) and timestamp the lines yourself",
    cleanup: "kiln never writes outside its cache directory; leave it out",
    reproducible: "set SOURCE_DATE_EPOCH in the environment (or --build-arg SOURCE_DATE_EPOCH=...)",
    "cache-ttl": "kiln's registry cache has no time limit; prune the local one with kiln prune --filter until=DURATION",
    "cache-copy-layers": "COPY steps are always cached; leave it out",
    "cache-run-layers": "RUN steps are always cached; leave it out",
    compression: "use --output type=...,compression=zstd|gzip|uncompressed",
    "kaniko-dir": "use --cache-dir DIR",
    "ignore-path": "kiln never snapshots the host: leave it out",
    force: "kiln never runs in the host's root file system: leave it out",
    "push-retry": "registry requests are always retried; --registry-timeout sets their limits",
    "skip-push-permission-check": "leave it out",
    git: "clone the repository first, then pass its directory as CONTEXT",
  }).map(([flag, use]) => [flag, `kaniko flag --${flag}: ${use}`]),
);

export interface CompatSettings {
  context?: string;
  dockerfile?: string;
  /** Extra -t names (--destination). */
  tags: string[];
  push: boolean;
  cacheFrom: string[];
  cacheTo: string[];
  insecureRegistries: string[];
  iidfile?: string;
}

/** What the kaniko flags ask for, in kiln's own settings; conflicts are usage errors. */
export function kanikoSettings(args: ParsedArgs): CompatSettings {
  const out: CompatSettings = { tags: [], push: false, cacheFrom: [], cacheTo: [], insecureRegistries: [] };
  const ctx = one(args, "context");
  if (ctx !== undefined) {
    if (args.positionals.length > 0) throw new UsageError("USAGE", `kiln build: --context ${ctx} and the CONTEXT argument ${args.positionals[0]} given both`);
    if (/^(tar|git|s3|gs|az|https?):\/\//.test(ctx)) throw new UsageError("USAGE", `kaniko flag --context ${ctx}: kiln reads a local directory; fetch or unpack it first (a tar: kiln build - < FILE)`);
    out.context = ctx.replace(/^dir:\/\//, "");
  }
  const df = one(args, "dockerfile");
  if (df !== undefined) {
    if (one(args, "file") !== undefined) throw new UsageError("USAGE", "kiln build: --dockerfile and -f/--file given both");
    out.dockerfile = df;
  }
  const destinations = many(args, "destination");
  for (const d of destinations) {
    try {
      parseReference(d);
    } catch (err) {
      throw new UsageError("OPTION_INVALID", `--destination ${d}: ${(err as Error).message}`);
    }
  }
  out.tags = destinations;
  out.push = destinations.length > 0 && !args.flags.has("no-push");
  const repo = one(args, "cache-repo");
  if (args.flags.has("cache")) {
    const cacheRepo = repo ?? (destinations[0] !== undefined ? `${parseReference(destinations[0]).registry}/${parseReference(destinations[0]).repository}/cache` : undefined);
    if (!cacheRepo) throw new UsageError("USAGE", "kaniko flag --cache=true: give --cache-repo REPO (or a --destination to derive it from)");
    out.cacheFrom.push(`type=registry,ref=${cacheRepo}`);
    out.cacheTo.push(`type=registry,ref=${cacheRepo},mode=max`);
  }
  if (args.flags.has("insecure")) {
    const hosts = [...destinations, ...(repo ? [repo] : [])].flatMap(registryOf);
    if (hosts.length === 0) throw new UsageError("USAGE", "kaniko flag --insecure: no --destination to apply it to; use --insecure-registry HOST");
    out.insecureRegistries.push(...new Set(hosts));
  }
  const digestFile = one(args, "digest-file");
  if (digestFile !== undefined) {
    if (one(args, "iidfile") !== undefined) throw new UsageError("USAGE", "kiln build: --digest-file and --iidfile given both");
    out.iidfile = digestFile;
  }
  const mode = one(args, "snapshot-mode");
  if (mode !== undefined && !["full", "redo", "time"].includes(mode)) throw new UsageError("OPTION_INVALID", `--snapshot-mode must be full, redo or time, not "${mode}"`);
  return out;
}

/** `--allow`: network.host is what kiln's RUN may always have; security.insecure cannot be honoured. */
export function checkEntitlements(list: string[]): void {
  for (const e of list.flatMap((v) => v.split(","))) {
    const name = e.trim();
    if (name === "network.host") continue;
    if (name === "security.insecure") {
      throw new KilnError("FEATURE_UNSUPPORTED", "--allow security.insecure: kiln runs no privileged RUN steps (RUN --security=insecure); build the privileged part elsewhere");
    }
    throw new UsageError("OPTION_INVALID", `--allow ${name}: unknown entitlement (network.host, security.insecure)`);
  }
}
