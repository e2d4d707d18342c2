// plain-chroot isolation, for a root pod where namespaces and mount are refused: no unshare, no
// mount. The host's util-linux `setpriv` sets securebits noroot+noroot_locked (root gets no
// automatic capabilities on exec), Docker's default capabilities as bounding, inheritable and
// ambient sets, and no_new_privs; the host's coreutils `chroot` (SYS_CHROOT through ambient)
// enters the rootfs and execs kiln's static busybox from a stub directory, whose `setpriv` drops
// SYS_CHROOT and MKNOD from the inheritable set (and so from ambient) before exec'ing the command.
// The command runs as root with Docker's default capabilities minus SYS_CHROOT and MKNOD, and no
// file capability or setuid bit can give them back (nnp, noroot): the double-chroot escape fails.
// Shares kiln's PID and network namespaces and has no /proc: the pod is the boundary.
import { lstatSync } from "node:fs";
import { join, posix } from "node:path";
import { IsolationError, KilnError } from "../errors.js";
import { resolveInRoot } from "../snapshot/confine.js";
import { createWorkDir, removeWorkDir } from "../snapshot/workdir.js";
import { readFile } from "node:fs/promises";
import { defaultCacheDir } from "../store/blob-store.js";
import { staticBusybox } from "./chroot.js";
import { IN_PLACE_EXCLUDES, InPlace } from "./in-place.js";
import { OutputTail, StepGroup, groupDiesWithKiln, runStreaming, startFailure } from "./output.js";
import { withRlimits } from "./limits.js";
import { MountTargets, ensureCwd, newHostname, readOnlyEtcError, writeEtcFiles } from "./sandbox-files.js";
import type { RunResult, RunSpec, Runner } from "./types.js";
import { resolveUser } from "./user.js";

/** Dropped before the command (after chroot): no chroot escape, no device nodes of the host. */
export const DROPPED_IN_ROOT = ["sys_chroot", "mknod"];

/** Docker's default capabilities (setpriv names): what the host side passes on. */
export const PLAIN_CHROOT_CAPS = [
  "chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap", "net_bind_service", "net_raw",
  "sys_chroot", "mknod", "audit_write", "setfcap",
];


/**
 * The host side, as arguments of `setpriv` (at `setpriv`) up to the command: securebits noroot
 * (locked), Docker's default capabilities (those in `capBnd` when given) as inheritable and
 * ambient, no_new_privs; then a second setpriv (which holds SETPCAP through ambient) cuts the
 * bounding set to them minus SYS_CHROOT and MKNOD. Ambient capabilities survive the bounding
 * cut, so the host's chroot still gets SYS_CHROOT; the in-root setpriv then drops it from
 * ambient too. (One setpriv cannot do both: it cuts the bounding set before it raises the
 * inheritable set, which then fails.)
 */
export function plainChrootPrelude(setpriv: string, capBnd?: readonly string[]): string[] {
  const caps = PLAIN_CHROOT_CAPS.filter((c) => !capBnd || capBnd.includes(c));
  const set = (cs: string[]): string => `-all,${cs.map((c) => `+${c}`).join(",")}`;
  const bounding = caps.includes("setpcap") ? [setpriv, "--bounding-set", set(caps.filter((c) => !DROPPED_IN_ROOT.includes(c))), "--"] : [];
  return ["--securebits", "+noroot,+noroot_locked", "--inh-caps", set(caps), "--ambient-caps", set(caps), "--nnp", "--", ...bounding];
}

