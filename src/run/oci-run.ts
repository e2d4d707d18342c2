// One OCI run's wrapper process (the runtime's wrapper: setpriv, unshare, sh; its script is
// OciRunner's, src/run/oci.ts): the run's work directory names, its start, kiln run's early
// handshake (the root's mount commands on fd 5, "ready" back on fd 3, "go" on fd 4, or fd 4
// closed: the wrapper ends before the runtime), its result (the start hook's mark: did the
// container start at all) and what is left to clean afterwards.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { IsolationError, KilnError } from "../errors.js";
import type { RootMount } from "../snapshot/rootfs-types.js";
import { OutputTail, runStreaming, shq, startFailure, type Exec, type ExtraFd } from "./output.js";
import type { RunIO, RunResult } from "./types.js";

/** Where the wrapper reads kiln run's root mount commands (rootMountScript) from. */
export const ROOT_MOUNT_FD = 5;

/** The root's mount, as the wrapper runs it: mount(8) in the root's directory, each argument list tried in turn (the last one's error shown). */
function rootMountScript(root: RootMount): string {
  const tries = root.args.map((a, i) => `mount ${a.map(shq).join(" ")}${i < root.args.length - 1 ? " 2>/dev/null" : ""}`).join(" || ");
  return `cd ${shq(root.cwd)}\n${tries}\ncd /\n`;
}

/** What an OciRun asks of its runner: signal the container, delete a container left behind. */
export interface RunnerHooks {
  kill(wrapperPid: number, sig: NodeJS.Signals, exited: () => boolean): Promise<void>;
  deleteContainer(): Promise<void>;
}

/** The wrapper's arguments (OciRunner.wrapper). */
export type WrapperArgs = { rootfs: string; runDir: string; stateDir: string; id: string; secretSetup: string[]; rootOnFd?: boolean };

/**
 * One run's work directory and wrapper process: its start (with kiln run's early handshake: the
 * root's mount commands on fd 5, "ready" back on fd 3, "go" on fd 4, or fd 4 closed: the wrapper
 * ends before the runtime), its exit and what is left to clean afterwards.
 */
export class OciRun {
  readonly stateDir: string;
  readonly secretDir: string;
  readonly startedFile: string;
  readonly id: string;
  /** The bundle's own directories, made at once. */
  readonly dirs: Promise<unknown>;
  private readonly tail = new OutputTail();
  private running: Promise<number> | undefined;
  private wrapperPid = 0;
  private exited = false;
  private release: (data: Buffer) => void = () => undefined;
  private readonly going = new Promise<Buffer>((resolve) => (this.release = resolve));

  constructor(readonly runDir: string, private readonly io: RunIO, private readonly hooks: RunnerHooks) {
    this.stateDir = join(runDir, "state");
    this.secretDir = join(runDir, "secrets");
    this.startedFile = join(runDir, "started");
    this.id = `kiln-${runDir.slice(-12)}`;
    this.dirs = Promise.all([mkdir(this.stateDir, { mode: 0o700 }), mkdir(this.secretDir, { mode: 0o700 })]);
    this.dirs.catch(() => undefined); // observed by the bundle's writes
  }

  /** Start the wrapper; an abort kills unshare (runStreaming's default), which takes the runtime and the container with it. */
  start(wrapper: Exec, extraFds: ExtraFd[]): Promise<number> {
    const io = this.io;
    this.running = runStreaming(
      wrapper,
      {
        stdout: io.stdout,
        stderr: io.stderr,
        signal: io.signal,
        extraFds,
        ...(io.stdio ? { inherit: { stdin: io.stdio.stdin || io.stdio.tty } } : {}),
        onSpawn: (pid: number) => {
          this.wrapperPid = pid;
          io.onStart?.({ kill: (sig) => this.hooks.kill(pid, sig, () => this.exited) });
        },
        onExit: () => {
          this.exited = true;
          io.onExited?.();
        },
      },
      this.tail,
    );
    this.running.catch(() => undefined); // observed by result() and finish()
    return this.running;
  }

  /**
   * kiln run's start: the wrapper first, which waits for the root's mount commands (sent when
   * `root` settles; nothing when it fails: the wrapper ends, and so does this with root's error),
   * mounts it in its namespace and says ready. The root's path as kiln sees it (through
   * /proc/PID/root) and where the runtime finds it.
   */
  async startOnRoot(root: Promise<RootMount>, wrapper: (w: WrapperArgs) => Promise<Exec>): Promise<{ view: string; target: string }> {
    await this.dirs;
    let ready: () => void = () => undefined;
    const mounted = new Promise<void>((resolve) => (ready = resolve));
    let status = "";
    const mountScript = root.then((r) => Buffer.from(rootMountScript(r)), () => Buffer.alloc(0));
    const running = this.start(await wrapper({ rootfs: "", runDir: this.runDir, stateDir: this.stateDir, id: this.id, secretSetup: [], rootOnFd: true }), [
      {
        read: (b) => {
          status += b.toString();
          if (status.includes("ready")) ready();
        },
      },
      { write: this.going },
      { write: mountScript },
    ]);
    const r = await root; // (a failure ends the wrapper: see finish())
    // the root is mounted in the wrapper's namespace, or the wrapper ended without it
    const code = await Promise.race([mounted.then(() => undefined), running]);
    if (code !== undefined) {
      this.io.signal?.throwIfAborted();
      throw new IsolationError(startFailure(this.tail.text(), code));
    }
    return { view: `/proc/${this.wrapperPid}/root${r.target}`, target: r.target };
  }

  /** The bundle is ready: the wrapper started by startOnRoot runs the runtime. */
  go(): void {
    this.release(Buffer.from("go\n"));
  }

  /**
   * The process's exit status, once the wrapper has ended. The runtime ran kiln's createRuntime
   * hook once the container's namespaces, cgroup and mounts were in place: a run that ends without
   * it could not start (IsolationError, not the command failing).
   */
  async result(): Promise<RunResult> {
    if (!this.running) throw new KilnError("INTERNAL", "internal: the OCI run was never started");
    const code = await this.running;
    const aborted = this.io.signal?.aborted === true;
    if (!aborted && !existsSync(this.startedFile)) throw new IsolationError(startFailure(this.tail.text(), code));
    return { exitCode: aborted && code === 0 ? 137 : code, outputTail: this.tail.text() };
  }

  /** After the run (or instead of it): a wrapper still waiting for "go" ends before the runtime, then a container left behind is deleted. */
  async finish(): Promise<void> {
    this.release(Buffer.alloc(0)); // (its namespace, and the root mounted there, end with it)
    if (!this.running) return;
    await this.running.catch(() => undefined);
    // The container was already deleted inside the namespace (its state directory is gone:
    // nothing to do, and no process to start), or died with it (an abort): its state's pids are
    // the namespace's, so never --force (which signals) from here.
    if (existsSync(join(this.stateDir, this.id))) await this.hooks.deleteContainer();
  }
}

