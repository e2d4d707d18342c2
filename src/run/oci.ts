// OCI runtime isolation: writes a runtime bundle (config.json) for one RUN and executes it with
// `crun run` or `runc run` — pid/mount/ipc/uts namespaces (+ network when network=none), /proc,
// a minimal /dev, read-only /sys, generated /etc files, Docker's default capabilities and (as
// root) device cgroup, bind mounts nodev. The runtime runs as the init of kiln's own pid
// namespace, in a private mount namespace (under runc the rootfs bound nodev, secrets in a tmpfs)
// and, rootless, kiln's user namespace, tied to kiln's life: the container dies with kiln. A
// createRuntime hook marks that the container started (else IsolationError). An abort kills the
// namespace; bundle and state are removed. crun remounts the container's root with no flags of
// its own (runc keeps the mount's): under crun, as root, the device cgroup alone keeps a layer's
// device node unusable; rootless, no device node can be made nor opened (user namespace).
// kiln run's overlay root is mounted by the wrapper itself, in its namespace (runOnRoot): kiln
// prepares the bundle through /proc/PID/root meanwhile, and the mount goes with the namespace.
// OciRunner makes the bundle and the wrapper's script; OciRun (oci-run.ts) holds one run's
// wrapper process (its start, kiln run's early handshake, its result and what is left to clean).
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { defaultCacheDir } from "../store/blob-store.js";
import { createWorkDir, removeWorkDir } from "../snapshot/workdir.js";
import { dieWithKiln, runQuiet, shq, type Exec } from "./output.js";
import { ociJson, ociRlimits, shmSizeOption } from "./limits.js";
import {
  MountTargets, SECRETS_FD, STATUS_FD, ensureCwd, newHostname, placeMounts, secretLines, writeEtcFiles, type PlacedMounts, type PlacedRunMount,
} from "./sandbox-files.js";
import type { IdMap, RunFeature, RunIO, RunResult, RunSpec, Runner } from "./types.js";
import type { RootMount } from "../snapshot/rootfs-types.js";
import { OciRun, ROOT_MOUNT_FD, type WrapperArgs } from "./oci-run.js";
import { resolveUser, type ResolvedUser } from "./user.js";
import { hostIdMappings, unshareUserArgs } from "./userns.js";
import { DEFAULT_CAPS } from "./caps.js";


const DEVICES: Array<[string, number, number]> = [
  ["/dev/null", 1, 3], ["/dev/zero", 1, 5], ["/dev/full", 1, 7], ["/dev/random", 1, 8], ["/dev/urandom", 1, 9], ["/dev/tty", 5, 0],
];

const MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"];
const READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

const CGROUP2_MAGIC = 0x63677270;

/** coreutils cp, the createRuntime hook (run by the runtime in the host's file system). */
const CP = existsSync("/usr/bin/cp") ? "/usr/bin/cp" : "/bin/cp";

/**
 * crun refuses to start on a "hybrid" cgroup host whose v2 hierarchy has controllers attached.
 * Then we run it in a private mount namespace with an empty tmpfs over /sys/fs/cgroup/unified,
 * so it sees plain cgroup v1 (nothing leaks: the namespace is private and dies with crun).
 */
export function crunNeedsHybridWorkaround(): boolean {
  try {
    if (statfsSync("/sys/fs/cgroup").type === CGROUP2_MAGIC) return false;
    if (statfsSync("/sys/fs/cgroup/unified").type !== CGROUP2_MAGIC) return false;
    return readFileSync("/sys/fs/cgroup/unified/cgroup.controllers", "utf8").trim() !== "";
  } catch {
    return false;
  }
}

export interface OciOptions {
  runtime: "crun" | "runc";
  /** Base directory for bundles and runtime state (default `<cache>/run`). */
  workDir?: string;
}

