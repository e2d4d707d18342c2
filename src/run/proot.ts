// proot isolation: ptrace path translation (Debian package proot) for pods where neither
// namespaces nor chroot(2) are allowed, e.g. a non-root pod. `proot -0` fakes root, `-r` the
// rootfs; /proc, a few /dev nodes, the generated /etc files and the RUN's mounts are bound by path
// translation (read-only sources are bound from private copies: proot cannot make a bind
// read-only). A foreign platform's step runs under `proot -q qemu-ARCH-static` (no binfmt_misc).
// Files a step creates are owned on disk by kiln's uid: idMap maps it back to root.
// As non-root, owners the step sets (chown to another id) cannot be set on disk: the step runs
// under fakeroot (fakeroot.ts), whose record the snapshot applies; where the image cannot load
// it, proot traces the step's system calls and a chown to another id fails the step
// (chown-trace.ts). Not a security boundary against the step (ptrace translation can be evaded): the pod is.
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
import { staticBusybox } from "./chroot.js";
import { ChownTrace } from "./chown-trace.js";
import { GUEST_DIR, GUEST_LIB, hostFakeroot, imageCanPreload, startFaked, type FakedSession } from "./fakeroot.js";
import { resolveCommand } from "./plain-chroot.js";
import type { RecordedOwners } from "../snapshot/recorded-owners.js";

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
    let faked: FakedSession | undefined;
    try {
      const user = spec.resolvedUser ?? (await resolveUser(spec.rootfs, spec.user));
      if (this.uid !== 0 && (user.uid !== 0 || user.gid !== 0)) {
        throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "proot" as non-root kiln cannot run a step as USER ${spec.user}: its files would be recorded with the wrong owner (run kiln as root, or drop USER before this RUN)`);
      }
      await ensureCwd(spec.rootfs, spec.cwd);
      const etc = await writeEtcFiles(runDir, spec.hostname ?? newHostname(), spec.extraHosts);
      const etcBefore = await readOnlyEtcSnapshot(etc);
      const args = spec.qemu !== undefined ? ["-q", spec.qemu] : [];
      args.push(user.uid === 0 ? "-0" : `-i`);
      if (user.uid !== 0) args.push(`${user.uid}:${user.gid}`);
      // non-root kiln: how the owners the step sets are kept (fakeroot) or refused (a trace)
      let argv = spec.argv;
      let trace: ChownTrace | undefined;
      let traceWhy = "";
      if (this.uid !== 0) {
        const fr = hostFakeroot();
        const busybox = staticBusybox();
        const can = !fr ? "fakeroot is not installed (Debian package fakeroot)" : !busybox ? "no static busybox on the host" : await imageCanPreload(spec.rootfs, fr.lib);
        if (can === true && fr && busybox) {
          faked = await startFaked(fr.faked, join(runDir, "faked.save"));
          args.push("-b", `${fr.lib}:${GUEST_LIB}`, "-b", `${busybox}:${GUEST_DIR}/busybox`);
          const preload = spec.env.find((e) => e.startsWith("LD_PRELOAD="))?.slice("LD_PRELOAD=".length);
          // busybox env (static: no preload of its own) sets the preload for the command only,
          // so proot itself (a host program) does not load it
          argv = [`${GUEST_DIR}/busybox`, "env", `LD_PRELOAD=${GUEST_LIB}${preload ? ` ${preload}` : ""}`, `FAKEROOTKEY=${faked.key}`,
            await resolveCommand(spec.rootfs, spec.argv[0] ?? "", spec.env), ...spec.argv.slice(1)];
        } else {
          trace = new ChownTrace();
          traceWhy = typeof can === "string" ? can : "fakeroot cannot be used";
          args.unshift("-v", "3");
          spec.stderr?.(Buffer.from(`kiln: proot: fakeroot cannot record owners in this image (${traceWhy}): a chown to another id fails the step\n`));
        }
      }
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
      args.push(...argv);
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
      let recordedOwners: RecordedOwners | undefined;
      try {
        code = await runStreaming(
          withRlimits(groupDiesWithKiln({ cmd: proot, args, env }), spec.ulimits),
          {
            stdout: spec.stdout, stderr: spec.stderr, signal: spec.signal, onAbort: group.kill, onExit: group.kill, onSpawn: group.onSpawn,
            ...(trace ? { filterStderr: trace.filter } : {}),
          },
          tail,
        );
      } finally {
        await group.end();
        // the step's processes are gone: the record is complete
        if (faked) recordedOwners = await faked.stop();
      }
      if (trace) {
        const rest = trace.flush();
        if (rest.length > 0) {
          tail.push(rest);
          spec.stderr?.(rest);
        }
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
      if (trace?.first && code === 0 && !spec.signal?.aborted) {
        const c = trace.first;
        const ids = [c.uid >= 0 ? `uid ${c.uid}` : "", c.gid >= 0 ? `gid ${c.gid}` : ""].filter((x) => x !== "").join(", ");
        throw new KilnError("OWNER_UNRECORDABLE",
          `${c.syscall} to ${ids} cannot be recorded by isolation "proot" as non-root: ${traceWhy}, and fakeroot needs a glibc image of the host's platform (run kiln as root, or where another isolation works)`);
      }
      return { exitCode: code, outputTail: tail.text(), ...(recordedOwners ? { recordedOwners } : {}) };
    } finally {
      await faked?.stop().catch(() => undefined); // a step that failed before it ran
      await removeWorkDir(runDir);
    }
  }
}

export function createProotRunner(options: { workDir?: string } = {}): Runner {
  return new ProotRunner(options.workDir);
}
