// The isolation contract for RUN steps: what to run (RunSpec), what comes back (RunResult) and
// the Runner interface every backend (OCI runtime, chroot) implements. `kiln run` adds the
// optional stdio/readonlyRootfs/onStart parts; RUN steps use none of them. The id-map types come
// from src/snapshot/idmap.ts (re-exported here for the backends).
import type { IdMap } from "../snapshot/idmap.js";
import type { RootMount } from "../snapshot/rootfs-types.js";
import type { Ulimit } from "./limits.js";
import type { CapabilityChoice } from "./caps.js";
import type { ExtraHost } from "./hosts.js";
import type { RecordedOwners } from "../snapshot/recorded-owners.js";
import type { ResolvedUser } from "./user.js";

export type { IdMap } from "../snapshot/idmap.js";
export type { RecordedOwners } from "../snapshot/recorded-owners.js";

export type Isolation = "auto" | "oci" | "chroot" | "plain-chroot" | "proot";

export interface RunMount {
  /** `secret`: a read-only file holding `data`, kept where it vanishes with the step (see the runners). */
  type: "bind" | "tmpfs" | "secret";
  /** Host path for bind mounts. */
  source?: string;
  /** secret: the file's bytes (never written to a host file where the runner can avoid it). */
  data?: Buffer;
  /** secret: the file's mode (default 0400) and owner inside the container (default 0:0). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** In-container absolute path. */
  target: string;
  readonly?: boolean;
  /** How errors name this mount (e.g. the `--mount=...` spec as written). */
  label?: string;
}

export interface RunSpec {
  /** Host directory used as the container's root filesystem. */
  rootfs: string;
  argv: string[];
  /** "KEY=value" strings, exactly the process environment. */
  env: string[];
  /** In-container working directory (created if missing, as Docker does for WORKDIR). */
  cwd: string;
  /** As USER: name, uid, name:group, uid:gid. Empty means root. */
  user: string;
  /** `user` already resolved against this rootfs (kiln run resolves it first): runners use it and read no passwd/group again. */
  resolvedUser?: ResolvedUser;
  network: "host" | "none";
  hostname?: string;
  /** `--add-host` entries (host-gateway already resolved), appended to the generated /etc/hosts. */
  extraHosts?: ExtraHost[];
  mounts?: RunMount[];
  /** `--ulimit`: resource limits of the step's processes. */
  ulimits?: readonly Ulimit[];
  /** `--shm-size`: /dev/shm's size in bytes (default 64 MiB); runners without a /dev/shm of their own refuse it. */
  shmSize?: number;
  stdout?: (b: Buffer) => void;
  stderr?: (b: Buffer) => void;
  signal?: AbortSignal;
  /**
   * `kiln run`: the process's stdin (when `stdin`), stdout and stderr are kiln's own (the
   * `stdout`/`stderr` callbacks are then not called); `tty` gives it a pseudo-terminal on them.
   * Runners that cannot do a part refuse it with a one-line KilnError before starting.
   */
  stdio?: { stdin: boolean; tty: boolean };
  /**
   * Isolation proot: run the command (and every program it executes) through this qemu user
   * binary (`proot -q`), for a foreign platform where binfmt_misc cannot be used.
   */
  qemu?: string;
  /** `kiln run --cap-add/--cap-drop`: the capabilities (CAP_ names) instead of Docker's default set. */
  capabilities?: CapabilityChoice;
  /** `kiln run --memory/--cpus`: cgroup limits (runners with the "resources" feature). */
  resources?: { memoryBytes?: number; cpus?: number };
  /** `kiln run --read-only`: the root file system is mounted read-only. */
  readonlyRootfs?: boolean;
  /**
   * The root file system is thrown away after this run (kiln run's): the mount points kiln
   * created in it are left for its disposal instead of being removed one by one.
   */
  disposableRootfs?: boolean;
  /**
   * Called once the process (and, for the OCI runtime, its namespaces) has ended, before the
   * runner removes its own files: with `disposableRootfs`, the caller may dispose of the root then,
   * alongside that clean-up (runners that cannot say when may never call it).
   */
  onExited?: () => void;
  /** Called once the process is starting, with a way to signal it (kiln run forwards SIGINT/SIGTERM). */
  onStart?: (control: RunControl) => void;
}

/** Signals the running process (its pid 1), as `docker kill -s` does. */
export interface RunControl {
  kill(signal: NodeJS.Signals): Promise<void>;
}

export interface RunResult {
  exitCode: number;
  /** The last ~20 lines of combined output. */
  outputTail: string;
  /**
   * Owners, modes and device nodes the step's fake root recorded instead of setting them (a
   * non-root proot step under fakeroot): the snapshot puts them on the layer entries.
   */
  recordedOwners?: RecordedOwners;
}

export interface Runner {
  readonly name: string;
  /**
   * Set when the files a RUN creates carry other owners on the host than inside the container
   * (a user namespace, a fake root): the step's snapshot maps them back through it, so layers
   * record the ids the container saw. Unset: host ids are container ids.
   */
  readonly idMap?: IdMap;
  /**
   * Paths (relative to the rootfs) the runner itself writes into the rootfs for a step (the /etc
   * files, /dev nodes, a stub directory) where it cannot mount them: kept out of the step's layer.
   */
  readonly stepExcludes?: readonly string[];
  /** The optional RunSpec parts (kiln run's) this runner honours; unlisted ones it ignores. */
  readonly features?: ReadonlySet<RunFeature>;
  run(spec: RunSpec): Promise<RunResult>;
  /**
   * Run on a root file system that is not mounted yet (kiln run's): the runner mounts `root` in
   * its own mount namespace, where it vanishes with the run (nothing to unmount afterwards), then
   * calls `build` with the root's path as kiln sees it (through /proc/PID/root) and runs the spec
   * it returns, whose `rootfs` is that path. The runner may start before `root` settles (its
   * processes start while the caller assembles the root); when `root` rejects, the run ends with
   * that error and never starts. `io` (the process's signal, stdio, output and callbacks) is
   * needed before the mount; `build` may fail (the run then never starts).
   */
  runOnRoot?(root: Promise<RootMount>, io: RunIO, build: (rootfs: string) => Promise<RunSpec>): Promise<RunResult>;
}

/** The parts of a RunSpec about the process's lifetime and I/O rather than what it runs. */
export type RunIO = Pick<RunSpec, "signal" | "stdio" | "stdout" | "stderr" | "onStart" | "onExited">;

export type RunFeature = "stdio" | "readonly-rootfs" | "signals" | "capabilities" | "resources";