function hostTool(name: string): string {
  for (const d of ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]) if (lstatSync(`${d}/${name}`, { throwIfNoEntry: false })) return `${d}/${name}`;
  throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "plain-chroot" needs "${name}" (Debian packages util-linux and coreutils)`);
}

/** argv[0] looked up in the image's PATH (as Docker does), so nothing on the way can pick a busybox applet. */
export async function resolveCommand(rootfs: string, argv0: string, env: string[]): Promise<string> {
  if (argv0.includes("/")) return argv0;
  const path = env.find((e) => e.startsWith("PATH="))?.slice(5) ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const dir of path.split(":")) {
    if (!dir.startsWith("/")) continue;
    const candidate = posix.join(dir, argv0);
    const host = await resolveInRoot(rootfs, candidate, { followFinal: true });
    const st = lstatSync(host, { throwIfNoEntry: false });
    if (st?.isFile() && (st.mode & 0o111) !== 0) return candidate;
  }
  return argv0; // not found: the exec fails with the usual error
}

/**
 * True when a step's command names /proc or what lives there (/dev/fd, /dev/stdout...), which
 * plain-chroot cannot provide: such a step runs under proot instead. A script that reads /proc
 * without naming it fails with "No such file or directory" under plain-chroot.
 */
export function mentionsProc(argv: readonly string[]): boolean {
  return argv.some((a) => /\/proc\b|\/dev\/(fd|stdin|stdout|stderr)\b/.test(a));
}

class PlainChrootRunner implements Runner {
  readonly name = "plain-chroot";
  /** Paths the runner writes in the rootfs itself for a step (never part of its layer). */
  readonly stepExcludes = IN_PLACE_EXCLUDES;

  constructor(
    private readonly workDir: string | undefined,
    private readonly capBnd: readonly string[] | undefined,
    private readonly procFallback: Runner | undefined,
  ) {}

  async run(spec: RunSpec): Promise<RunResult> {
    if (spec.shmSize !== undefined) throw new KilnError("FEATURE_UNSUPPORTED", `--shm-size: isolation plain-chroot has no /dev/shm mount of its own (no mount namespace); use --isolation oci or chroot`);
    if (mentionsProc(spec.argv)) {
      if (this.procFallback) {
        spec.stderr?.(Buffer.from("kiln: plain-chroot has no /proc and this step names it: running it under proot\n"));
        return this.procFallback.run(spec);
      }
      spec.stderr?.(Buffer.from("kiln: plain-chroot has no /proc and this step names it (proot, which could give one, does not work here)\n"));
    }
    const setpriv = hostTool("setpriv");
    const chroot = hostTool("chroot");
    const busybox = staticBusybox();
    if (!busybox) throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "plain-chroot" needs a static busybox on the host (Debian package busybox-static)`);
    const runDir = await createWorkDir(this.workDir ?? join(defaultCacheDir(), "run"), "plain-");
    const targets = new MountTargets(spec.rootfs);
    const place = new InPlace(spec.rootfs, targets);
    try {
      const user = spec.resolvedUser ?? (await resolveUser(spec.rootfs, spec.user));
      await ensureCwd(spec.rootfs, spec.cwd);
      const etc = await writeEtcFiles(runDir, spec.hostname ?? newHostname(), spec.extraHosts);
      const stub = await place.stubBusybox(busybox);
      await place.devNodes();
      await place.file("/etc/hosts", await readFile(etc.hosts, "utf8"), { readonly: true });
      await place.file("/etc/resolv.conf", await readFile(etc.resolvConf, "utf8"), { readonly: true });
      for (const m of spec.mounts ?? []) await place.mount(m);
      for (const n of place.notes) spec.stderr?.(Buffer.from(`kiln: plain-chroot: ${n}\n`));

      const cwd = spec.cwd === "" ? "/" : spec.cwd;
      const argv = [await resolveCommand(spec.rootfs, spec.argv[0] ?? "", spec.env), ...spec.argv.slice(1)];
      const hasSh = lstatSync(await resolveInRoot(spec.rootfs, "/bin/sh", { followFinal: true }), { throwIfNoEntry: false }) !== undefined;
      if (cwd !== "/" && !hasSh) throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "plain-chroot" needs /bin/sh in the image to enter WORKDIR ${cwd}`);
      const inner = cwd === "/" ? argv : ["/bin/sh", "-c", 'cd -- "$0" && exec "$@"', cwd, ...argv];
      const groups = user.additionalGids.length > 0 ? [`--groups=${user.additionalGids.join(",")}`] : [];
      const args = [
        ...plainChrootPrelude(setpriv, this.capBnd),
        chroot, `--userspec=${user.uid}:${user.gid}`, ...groups, spec.rootfs,
        // inside the root, as the step's user: report "started" on fd 3 (and close it), then drop
        // the inheritable capabilities and exec the command. A run that ends without the report
        // failed to start (chroot or the privilege drop was refused): an isolation failure.
        stub, "sh", "-c", 'printf started >&3; exec 3>&-; d=$1; shift; exec "$0" setpriv --inh-caps "$d" -- "$@"', stub,
        DROPPED_IN_ROOT.map((c) => `-${c}`).join(","), ...inner,
      ];
      const env = Object.fromEntries(spec.env.map((e) => [e.slice(0, e.indexOf("=") < 0 ? e.length : e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
      // No pid namespace to end the step's processes with it: the step is its own session and
      // process group (groupDiesWithKiln: setsid execs, keeping the pid), killed whole on abort,
      // after the step, and by its supervising `timeout` when kiln dies.
      const tail = new OutputTail();
      const group = new StepGroup();
      let status = "";
      let code: number;
      try {
        code = await runStreaming(
          withRlimits(groupDiesWithKiln({ cmd: setpriv, args, env }), spec.ulimits),
          {
            stdout: spec.stdout,
            stderr: spec.stderr,
            signal: spec.signal,
            onAbort: group.kill,
            onExit: group.kill, // what the step left running goes with it, as with a pid namespace
            onSpawn: group.onSpawn,
            extraFds: [{ read: (b) => (status += b.toString()) }],
          },
          tail,
        );
      } finally {
        await group.end();
      }
      if (!status.includes("started") && !spec.signal?.aborted) throw new IsolationError(startFailure(tail.text(), code));
      // no read-only mount here: a step that wrote /etc/hosts or resolv.conf fails afterwards
      const written = await place.readOnlyWritten();
      if (written.length > 0 && code === 0) throw readOnlyEtcError(written);
      return { exitCode: code, outputTail: tail.text() };
    } finally {
      await place.cleanup();
      if (!spec.disposableRootfs) await targets.cleanup();
      await removeWorkDir(runDir);
    }
  }
}

export function createPlainChrootRunner(options: { workDir?: string; capBnd?: readonly string[]; procFallback?: Runner } = {}): Runner {
  return new PlainChrootRunner(options.workDir, options.capBnd, options.procFallback);
}
