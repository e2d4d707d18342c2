// chroot isolation built only from util-linux `unshare` and coreutils `chroot`: new mount, pid,
// ipc and uts namespaces (network too for network=none; user namespace when not root), all
// mounts private so nothing reaches the host, /proc mounted for the new pid namespace, a minimal
// /dev (tmpfs + bind-mounted host nodes), read-only /sys, the generated /etc files, then
// `chroot --userspec --groups`. Every mount dies with the namespace when the command exits.
import { closeSync, existsSync, openSync, readSync, realpathSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { KilnError } from "../errors.js";
import { resolveInRoot } from "../fs/confine.js";
import { CHILD_FILE, createWorkDir, removeWorkDir } from "../fs/workdir.js";
import { defaultCacheDir } from "../store/blob-store.js";
import { OutputTail, runStreaming, shq } from "./output.js";
import { MountTargets, ensureCwd, newHostname, placeMounts, writeEtcFiles } from "./sandbox-files.js";
import type { IdMap, RunResult, RunSpec, Runner } from "./types.js";
import { resolveUser } from "./user.js";
import { checkUserNamespaces, hostIdMappings } from "./userns.js";

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

  constructor(private readonly workDir: string | undefined) {
    this.name = `chroot${this.rootless ? " (rootless)" : ""}`;
    if (this.rootless) this.idMap = hostIdMappings();
  }

  async run(spec: RunSpec): Promise<RunResult> {
    const unshare = findTool("unshare");
    const chroot = findTool("chroot");
    if (this.rootless) checkUserNamespaces();
    const runDir = await createWorkDir(this.workDir ?? join(defaultCacheDir(), "run"), "chroot-");
    const targets = new MountTargets(spec.rootfs);
    try {
      const user = await resolveUser(spec.rootfs, spec.user);
      const maps = this.rootless ? hostIdMappings() : null;
      if (maps?.single && (user.uid !== 0 || user.gid !== 0)) {
        throw new KilnError("ISOLATION_UNAVAILABLE", 
          `rootless RUN as USER ${spec.user} needs subordinate ids: add a range for this user to /etc/subuid and /etc/subgid (and install uidmap), or run as root`,
        );
      }
      await ensureCwd(spec.rootfs, spec.cwd);
      const hostname = spec.hostname ?? newHostname();
      const etc = await writeEtcFiles(runDir, hostname);
      const R = spec.rootfs;
      const placed = await placeMounts(spec, targets, etc);
      const { proc, dev, sys } = placed;
      const lines: string[] = ["set -e", `R=${shq(R)}`];
      lines.push(`mount -t proc -o nosuid,nodev,noexec proc ${shq(proc)}`);
      lines.push(`mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs ${shq(dev)}`);
      for (const n of DEV_NODES) lines.push(`: > ${shq(`${dev}/${n}`)}; mount --bind /dev/${n} ${shq(`${dev}/${n}`)}`);
      lines.push(`mkdir -p ${shq(`${dev}/pts`)} ${shq(`${dev}/shm`)}`);
      lines.push(`mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts ${shq(`${dev}/pts`)}`);
      lines.push(`ln -s pts/ptmx ${shq(`${dev}/ptmx`)}`);
      lines.push(`mount -t tmpfs -o nosuid,nodev,noexec,mode=1777 shm ${shq(`${dev}/shm`)}`);
      lines.push(`ln -s /proc/self/fd ${shq(`${dev}/fd`)}; ln -s /proc/self/fd/0 ${shq(`${dev}/stdin`)}; ln -s /proc/self/fd/1 ${shq(`${dev}/stdout`)}; ln -s /proc/self/fd/2 ${shq(`${dev}/stderr`)}`);
      if (this.rootless && spec.network !== "none") {
        // sysfs needs the network namespace's owner: bind the host's read-only instead
        lines.push(`mount --rbind /sys ${shq(sys)}; mount -o remount,bind,ro,nosuid,nodev,noexec ${shq(sys)}`);
      } else {
        lines.push(`mount -t sysfs -o ro,nosuid,nodev,noexec sysfs ${shq(sys)}`);
      }
      // Every target was resolved through the mounts before it (placeMounts), so these host
      // paths hold no symlink once those mounts are in place; a target missing inside an earlier
      // (writable) mount is created there, never in a mount's host source.
      for (const p of placed.mounts) {
        const host = shq(p.host);
        if (p.createInside) lines.push(p.isDir ? `mkdir -p ${host}` : `mkdir -p ${shq(dirname(p.host))}; [ -e ${host} ] || : > ${host}`);
        if (p.mount.type === "tmpfs") {
          lines.push(`mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs ${host}`);
        } else {
          lines.push(`mount --rbind ${shq(p.mount.source as string)} ${host}`);
          if (p.mount.readonly) lines.push(`mount -o remount,bind,ro ${host}`);
        }
      }
      lines.push(`if command -v hostname >/dev/null 2>&1; then hostname ${shq(hostname)}; else printf %s ${shq(hostname)} > /proc/sys/kernel/hostname; fi`);
      // cd into the working directory after chroot needs a shell in the image; "/" needs none.
      const hasSh = existsSync(await resolveInRoot(R, "/bin/sh", { followFinal: true }));
      const cwd = spec.cwd === "" ? "/" : spec.cwd;
      const userspec = `--userspec=${user.uid}:${user.gid}`;
      const groups = user.additionalGids.length > 0 ? [`--groups=${user.additionalGids.join(",")}`] : [];
      const envArgs = spec.env.map(shq).join(" ");
      const chrootCmd = `/usr/bin/env -i ${envArgs} ${shq(chroot)} ${userspec} ${groups.map(shq).join(" ")} "$R"`;
      const busybox = hasSh ? staticBusybox() : null;
      if (busybox) {
        // Hardened path: the command waits on a gate while the setup shell pivots the mount
        // namespace's root to the rootfs and detaches the host's root, so not even a chroot()
        // escape (CAP_SYS_CHROOT) can reach a host path. Host tools are unusable after the pivot
        // (their libraries are gone), hence the static busybox for the final umount.
        await targets.ensure("/.kiln-oldroot", "dir");
        const gateCmd = `exec 3>&-; : > /dev/.kiln/ready; read _ < /dev/.kiln/gate; cd -- "$0" && exec "$@"`;
        lines.splice(2, 0, `mount --bind "$R" "$R"`);
        lines.push(`mkdir -m 700 ${shq(`${dev}/.kiln`)}; mkfifo -m 600 ${shq(`${dev}/.kiln/gate`)}`);
        lines.push(`chown -R ${user.uid}:${user.gid} ${shq(`${dev}/.kiln`)}`);
        lines.push(`exec 3<> ${shq(`${dev}/.kiln/gate`)}`);
        lines.push(`${chrootCmd} /bin/sh -c ${shq(gateCmd)} ${shq(cwd)} ${spec.argv.map(shq).join(" ")} &`);
        lines.push("child=$!");
        // wait until the command is inside the rootfs (host binaries are unusable after the pivot)
        lines.push(`while [ ! -e ${shq(`${dev}/.kiln/ready`)} ] && kill -0 "$child" 2>/dev/null; do sleep 0.01; done`);
        lines.push(`cd "$R"`);
        lines.push("pivot_root . .kiln-oldroot");
        lines.push("cd /");
        lines.push(`/.kiln-oldroot${busybox} umount -l /.kiln-oldroot`);
        lines.push("echo go >&3");
        lines.push("exec 3>&-");
        lines.push("set +e");
        lines.push('wait "$child"');
        lines.push("exit $?");
      } else {
        const inner = cwd === "/" || !hasSh ? spec.argv : ["/bin/sh", "-c", 'cd -- "$0" && exec "$@"', cwd, ...spec.argv];
        lines.push(`exec ${chrootCmd} ${inner.map(shq).join(" ")}`);
      }
      const script = join(runDir, "setup.sh");
      await writeFile(script, lines.join("\n") + "\n", { mode: 0o700 });

      const args = ["--mount", "--pid", "--fork", "--kill-child", "--ipc", "--uts", "--propagation", "private"];
      if (spec.network === "none") args.push("--net");
      if (maps) {
        if (maps.single) args.push("--map-root-user");
        else {
          const u = maps.uid[1];
          const g = maps.gid[1];
          args.push("--map-user=0", "--map-group=0", `--map-users=${u.hostID},1,${u.size}`, `--map-groups=${g.hostID},1,${g.size}`, "--setgroups", "allow");
        }
      }
      args.push("/bin/sh", script);
      const tail = new OutputTail();
      const code = await runStreaming({ cmd: unshare, args, env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" } }, {
          stdout: spec.stdout,
          stderr: spec.stderr,
          signal: spec.signal,
          onSpawn: (pid) => void writeFile(join(runDir, CHILD_FILE), String(pid)).catch(() => undefined),
        },
        tail,
      );
      return { exitCode: code, outputTail: tail.text() };
    } finally {
      await targets.cleanup();
      await removeWorkDir(runDir);
    }
  }
}

export function createChrootRunner(options: { workDir?: string } = {}): Runner {
  return new ChrootRunner(options.workDir);
}