class OciRunner implements Runner {
  readonly name: string;
  private readonly rootless = process.getuid?.() !== 0;
  private readonly hybrid: boolean;
  readonly idMap?: IdMap;
  readonly features: ReadonlySet<RunFeature>;

  constructor(private readonly opts: OciOptions) {
    this.name = `oci:${opts.runtime}${this.rootless ? " (rootless)" : ""}`;
    if (this.rootless) this.idMap = hostIdMappings();
    this.hybrid = opts.runtime === "crun" && !this.rootless && crunNeedsHybridWorkaround();
    // rootless: no cgroup of the container's own to limit (kiln's user owns none here)
    this.features = new Set<RunFeature>(["stdio", "readonly-rootfs", "signals", "capabilities", ...(this.rootless ? [] : ["resources" as const])]);
  }

  private runtimeExec(stateDir: string, args: string[]): Exec {
    const base = [`--root=${stateDir}`];
    if (this.hybrid) {
      return {
        cmd: "unshare",
        args: ["--mount", "--propagation", "private", "/bin/sh", "-c", `mount -t tmpfs kiln-nocg /sys/fs/cgroup/unified && exec ${shq(this.opts.runtime)} "$@"`, "kiln-oci", ...base, ...args],
      };
    }
    return { cmd: this.opts.runtime, args: [...base, ...args] };
  }

  run(spec: RunSpec): Promise<RunResult> {
    return this.execute(undefined, spec, async () => spec);
  }

  runOnRoot(root: Promise<RootMount>, io: RunIO, build: (rootfs: string) => Promise<RunSpec>): Promise<RunResult> {
    return this.execute(root, io, build);
  }

  /**
   * One run. With `root`, the wrapper starts first, before the root is assembled (OciRun
   * startOnRoot); kiln then prepares the bundle through /proc/PID/root (build(), the mount points)
   * and says go. Without, the bundle first, then the wrapper.
   */
  private async execute(root: Promise<RootMount> | undefined, io: RunIO, build: (rootfs: string) => Promise<RunSpec>): Promise<RunResult> {
    root?.catch(() => undefined); // observed below (it may fail while the work directory is made)
    const runDir = await createWorkDir(this.opts.workDir ?? join(defaultCacheDir(), "run"), "oci-");
    const run: OciRun = new OciRun(runDir, io, {
      kill: (pid, sig, exited): Promise<void> => this.kill(pid, run.stateDir, run.id, sig, exited),
      deleteContainer: (): Promise<void> => {
        const del = this.runtimeExec(run.stateDir, ["delete", run.id]);
        return runQuiet(del.cmd, del.args).then(() => undefined);
      },
    });
    let targets: MountTargets | undefined;
    let disposable = false;
    try {
      const rooted = root ? await run.startOnRoot(root, (w: WrapperArgs) => this.wrapper(w)) : undefined;
      const spec = await build(rooted?.view ?? "");
      disposable = spec.disposableRootfs === true;
      targets = new MountTargets(spec.rootfs);
      const hostname = spec.hostname ?? newHostname();
      // the bundle's directories and /etc files are written while the root is checked
      const bundle = Promise.all([run.dirs, writeEtcFiles(runDir, hostname, spec.extraHosts)]);
      let user: ResolvedUser;
      try {
        user = spec.resolvedUser ?? (await resolveUser(spec.rootfs, spec.user));
        await ensureCwd(spec.rootfs, spec.cwd);
      } finally {
        await bundle.catch(() => undefined); // settled before the bundle is removed
      }
      const [, etc] = await bundle;
      // Mount points must exist in the rootfs; the ones kiln creates are removed afterwards.
      // Every destination is given already resolved through the mounts before it (the runtime
      // resolves again inside the root, and finds no symlink on the way).
      const placed = await placeMounts(spec, targets, etc);
      // the runtime runs inside kiln's own namespaces (see wrapper()): secrets live in a tmpfs there
      const secrets = secretLines(placed, run.secretDir);
      if (rooted && secrets.lines.length > 0) throw new KilnError("INTERNAL", "secret mounts need a root the runner does not mount itself");
      // (the runtime finds the root where the wrapper mounted it)
      const config = this.config({ ...spec, rootfs: rooted?.target ?? spec.rootfs }, user, hostname, placed, secrets.files, run.startedFile);
      if (rooted) {
        await writeFile(join(runDir, "config.json"), ociJson(config));
        run.go();
      } else {
        const [, wrapper] = await Promise.all([writeFile(join(runDir, "config.json"), ociJson(config)), this.wrapper({ rootfs: spec.rootfs, runDir, stateDir: run.stateDir, id: run.id, secretSetup: secrets.lines })]);
        run.start(wrapper, [{ read: () => undefined }, { write: secrets.data }]);
      }
      return await run.result();
    } finally {
      await run.finish();
      // the bundle: a few small files (the secrets' tmpfs lived in the namespace)
      await Promise.all([disposable || !targets ? undefined : targets.cleanup(), removeWorkDir(runDir, { small: true })]);
    }
  }

