// proot isolation: ptrace path translation (Debian package proot) for pods where neither
// namespaces nor chroot(2) are allowed, e.g. a non-root pod. `proot -0` fakes root, `-r` the
// rootfs; /proc, a few /dev nodes, the generated /etc files and the RUN's mounts are bound by path
// translation (read-only sources are bound from private copies: proot cannot make a bind
// read-only). A foreign platform's step runs under `proot -q qemu-ARCH-static` (no binfmt_misc). Files a step creates are owned on disk by kiln's uid: idMap maps it back to root.
// Not a security boundary against the step (ptrace translation can be evaded): the pod is.
import { existsSync, lstatSync, type Stats } from "node:fs";
import { mkdir, utimes } from "node:fs/promises";
import { resolveInRoot } from "../snapshot/confine.js";
import { join } from "node:path";
import { IsolationError, KilnError } from "../errors.js";
import { copyTreeNoFollow } from "../snapshot/copy-tree.js";
import { createWorkDir, removeWorkDir } from "../snapshot/workdir.js";
import { defaultCacheDir } from "../store/blob-store.js";
import { OutputTail, StepGroup, groupDiesWithKiln, runStreaming } from "./output.js";
import { withRlimits } from "./limits.js";
import { ensureCwd, newHostname, readOnlyEtcError, readOnlyEtcSnapshot, readOnlyEtcWritten, writeEtcFiles, writeSecretFiles } from "./sandbox-files.js";
import type { IdMap, RunResult, RunSpec, Runner } from "./types.js";
import { resolveUser } from "./user.js";

const DEV_NODES = ["null", "zero", "full", "random", "urandom", "tty"];

function prootTool(): string {
  for (const d of ["/usr/bin", "/usr/local/bin", "/bin"]) if (existsSync(`${d}/proot`)) return `${d}/proot`;
  throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "proot" needs proot (Debian package proot)`);
}

class ProotRunner implements Runner {
  readonly name = "proot";
  readonly idMap?: IdMap;
  readonly stepExcludes = ["etc/hosts", "etc/resolv.conf"];
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;

  constructor(private readonly workDir: string | undefined) {
    if (this.uid !== 0) this.idMap = { uid: [{ containerID: 0, hostID: this.uid, size: 1 }], gid: [{ containerID: 0, hostID: this.gid, size: 1 }] };
  }

  async run(spec: RunSpec): Promise<RunResult> {
    if (spec.shmSize !== undefined) throw new KilnError("FEATURE_UNSUPPORTED", `--shm-size: isolation proot has no /dev/shm mount of its own (ptrace path translation); use --isolation oci or chroot`);
    const proot = prootTool();
    const runDir = await createWorkDir(this.workDir ?? join(defaultCacheDir(), "run"), "proot-");
    try {
      const user = await resolveUser(spec.rootfs, spec.user);
      if (this.uid !== 0 && (user.uid !== 0 || user.gid !== 0)) {
        throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "proot" as non-root kiln cannot run a step as USER ${spec.user}: its files would be recorded with the wrong owner (run kiln as root, or drop USER before this RUN)`);
      }
      await ensureCwd(spec.rootfs, spec.cwd);
      const etc = await writeEtcFiles(runDir, spec.hostname ?? newHostname(), spec.extraHosts);
      const etcBefore = await readOnlyEtcSnapshot(etc);
      const args = spec.qemu !== undefined ? ["-q", spec.qemu] : [];
      args.push(user.uid === 0 ? "-0" : `-i`);
      if (user.uid !== 0) args.push(`${user.uid}:${user.gid}`);
      args.push("-r", spec.rootfs, "-w", spec.cwd === "" ? "/" : spec.cwd, "-b", "/proc");
      for (const n of DEV_NODES) if (existsSync(`/dev/${n}`)) args.push("-b", `/dev/${n}`);
      args.push("-b", `${etc.hosts}:/etc/hosts`, "-b", `${etc.resolvConf}:/etc/resolv.conf`);
      let i = 0;
      // proot binds host paths only: a secret is a 0400 file in the run directory (removed with it)
      const secretFiles = await writeSecretFiles(spec.mounts ?? [], join(runDir, "secrets"));
      for (const m of spec.mounts ?? []) {
        let source = m.source;
        if (m.type === "secret") source = secretFiles.get(m);
        else if (m.type === "tmpfs") {
          source = join(runDir, `tmpfs-${i++}`);
          await mkdir(source, { mode: 0o1777 });
        } else if (m.readonly && source) {
          // proot cannot make a bind read-only: the step gets a private copy of the source
          const copy = join(runDir, `ro-${i++}`);
          if (lstatSync(source).isDirectory()) await copyTreeNoFollow(source, copy);
          else {
            const { copyFile } = await import("node:fs/promises");
            await copyFile(source, copy);
          }
          source = copy;
        }
        args.push("-b", `${source as string}:${m.target}`);
      }
      args.push(...spec.argv);
      const env: NodeJS.ProcessEnv = Object.fromEntries(spec.env.map((e) => [e.slice(0, e.indexOf("=") < 0 ? e.length : e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
      const tmp = join(runDir, "tmp");
      await mkdir(tmp);
      env.PROOT_TMP_DIR = tmp;
      // proot makes (and removes) placeholder files for bindings whose parent exists: keep the
      // parents' times so they do not enter the layer
      const parents: Array<{ host: string; st: Stats }> = [];
      for (const d of ["/etc", "/dev"]) {
        const host = await resolveInRoot(spec.rootfs, d, { followFinal: true });
        const st = lstatSync(host, { throwIfNoEntry: false });
        if (st?.isDirectory()) parents.push({ host, st });
      }
      const tail = new OutputTail();
      // proot and its tracees are one process group that dies with kiln (groupDiesWithKiln),
      // killed whole on abort and once proot has ended
      const group = new StepGroup();
      let code: number;
      try {
        code = await runStreaming(
          withRlimits(groupDiesWithKiln({ cmd: proot, args, env }), spec.ulimits),
          { stdout: spec.stdout, stderr: spec.stderr, signal: spec.signal, onAbort: group.kill, onExit: group.kill, onSpawn: group.onSpawn },
          tail,
        );
      } finally {
        await group.end();
      }
      for (const { host, st } of parents) {
        const now = lstatSync(host, { throwIfNoEntry: false });
        if (now && now.dev === st.dev && now.ino === st.ino && now.mtimeMs !== st.mtimeMs) await utimes(host, st.atime, st.mtime).catch(() => undefined);
      }
      // proot's own refusals (ptrace, execve of the command, a bind) are its "proot error:" lines,
      // printed only when it could not start or trace the command: an isolation failure
      const refusal = code !== 0 ? /^proot error: (.+)$/m.exec(tail.text()) : null;
      if (refusal && !spec.signal?.aborted) throw new IsolationError(`proot: ${refusal[1]!.trim()}`);
      // proot cannot bind read-only: a step that wrote /etc/hosts or resolv.conf fails afterwards
      const written = await readOnlyEtcWritten(etc, etcBefore);
      if (written.length > 0 && code === 0) throw readOnlyEtcError(written);
      return { exitCode: code, outputTail: tail.text() };
    } finally {
      await removeWorkDir(runDir);
    }
  }
}

export function createProotRunner(options: { workDir?: string } = {}): Runner {
  return new ProotRunner(options.workDir);
}
