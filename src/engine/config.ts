// EngineConfig: the settings one build runs with, resolved and validated once from BuildOptions
// (defaults filled in, enum values checked, SOURCE_DATE_EPOCH and `created` decided, registry
// options gathered). The session, the sources, the stage loop and the steps read this and never
// BuildOptions: what a library caller passes is checked here, not only by the CLI.
import { resolve } from "node:path";
import { availableParallelism } from "node:os";
import { UsageError } from "../errors.js";
import type { Platform } from "../image/oci.js";
import { formatPlatform, hostPlatform, parseTargetPlatforms } from "../image/platform.js";
import type { PullPolicy } from "../registry/pull.js";
import type { RegistryOptions } from "../registry/options.js";
import { loadMirrors } from "../registry/mirrors.js";
import type { Snapshotter } from "../snapshot/rootfs.js";
import { parseAddHost, type ExtraHost } from "../run/hosts.js";
import { ISOLATIONS } from "../run/preflight.js";
import type { Isolation } from "../run/types.js";
import type { Ulimit } from "../run/limits.js";
import { defaultCacheDir } from "../store/blob-store.js";
import type { CacheOptions } from "./cache.js";
import type { BuildEvent } from "./events.js";
import type { BuildOptions, SecretSource } from "./options.js";
import { SshAgents } from "../run/ssh-agent.js";

/** A git repository a build read (its context, a named context, an ADD source), as the metadata file records it. */
export interface GitSourceRecord {
  /** "context", "context:NAME" or "Dockerfile:LINE" (ADD). */
  use: string;
  /** The remote, userinfo redacted. */
  remote: string;
  ref?: string;
  subdir?: string;
  commit: string;
}

export interface EngineConfig {
  /** Blob store, cache and work directories (absolute). */
  readonly cacheDir: string;
  /** The platform this config builds for (the first of `platforms` until forPlatform picks one). */
  readonly platform: Platform;
  /** Every target platform of the build (`--platform a,b`), normalised, at least one. */
  readonly platforms: readonly Platform[];
  /** `os/arch[/variant]`, as cache keys and step records name the platform. */
  readonly platformText: string;
  /** The target platform the stage is built toward (differs from `platformText` in a `FROM --platform=...` stage). */
  readonly targetText: string;
  /** The binfmt_misc handler RUN steps of this platform run through (qemu-aarch64, ...); undefined: native. */
  readonly emulator: string | undefined;
  /** isolation proot: the qemu user binary `proot -q` runs this platform's RUN steps through (no binfmt_misc needed). */
  readonly qemu?: string | undefined;
  /** ISO time written as `created` in config and history (SOURCE_DATE_EPOCH's when given). */
  readonly created: string;
  /** SOURCE_DATE_EPOCH: clamps mtimes in new layers; undefined when not given. */
  readonly sourceDateEpoch: number | undefined;
  /** `--build-arg` values (the plan's, and the proxy args RUN sees). */
  readonly buildArgs: Readonly<Record<string, string>>;
  /** The default network of RUN steps (`RUN --network` overrides it). */
  readonly network: "host" | "none";
  /** `--ulimit` and `--shm-size` for RUN steps. */
  readonly ulimits: readonly Ulimit[];
  readonly shmSize: number | undefined;
  /** `--add-host` entries for RUN steps' /etc/hosts (host-gateway resolved per step, by its network). */
  readonly extraHosts: readonly ExtraHost[];
  readonly secrets: Readonly<Record<string, SecretSource>>;
  /** `--ssh` agents by id (kiln's own agents start on first use; disposed with the build). */
  readonly ssh: SshAgents;
  /** The git repositories the build read (filled in while it runs; shared by every platform). */
  readonly gitSources: GitSourceRecord[];
  /** gzip level of new layers; undefined: the layer writer's default. */
  readonly compressionLevel: number | undefined;
  readonly isolation: Isolation;
  readonly snapshotter: Snapshotter;
  /** Stages built at once. */
  readonly jobs: number;
  readonly pull: PullPolicy;
  /** Registry access for pulls, cache import/export and pushes (the signal, and progress events to the listener). */
  readonly registry: RegistryOptions;
  readonly cache: CacheOptions;
  readonly signal: AbortSignal | undefined;
  /** Reports a build event to the caller's listener (a no-op without one). */
  readonly emit: (event: BuildEvent) => void;
}

const SNAPSHOTTERS: readonly Snapshotter[] = ["auto", "overlay", "dir"];
const PULL_POLICIES: readonly PullPolicy[] = ["always", "missing", "never"];

