// chroot isolation built only from util-linux `unshare`/`setpriv` and coreutils `chroot`: new
// mount, pid, ipc and uts namespaces (network too for network=none; user namespace when not
// root), all mounts private so nothing reaches the host, the rootfs bound onto itself nodev (as
// are /dev and every RUN mount: a device node from a layer cannot be opened), /proc mounted for
// the new pid namespace, a minimal /dev (tmpfs + bind-mounted host nodes), read-only /sys, the
// generated /etc files, secrets in a tmpfs filled from a pipe, then Docker's default capabilities
// (setpriv) and `chroot --userspec --groups`. unshare dies with kiln (parent-death signal) and
// its namespace with it: every mount and process of the step ends when kiln does. A status pipe
// tells a start failure (IsolationError) from the command's own exit. For `kiln run`: the
// capability set of --cap-add/--cap-drop, a read-only root (the root bind remounted ro), kiln's
// stdin (-i) and terminal (-t, also bound at /dev/console), and signals sent to the command.
import { closeSync, existsSync, openSync, readFileSync, readSync, readlinkSync, realpathSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { IsolationError, KilnError } from "../errors.js";
import { resolveInRoot } from "../snapshot/confine.js";
import { createWorkDir, removeWorkDir } from "../snapshot/workdir.js";
import { defaultCacheDir } from "../store/blob-store.js";
import { DEFAULT_CAPS } from "./caps.js";
import { OutputTail, dieWithKiln, runStreaming, shq, startFailure } from "./output.js";
import { shmSizeOption, withRlimits } from "./limits.js";
import { MountTargets, SECRETS_FD, STATUS_FD, ensureCwd, newHostname, placeMounts, secretLines, writeEtcFiles } from "./sandbox-files.js";
import type { IdMap, RunFeature, RunResult, RunSpec, Runner } from "./types.js";
import { resolveUser } from "./user.js";
import { checkUserNamespaces, hostIdMappings, unshareUserArgs } from "./userns.js";

/** What chroot(8) needs to enter the root and switch to the command's user. */
const CHROOT_NEEDS = ["CAP_SYS_CHROOT", "CAP_SETUID", "CAP_SETGID"];

const DEV_NODES = ["null", "zero", "full", "random", "urandom", "tty"];

/** The host's static busybox (usable after the host root is detached), or null. */
export function staticBusybox(): string | null {
  for (const p of ["/bin/busybox", "/usr/bin/busybox", "/usr/local/bin/busybox"]) {
    try {
      const fd = openSync(p, "r");
      try {
        const h = Buffer.alloc(4096);
        readSync(fd, h, 0, 4096, 0);
        if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2) continue; // 64-bit ELF only
        const phoff = Number(h.readBigUInt64LE(0x20));
        const phentsize = h.readUInt16LE(0x36);
        const phnum = h.readUInt16LE(0x38);
        let interp = false;
        for (let i = 0; i < phnum; i++) {
          const off = phoff + i * phentsize;
          if (off + 4 > h.length) return null;
          if (h.readUInt32LE(off) === 3) interp = true; // PT_INTERP: dynamically linked
        }
        if (!interp) return realpathSync(p);
      } finally {
        closeSync(fd);
      }
    } catch {
      /* not here */
    }
  }
  return null;
}

function findTool(name: string): string {
  for (const d of ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]) if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
  throw new KilnError("ISOLATION_UNAVAILABLE", `chroot isolation needs "${name}" (Debian packages util-linux and coreutils)`);
}

class ChrootRunner implements Runner {
  readonly name: string;
  private readonly rootless = process.getuid?.() !== 0;
  readonly idMap?: IdMap;
  readonly features: ReadonlySet<RunFeature> = new Set<RunFeature>(["capabilities", "signals", "stdio", "readonly-rootfs"]);

  constructor(private readonly workDir: string | undefined) {
    this.name = `chroot${this.rootless ? " (rootless)" : ""}`;
    if (this.rootless) this.idMap = hostIdMappings();
  }

