// OCI runtime isolation: writes a runtime bundle (config.json) for one RUN and executes it with
// `crun run` or `runc run` — pid/mount/ipc/uts namespaces (+ network when network=none, + user
// when not root), /proc, a minimal /dev, read-only /sys, generated /etc files, Docker's default
// capabilities. The container is killed and deleted on abort; bundle and state are removed.
import { readFileSync, statfsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { defaultCacheDir } from "../store/blob-store.js";
import { createWorkDir, removeWorkDir } from "../fs/workdir.js";
import { OutputTail, runQuiet, runStreaming, shq, type Exec } from "./output.js";
import { MountTargets, ensureCwd, newHostname, placeMounts, writeEtcFiles, type PlacedMounts } from "./sandbox-files.js";
import type { IdMap, RunResult, RunSpec, Runner } from "./types.js";
import { resolveUser } from "./user.js";
import { hostIdMappings } from "./userns.js";

/** Docker's default capability set for containers (and so for RUN). */
export const DEFAULT_CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

const DEVICES: Array<[string, number, number]> = [
  ["/dev/null", 1, 3], ["/dev/zero", 1, 5], ["/dev/full", 1, 7], ["/dev/random", 1, 8], ["/dev/urandom", 1, 9], ["/dev/tty", 5, 0],
];

const MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"];
const READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

const CGROUP2_MAGIC = 0x63677270;

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

  constructor(private readonly opts: OciOptions) {
    this.name = `oci:${opts.runtime}${this.rootless ? " (rootless)" : ""}`;
    if (this.rootless) this.idMap = hostIdMappings();
    this.hybrid = opts.runtime === "crun" && !this.rootless && crunNeedsHybridWorkaround();
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

  async run(spec: RunSpec): Promise<RunResult> {
    const runDir = await createWorkDir(this.opts.workDir ?? join(defaultCacheDir(), "run"), "oci-");
    const targets = new MountTargets(spec.rootfs);
    const stateDir = join(runDir, "state");
    const id = `kiln-${runDir.slice(-12)}`;
    let created = false;
    try {
      await mkdir(stateDir, { mode: 0o700 });
      const user = await resolveUser(spec.rootfs, spec.user);
      await ensureCwd(spec.rootfs, spec.cwd);
      const hostname = spec.hostname ?? newHostname();
      const etc = await writeEtcFiles(runDir, hostname);
      // Mount points must exist in the rootfs; the ones kiln creates are removed afterwards.
      // Every destination is given already resolved through the mounts before it (the runtime
      // resolves again inside the root, and finds no symlink on the way).
      const placed = await placeMounts(spec, targets, etc);

      const config = this.config(spec, user, hostname, placed);
      await writeFile(join(runDir, "config.json"), JSON.stringify(config, null, 2));
      const tail = new OutputTail();
      let aborted = false;
      created = true;
      const code = await runStreaming(
        this.runtimeExec(stateDir, ["run", "--bundle", runDir, id]),
        {
          stdout: spec.stdout,
          stderr: spec.stderr,
          signal: spec.signal,
          onAbort: () => {
            aborted = true;
            void runQuiet(this.runtimeExec(stateDir, ["kill", id, "KILL"]).cmd, this.runtimeExec(stateDir, ["kill", id, "KILL"]).args);
          },
        },
        tail,
      );
      return { exitCode: aborted && code === 0 ? 137 : code, outputTail: tail.text() };
    } finally {
      if (created) {
        const del = this.runtimeExec(stateDir, ["delete", "--force", id]);
        await runQuiet(del.cmd, del.args);
      }
      await targets.cleanup();
      await removeWorkDir(runDir);
    }
  }

  private config(spec: RunSpec, user: { uid: number; gid: number; additionalGids: number[] }, hostname: string, placed: PlacedMounts): object {
    const namespaces: Array<{ type: string }> = [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }];
    if (spec.network === "none") namespaces.push({ type: "network" });
    const mounts: object[] = [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", ...(this.rootless ? [] : ["gid=5"])] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    ];
    if (this.rootless && spec.network !== "none") {
      // sysfs can only be mounted by the owner of the network namespace: bind the host's read-only.
      mounts.push({ destination: "/sys", type: "none", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "ro"] });
    } else {
      mounts.push({ destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] });
    }
    for (const p of placed.mounts) {
      const m = p.mount;
      if (m.type === "tmpfs") mounts.push({ destination: p.target, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] });
      else mounts.push({ destination: p.target, type: "bind", source: m.source, options: ["rbind", "rprivate", m.readonly ? "ro" : "rw"] });
    }
    const linux: Record<string, unknown> = {
      namespaces,
      maskedPaths: MASKED,
      readonlyPaths: READONLY,
    };
    if (this.rootless) {
      namespaces.push({ type: "user" });
      const maps = hostIdMappings();
      linux.uidMappings = maps.uid;
      linux.gidMappings = maps.gid;
    } else {
      linux.devices = DEVICES.map(([path, major, minor]) => ({ path, type: "c", major, minor, fileMode: 0o666, uid: 0, gid: 0 }));
      linux.resources = {
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
        terminal: false,
        user: {
          uid: user.uid,
          gid: user.gid,
          // runc refuses supplementary groups in rootless containers; crun and root mode keep them
          ...(this.rootless && this.opts.runtime === "runc" ? {} : { additionalGids: user.additionalGids }),
        },
        args: spec.argv,
        env: spec.env,
        cwd: spec.cwd,
        capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS },
        noNewPrivileges: false,
      },
      root: { path: spec.rootfs, readonly: false },
      hostname,
      mounts,
      linux,
    };
  }
}

export function createOciRunner(opts: OciOptions): Runner {
  if (opts.runtime === "crun" && process.getuid?.() !== 0 && crunNeedsHybridWorkaround()) {
    throw new KilnError("ISOLATION_UNAVAILABLE", "rootless crun cannot run on this host's hybrid cgroup layout (controllers attached to cgroup v2 under /sys/fs/cgroup/unified): use runc or chroot isolation");
  }
  return new OciRunner(opts);
}