  /**
   * kiln run's forwarding: `runtime kill ID SIG` run inside the wrapper's pid and mount namespaces
   * (nsenter into its init, the only child of the unshare kiln spawned as `wrapperPid`), where
   * the runtime's state and the pids it records are valid. Retried while the container is still
   * being created.
   */
  private async kill(wrapperPid: number, stateDir: string, id: string, sig: NodeJS.Signals, exited: () => boolean): Promise<void> {
    for (let i = 0; i < 100 && !exited(); i++) {
      let init = "";
      try {
        init = readFileSync(`/proc/${wrapperPid}/task/${wrapperPid}/children`, "utf8").trim().split(/\s+/)[0] ?? "";
      } catch {
        /* not started yet, or gone */
      }
      if (/^\d+$/.test(init) && !exited()) {
        const ns = ["--target", init, "--mount", "--pid", ...(this.rootless ? ["--user", "--preserve-credentials"] : [])];
        if ((await runQuiet("nsenter", [...ns, "--", this.opts.runtime, `--root=${stateDir}`, "kill", id, sig])).code === 0) return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * The runtime runs as the init of kiln's own pid namespace (with its /proc) in its own (slave)
   * mount namespace — rootless, in kiln's user namespace too (the mapping the container would have got;
   * the runtime then sees itself as root there, as under rootless podman) — under `setpriv
   * --pdeathsig KILL`. When kiln dies, however, unshare is killed, then the namespace's init, and
   * the kernel kills every process in the namespace — the container's too (its pid namespace is
   * nested in it). In that mount namespace, under runc, the rootfs is bound onto itself nodev
   * (runc's rbind keeps it: a device node from a layer cannot be opened even where the device
   * cgroup would allow its numbers; crun remounts the root without it, so there is no mount for
   * it to undo), the secrets' tmpfs is mounted and filled from fd 4, and crun's hybrid-cgroup
   * tmpfs is placed. The container is deleted in there after it ends (its state's
   * pids are the namespace's).
   */
  private async wrapper(w: WrapperArgs): Promise<Exec> {
    const { rootfs, runDir, stateDir, id, secretSetup, rootOnFd: root } = w;
    const rt = `${shq(this.opts.runtime)} --root=${shq(stateDir)}`;
    // the root's own mount (nodev), made here from the commands read on ROOT_MOUNT_FD (rootMountScript);
    // none there: the run was called off before its root was ready
    const mountRoot = root ? [`s=; while IFS= read -r l <&${ROOT_MOUNT_FD}; do s="$s$l\n"; done`, `[ -n "$s" ] || exit 0`, `eval "$s"`] : [];
    const lines = [
      "set -e",
      `R=${shq(rootfs)}`,
      ...mountRoot,
      // one mount(8) binds and then remounts with nodev (util-linux applies options given with --bind);
      // a root that is a nodev mount already (the overlay snapshotter's) needs no mount process,
      // nor one under crun, whose remount of the root would drop it again
      ...(root || this.opts.runtime === "crun" || mountedNodev(rootfs) ? [] : [`mount --bind -o nodev "$R" "$R"`]),
      ...(this.hybrid ? ["mount -t tmpfs kiln-nocg /sys/fs/cgroup/unified"] : []),
      // a root mounted here: kiln prepares the bundle through /proc/PID/root, then says go (or ends it)
      ...(root ? [`echo ready >&${STATUS_FD}`, `read -r go <&${SECRETS_FD} || exit 0`] : []),
      ...secretSetup,
      `exec ${STATUS_FD}>&- ${SECRETS_FD}<&-${root ? ` ${ROOT_MOUNT_FD}<&-` : ""}`,
      "set +e",
      `${rt} run --bundle ${shq(runDir)} ${shq(id)}`,
      "rc=$?",
      // `run` deletes the container it ran; a state left behind (a start that failed half-way) is
      // deleted here, without a runtime process for the usual case
      `if [ -e ${shq(join(stateDir, id))} ]; then ${rt} delete --force ${shq(id)} >/dev/null 2>&1; fi`,
      "exit $rc",
    ];
    const script = join(runDir, "runtime.sh");
    await writeFile(script, lines.join("\n") + "\n", { mode: 0o700 });
    const user = this.rootless ? unshareUserArgs(hostIdMappings()) : [];
    return dieWithKiln({
      // LC_ALL=C: the tools up to the runtime load no locale files (the container's environment is config.json's)
      env: { ...process.env, LC_ALL: "C" },
      cmd: findUnshare(),
      // slave, not private: the host's unmounts (another build's scratch file system) reach this
      // namespace, which would otherwise pin them (and their loop devices) while the step runs;
      // nothing mounted here reaches the host
      args: [...user, "--mount", "--propagation", "slave", "--pid", "--fork", "--kill-child", "--mount-proc", "/bin/sh", script],
    });
  }

  private config(
    spec: RunSpec,
    user: { uid: number; gid: number; additionalGids: number[] },
    hostname: string,
    placed: PlacedMounts,
    secretFiles: Map<PlacedRunMount, string>,
    startedFile: string,
  ): object {
    const caps = spec.capabilities?.set ?? DEFAULT_CAPS;
    // a non-root user keeps what --cap-add gave explicitly, as ambient capabilities (podman's rule)
    const userCaps = user.uid !== 0 ? spec.capabilities?.added ?? [] : [];
    const namespaces: Array<{ type: string }> = [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }];
    if (spec.network === "none") namespaces.push({ type: "network" });
    const mounts: object[] = [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", ...(this.rootless ? [] : ["gid=5"])] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", shmSizeOption(spec.shmSize)] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    ];
    if (this.rootless && spec.network !== "none") {
      // sysfs can only be mounted by the owner of the network namespace: bind the host's read-only.
      mounts.push({ destination: "/sys", type: "none", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "ro"] });
    } else {
      mounts.push({ destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] });
    }
    // the container's own cgroups, read-only (as docker mounts them), where limits were asked for
    if (spec.resources) mounts.push({ destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] });
    for (const p of placed.mounts) {
      const m = p.mount;
      if (m.type === "tmpfs") mounts.push({ destination: p.target, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] });
      else if (m.type === "secret") mounts.push({ destination: p.target, type: "bind", source: secretFiles.get(p), options: ["bind", "rprivate", "ro", "nosuid", "nodev", "noexec"] });
      // (rootless: no nodev, whose remount would drop flags the user namespace locks, e.g. nosuid;
      // no device node can exist there anyway)
      else mounts.push({ destination: p.target, type: "bind", source: m.source, options: ["rbind", "rprivate", ...(this.rootless ? [] : ["nodev"]), m.readonly ? "ro" : "rw"] });
    }
    const linux: Record<string, unknown> = {
      namespaces,
      maskedPaths: MASKED,
      readonlyPaths: READONLY,
    };
    if (this.rootless) {
      // already inside kiln's user namespace (wrapper()): no user namespace of the container's
      // own; no device cgroup (a rootless kiln can create no device node, nor can the step)
    } else {
      linux.devices = DEVICES.map(([path, major, minor]) => ({ path, type: "c", major, minor, fileMode: 0o666, uid: 0, gid: 0 }));
      linux.resources = {
        ...resources(spec),
        devices: [
          { allow: false, access: "rwm" },
          ...DEVICES.map(([, major, minor]) => ({ allow: true, type: "c", major, minor, access: "rwm" })),
          { allow: true, type: "c", major: 136, access: "rwm" },
          { allow: true, type: "c", major: 5, minor: 2, access: "rwm" },
        ],
      };
    }
    return {
      ociVersion: "1.0.2",
      process: {
        terminal: spec.stdio?.tty ?? false,
        user: {
          uid: user.uid,
          gid: user.gid,
          // supplementary groups need setgroups(2), denied in a single-id user namespace
          ...(this.rootless && hostIdMappings().single ? {} : { additionalGids: user.additionalGids }),
        },
        args: spec.argv,
        env: spec.env,
        cwd: spec.cwd,
        capabilities: userCaps.length > 0
          ? { bounding: caps, effective: userCaps, permitted: userCaps, inheritable: userCaps, ambient: userCaps }
          : { bounding: caps, effective: caps, permitted: caps },
        noNewPrivileges: false,
        ...(spec.ulimits && spec.ulimits.length > 0 ? { rlimits: ociRlimits(spec.ulimits) } : {}),
      },
      root: { path: spec.rootfs, readonly: spec.readonlyRootfs ?? false },
      hostname,
      mounts,
      linux,
      // run by the runtime once the container's namespaces, cgroup and mounts exist: kiln's sign
      // that the isolation is in place (a failure before it is ISOLATION_FAILED)
      // (it copies the state the runtime writes to its stdin, a hook that does not read it fails
      // with EPIPE, into the file: one program, no shell)
      hooks: { createRuntime: [{ path: CP, args: ["cp", "/dev/stdin", startedFile] }] },
    };
  }
}