  async run(spec: RunSpec): Promise<RunResult> {
    const unshare = findTool("unshare");
    const chroot = findTool("chroot");
    const setpriv = findTool("setpriv");
    if (this.rootless) checkUserNamespaces();
    const runDir = await createWorkDir(this.workDir ?? join(defaultCacheDir(), "run"), "chroot-");
    const targets = new MountTargets(spec.rootfs);
    try {
      const user = spec.resolvedUser ?? (await resolveUser(spec.rootfs, spec.user));
      const maps = this.rootless ? hostIdMappings() : null;
      if (maps?.single && (user.uid !== 0 || user.gid !== 0)) {
        throw new KilnError("ISOLATION_UNAVAILABLE", 
          `rootless RUN as USER ${spec.user} needs subordinate ids: add a range for this user to /etc/subuid and /etc/subgid (and install uidmap), or run as root`,
        );
      }
      await ensureCwd(spec.rootfs, spec.cwd);
      const hostname = spec.hostname ?? newHostname();
      const etc = await writeEtcFiles(runDir, hostname, spec.extraHosts);
      const R = spec.rootfs;
      const placed = await placeMounts(spec, targets, etc);
      const { proc, dev, sys } = placed;
      const secretDir = join(runDir, "secrets");
      await mkdir(secretDir, { mode: 0o700 });
      const secrets = secretLines(placed, secretDir);
      // The rootfs is bound onto itself and made nodev: device nodes from a layer (or made by the
      // step with CAP_MKNOD) cannot be opened; kiln's own nodes below are binds of the host's.
      const lines: string[] = ["set -e", `R=${shq(R)}`, `mount --bind "$R" "$R"`, `mount -o remount,bind,nodev "$R"`, ...secrets.lines, `exec ${SECRETS_FD}<&-`];
      lines.push(`mount -t proc -o nosuid,nodev,noexec proc ${shq(proc)}`);
      lines.push(`mount -t tmpfs -o nosuid,nodev,mode=755,size=65536k tmpfs ${shq(dev)}`);
      for (const n of DEV_NODES) lines.push(`: > ${shq(`${dev}/${n}`)}; mount --bind /dev/${n} ${shq(`${dev}/${n}`)}`);
      lines.push(`mkdir -p ${shq(`${dev}/pts`)} ${shq(`${dev}/shm`)}`);
      lines.push(`mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts ${shq(`${dev}/pts`)}`);
      lines.push(`ln -s pts/ptmx ${shq(`${dev}/ptmx`)}`);
      lines.push(`mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,${shmSizeOption(spec.shmSize)} shm ${shq(`${dev}/shm`)}`);
      lines.push(`ln -s /proc/self/fd ${shq(`${dev}/fd`)}; ln -s /proc/self/fd/0 ${shq(`${dev}/stdin`)}; ln -s /proc/self/fd/1 ${shq(`${dev}/stdout`)}; ln -s /proc/self/fd/2 ${shq(`${dev}/stderr`)}`);
      if (this.rootless && spec.network !== "none") {
        // sysfs needs the network namespace's owner: bind the host's read-only instead
        lines.push(`mount --rbind /sys ${shq(sys)}; mount -o remount,bind,ro,nosuid,nodev,noexec ${shq(sys)}`);
      } else {
        lines.push(`mount -t sysfs -o ro,nosuid,nodev,noexec sysfs ${shq(sys)}`);
      }
      // Every target was resolved through the mounts before it (placeMounts), so these host
      // paths hold no symlink once those mounts are in place; a target missing inside an earlier
      // (writable) mount is created there, never in a mount's host source. Every mount is nodev.
      for (const p of placed.mounts) {
        const host = shq(p.host);
        if (p.createInside) lines.push(p.isDir ? `mkdir -p ${host}` : `mkdir -p ${shq(dirname(p.host))}; [ -e ${host} ] || : > ${host}`);
        if (p.mount.type === "tmpfs") {
          lines.push(`mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs ${host}`);
        } else if (p.mount.type === "secret") {
          lines.push(`mount --bind ${shq(secrets.files.get(p) as string)} ${host}`);
          lines.push(`mount -o remount,bind,ro,nosuid,nodev,noexec ${host}`);
        } else {
          lines.push(`mount --rbind ${shq(p.mount.source as string)} ${host}`);
          lines.push(`mount -o remount,bind,nodev${p.mount.readonly ? ",ro" : ""} ${host}`);
        }
      }
      if (spec.stdio?.tty) {
        // -t: the process gets kiln's own terminal; it is bound at /dev/console (as docker's pty
        // is) so that ttyname() finds it in the container's /dev (its /dev/pts is a new instance)
        const tty = kilnTerminal();
        lines.push(`: > ${shq(`${dev}/console`)}; mount --bind ${shq(tty)} ${shq(`${dev}/console`)}`);
      }
      // --read-only: the root bind is made read-only once every mount point in it is in place
      if (spec.readonlyRootfs) lines.push(`mount -o remount,bind,ro,nodev "$R"`);
      lines.push(`if command -v hostname >/dev/null 2>&1; then hostname ${shq(hostname)}; else printf %s ${shq(hostname)} > /proc/sys/kernel/hostname; fi`);
      // cd into the working directory after chroot needs a shell in the image; "/" needs none.
      const hasSh = existsSync(await resolveInRoot(R, "/bin/sh", { followFinal: true }));
      const cwd = spec.cwd === "" ? "/" : spec.cwd;
      const userspec = `--userspec=${user.uid}:${user.gid}`;
      const groups = user.additionalGids.length > 0 ? [`--groups=${user.additionalGids.join(",")}`] : [];
      const envArgs = spec.env.map(shq).join(" ");
      // Docker's default capabilities, or kiln run's --cap-add/--cap-drop set, as the bounding set
      // (root's set after exec): by default no CAP_SYS_ADMIN to undo nodev or mount, no raw I/O,
      // no module loading.
      const wanted = spec.capabilities?.set ?? DEFAULT_CAPS;
      if (user.uid !== 0 && (spec.capabilities?.added.length ?? 0) > 0) {
        throw new KilnError("FEATURE_UNSUPPORTED", `--cap-add for a non-root user (${spec.user}) needs --isolation oci: chroot cannot keep capabilities across the user switch`);
      }
      const setName = (c: string): string => c.slice(4).toLowerCase();
      const caps = `-all${wanted.map((c) => `,+${setName(c)}`).join("")}`;
      // chroot(8) itself needs SYS_CHROOT, SETUID and SETGID to enter the root and switch user:
      // when the set lacks one, it is lent through the inheritable set (root's exec gets bounding
      // ∪ inheritable) and taken back inside the root, before the command, by the host's static
      // busybox bound at /dev/.kiln/busybox (hardened path only).
      const lent = CHROOT_NEEDS.filter((c) => !wanted.includes(c));
      const busybox = hasSh ? staticBusybox() : null;
      if (lent.length > 0 && !busybox) {
        throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "chroot" can drop ${lent.join(", ")} only with a static busybox on the host (Debian package busybox-static) and /bin/sh in the image: use --isolation oci`);
      }
      const drop = lent.length === 0
        ? `${shq(setpriv)} --bounding-set ${caps} --inh-caps -all --`
        : `${shq(setpriv)} --inh-caps -all${lent.map((c) => `,+${setName(c)}`).join("")} -- ${shq(setpriv)} --bounding-set ${caps} --`;
      const chrootCmd = `/usr/bin/env -i ${envArgs} ${drop} ${shq(chroot)} ${userspec} ${groups.map(shq).join(" ")} "$R"`;
      // The status fd tells kiln the isolation is in place and the command is starting: a run
      // that ends without it failed to start (ISOLATION_FAILED), not the command.
      const started = `echo started >&${STATUS_FD}; exec ${STATUS_FD}>&-`;
      if (busybox) {
        // Hardened path: the command waits on a gate while the setup shell pivots the mount
        // namespace's root to the rootfs and detaches the host's root, so not even a chroot()
        // escape (CAP_SYS_CHROOT) can reach a host path. Host tools are unusable after the pivot
        // (their libraries are gone), hence the static busybox for the final umount.
        await targets.ensure("/.kiln-oldroot", "dir");
        const takeBack = lent.length > 0 ? `/dev/.kiln/busybox setpriv --inh-caps ${lent.map((c) => `-${setName(c)}`).join(",")} -- ` : "";
        const gateCmd = `: > /dev/.kiln/ready; read _ < /dev/.kiln/gate; cd -- "$0" && exec ${takeBack}"$@"`;
        lines.push(`mkdir -m 700 ${shq(`${dev}/.kiln`)}; mkfifo -m 600 ${shq(`${dev}/.kiln/gate`)}`);
        lines.push(`chown -R ${user.uid}:${user.gid} ${shq(`${dev}/.kiln`)}`);
        // (after the chown: the bind's target is the host's busybox)
        if (lent.length > 0) lines.push(`: > ${shq(`${dev}/.kiln/busybox`)}; mount --bind ${shq(busybox)} ${shq(`${dev}/.kiln/busybox`)}; mount -o remount,bind,ro ${shq(`${dev}/.kiln/busybox`)}`);
        lines.push(`exec 5<> ${shq(`${dev}/.kiln/gate`)}`);
        // an asynchronous command's stdin would be /dev/null: hand it the setup's own (kiln's with -i)
        lines.push("exec 7<&0");
        lines.push(`${chrootCmd} /bin/sh -c ${shq(gateCmd)} ${shq(cwd)} ${spec.argv.map(shq).join(" ")} ${STATUS_FD}>&- 5>&- 0<&7 7<&- &`);
        lines.push("child=$!");
        // wait until the command is inside the rootfs (host binaries are unusable after the pivot)
        lines.push(`while [ ! -e ${shq(`${dev}/.kiln/ready`)} ] && kill -0 "$child" 2>/dev/null; do sleep 0.01; done`);
        // the chroot (or the privilege drop) failed before the command: a start failure
        lines.push(`if [ ! -e ${shq(`${dev}/.kiln/ready`)} ]; then set +e; wait "$child"; exit $?; fi`);
        lines.push(`cd "$R"`);
        lines.push("pivot_root . .kiln-oldroot");
        lines.push("cd /");
        lines.push(`/.kiln-oldroot${busybox} umount -l /.kiln-oldroot`);
        lines.push(started);
        lines.push("echo go >&5");
        lines.push("exec 5>&-");
        lines.push("set +e");
        lines.push('wait "$child"');
        lines.push("exit $?");
      } else {
        const inner = cwd === "/" || !hasSh ? spec.argv : ["/bin/sh", "-c", 'cd -- "$0" && exec "$@"', cwd, ...spec.argv];
        lines.push(started);
        lines.push(`exec ${chrootCmd} ${inner.map(shq).join(" ")}`);
      }
      const script = join(runDir, "setup.sh");
      await writeFile(script, lines.join("\n") + "\n", { mode: 0o700 });

      // The namespace's init is the setup shell (--fork), killed with unshare (--kill-child); its
      // death ends every process of the pid namespace. unshare itself dies with kiln (setpriv's
      // parent-death signal), so nothing of the step outlives kiln, even a SIGKILLed one.
      const args = ["--mount", "--pid", "--fork", "--kill-child", "--ipc", "--uts", "--propagation", "private"];
      if (spec.network === "none") args.push("--net");
      if (maps) args.push(...unshareUserArgs(maps));
      args.push("/bin/sh", script);
      const tail = new OutputTail();
      let status = "";
      let exited = false;
      // the command is the setup shell's child on the hardened path (it waits for it), else the setup shell itself after its exec
      const commandPid = (unsharePid: number): number | undefined => {
        const setup = childOf(unsharePid);
        return busybox ? (setup === undefined ? undefined : childOf(setup)) : setup;
      };
      const code = await runStreaming(
        withRlimits(dieWithKiln({ cmd: unshare, args, env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" } }), spec.ulimits),
        {
          stdout: spec.stdout,
          stderr: spec.stderr,
          signal: spec.signal,
          ...(spec.stdio ? { inherit: { stdin: spec.stdio.stdin || spec.stdio.tty } } : {}),
          ...(spec.onStart
            ? { onSpawn: (pid: number) => spec.onStart?.({ kill: (sig) => signalCommand(() => (status.includes("started") ? commandPid(pid) : undefined), sig, () => exited) }) }
            : {}),
          onExit: () => {
            exited = true;
          },
          extraFds: [{ read: (b) => (status += b.toString()) }, { write: secrets.data }],
        },
        tail,
      );
      if (!status.includes("started") && !spec.signal?.aborted) throw new IsolationError(startFailure(tail.text(), code));
      return { exitCode: code, outputTail: tail.text() };
    } finally {
      if (!spec.disposableRootfs) await targets.cleanup();
      await removeWorkDir(runDir);
    }
  }
}

/** The first child of `pid` (the namespace's processes are a chain: unshare → setup shell → command). */
function childOf(pid: number): number | undefined {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0] ?? "";
    return /^\d+$/.test(first) ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

/** kiln run's forwarding: the signal to the command once it runs (retried while it is starting). */
async function signalCommand(target: () => number | undefined, sig: NodeJS.Signals, exited: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !exited(); i++) {
    const pid = target();
    if (pid !== undefined) {
      try {
        process.kill(pid, sig);
      } catch {
        /* gone meanwhile */
      }
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The terminal on kiln's stdin (for -t). */
function kilnTerminal(): string {
  try {
    const p = readlinkSync("/proc/self/fd/0");
    if (p.startsWith("/dev/")) return p;
  } catch {
    /* below */
  }
  throw new KilnError("FEATURE_UNSUPPORTED", "-t needs kiln's stdin to be a terminal");
}

export function createChrootRunner(options: { workDir?: string } = {}): Runner {
  return new ChrootRunner(options.workDir);
}