/** One `--add-host` value; a bad one is a usage error, as the other options' are. */
function addHost(spec: string): ExtraHost {
  try {
    return parseAddHost(spec);
  } catch (err) {
    throw new UsageError("OPTION_INVALID", (err as Error).message);
  }
}

/** Resolve and check the engine's settings; a bad value is a UsageError naming the option. */
export function resolveConfig(options: BuildOptions): EngineConfig {
  const buildArgs = { ...(options.buildArgs ?? {}) };
  const isolation = oneOf("isolation", options.isolation ?? "auto", ISOLATIONS);
  const snapshotter = oneOf("snapshotter", options.snapshotter ?? "auto", SNAPSHOTTERS);
  const network = oneOf("network", options.network ?? "host", ["host", "none"] as const);
  const pull = oneOf("pull", options.pull ?? "missing", PULL_POLICIES);
  if (options.format !== undefined) oneOf("format", options.format, ["oci", "docker"] as const);
  const compressionLevel = options.compressionLevel === undefined ? undefined : integer("compressionLevel", options.compressionLevel, 0, 9);
  const jobs = options.jobs === undefined ? Math.max(1, availableParallelism()) : Math.max(1, integer("jobs", options.jobs, 0, Number.MAX_SAFE_INTEGER));
  const platforms = options.platform ? parseTargetPlatforms(options.platform) : [hostPlatform()];
  const platform = platforms[0]!;
  const sde = sourceDateEpoch(options, buildArgs);
  const onEvent = options.onEvent;
  const mirrors = loadMirrors(options);
  return {
    cacheDir: resolve(options.cacheDir ?? defaultCacheDir()),
    platform,
    platforms,
    platformText: formatPlatform(platform),
    targetText: formatPlatform(platform),
    emulator: undefined,
    created: rfc3339(sde !== undefined ? new Date(sde * 1000) : new Date()),
    sourceDateEpoch: sde,
    buildArgs,
    network,
    ulimits: [...(options.ulimits ?? [])],
    shmSize: options.shmSize,
    extraHosts: (options.addHosts ?? []).map(addHost),
    secrets: { ...(options.secrets ?? {}) },
    ssh: new SshAgents(options.ssh ?? {}, options.signal),
    gitSources: [],
    compressionLevel,
    isolation,
    snapshotter,
    jobs,
    pull,
    registry: {
      ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
      ...(options.registryCa ? { caFile: options.registryCa } : {}),
      ...(options.authFile ? { authFile: options.authFile } : {}),
      ...(mirrors ? { mirrors } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      ...(options.registryTimeouts ? { timeouts: options.registryTimeouts } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      // pulls and pushes (base images, outputs, cache import/export) report pull-progress/push-progress events
      ...(onEvent ? { onProgress: onEvent, onWarning: (message: string) => onEvent({ type: "warning", message }) } : {}),
    },
    cache: {
      noCache: options.noCache === true,
      noCacheFilter: options.noCacheFilter ?? [],
      cacheFrom: options.cacheFrom ?? [],
      cacheTo: options.cacheTo ?? [],
    },
    signal: options.signal,
    emit: onEvent ? (event) => onEvent(event) : () => undefined,
  };
}

/** The same settings for one target platform (what one platform's stages, sources and steps read). */
export function forPlatform(config: EngineConfig, platform: Platform): EngineConfig {
  return { ...config, platform, platformText: formatPlatform(platform), targetText: formatPlatform(platform), emulator: undefined, qemu: undefined };
}

/** A stage's settings when its FROM names a platform (`FROM --platform=$BUILDPLATFORM`): built for that one, toward the target. */
export function forStagePlatform(config: EngineConfig, platform: Platform): EngineConfig {
  return { ...config, platform, platformText: formatPlatform(platform), emulator: undefined, qemu: undefined };
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError("OPTION_INVALID", `${name} must be one of ${allowed.join(", ")}, not "${value}"`);
  return value as T;
}

function integer(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError("OPTION_INVALID", `${name} must be a whole number from ${min} to ${max}, not ${value}`);
  return value;
}

function sourceDateEpoch(options: BuildOptions, buildArgs: Record<string, string>): number | undefined {
  if (options.sourceDateEpoch !== undefined) return options.sourceDateEpoch;
  const raw = buildArgs.SOURCE_DATE_EPOCH ?? process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === "") return undefined;
  if (!/^\d+$/.test(raw)) throw new UsageError("OPTION_INVALID", `SOURCE_DATE_EPOCH must be a number of seconds, not "${raw}"`);
  return Number(raw);
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}