/** `--memory`/`--cpus` as the runtime spec's cgroup resources (CFS quota over a 100 ms period, as docker). */
function resources(spec: RunSpec): Record<string, unknown> {
  const r = spec.resources;
  if (!r) return {};
  return {
    ...(r.memoryBytes !== undefined ? { memory: { limit: r.memoryBytes } } : {}),
    ...(r.cpus !== undefined ? { cpu: { period: 100_000, quota: Math.round(r.cpus * 100_000) } } : {}),
  };
}

/** True when the topmost mount on `path` (as /proc/self/mountinfo spells it) is nodev. */
export function mountedNodev(path: string): boolean {
  const escaped = path.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
  let options: string | undefined;
  try {
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const f = line.split(" ");
      if (f[4] === escaped) options = f[5];
    }
  } catch {
    return false;
  }
  return options?.split(",").includes("nodev") ?? false;
}

function findUnshare(): string {
  for (const d of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) if (existsSync(`${d}/unshare`)) return `${d}/unshare`;
  throw new KilnError("HOST_TOOL_MISSING", `isolation "oci" needs util-linux unshare (Debian package util-linux)`);
}

export function createOciRunner(opts: OciOptions): Runner {
  if (opts.runtime === "crun" && process.getuid?.() !== 0 && crunNeedsHybridWorkaround()) {
    throw new KilnError("ISOLATION_UNAVAILABLE", "rootless crun cannot run on this host's hybrid cgroup layout (controllers attached to cgroup v2 under /sys/fs/cgroup/unified): use runc or chroot isolation");
  }
  return new OciRunner(opts);
}
