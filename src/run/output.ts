// Child-process plumbing shared by the runners: stream stdout/stderr to the caller, keep the last
// lines of combined output for error messages, pass extra pipes (fd 3, 4, ...: a status channel
// from a setup script, secret bytes to it), report the exit status (128+signal when killed), and
// tie a step's processes to kiln's life (a parent-death signal set with `setpriv --pdeathsig`: the
// kernel sends it when kiln dies, even by SIGKILL).
import { spawn, type SpawnOptions, type StdioPipe } from "node:child_process";
import { existsSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { KilnError } from "../errors.js";

/** Keeps the last `maxBytes` of output and yields its last `lines` lines. */
export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly maxBytes = 16384) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size - this.chunks[0].length >= this.maxBytes) this.size -= (this.chunks.shift() as Buffer).length;
  }
  text(lines = 20): string {
    const all = Buffer.concat(this.chunks).toString("utf8").replace(/\n+$/, "");
    return all.split("\n").slice(-lines).join("\n");
  }
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

export interface Exec {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** An extra pipe for the child (fd 3 onwards, in order): bytes it reads (possibly known only later), or a reader of what it writes. */
export type ExtraFd = { write: Buffer | Promise<Buffer> } | { read: (b: Buffer) => void };

/**
 * `exec` started through util-linux `setpriv --pdeathsig KILL`, which execs it (same process): the
 * kernel sends it SIGKILL when kiln's thread that spawned it dies, whatever way kiln ends. The
 * signal survives exec but not fork, so the process must be one whose death takes the rest with it
 * (`unshare --fork --kill-child`'s namespace init, a supervisor).
 */
export function dieWithKiln(exec: Exec): Exec {
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  if (!setpriv) throw new KilnError("HOST_TOOL_MISSING", "RUN isolation needs util-linux setpriv (Debian package util-linux) to tie the step's processes to kiln's life");
  return { ...exec, cmd: setpriv, args: ["--pdeathsig", "KILL", "--", exec.cmd, ...exec.args] };
}

/**
 * For runners without a pid namespace (plain-chroot, proot): `exec` as its own session and process
 * group that dies with kiln. setpriv gives `setsid` (which execs GNU `timeout`, same process) a
 * parent-death SIGTERM; `timeout` (no time limit: 0) runs the command in that group and, on the
 * signal, sends TERM to the whole group and KILL half a second later, so the step's children go
 * too. Kiln kills the group itself (its leader's pid is the group id) when the step ends or is
 * aborted.
 */
export function groupDiesWithKiln(exec: Exec): Exec {
  const tool = (name: string): string => {
    const p = [`/usr/bin/${name}`, `/bin/${name}`].find((x) => existsSync(x));
    if (!p) throw new KilnError("HOST_TOOL_MISSING", `RUN isolation needs ${name} (Debian packages util-linux and coreutils) to tie the step's processes to kiln's life`);
    return p;
  };
  return { ...exec, cmd: tool("setpriv"), args: ["--pdeathsig", "TERM", "--", tool("setsid"), "--", tool("timeout"), "-k", "0.5", "0", exec.cmd, ...exec.args] };
}

/**
 * The process group of a step without a pid namespace (plain-chroot, proot): `kill()` sends
 * SIGKILL to the whole group (on abort, when its leader exits); `end()` repeats it until no member
 * is left, so a process that was mid-fork when the first signal went out cannot outlive the step
 * and write into the root filesystem while it is being diffed.
 */
export class StepGroup {
  private pgid = 0;

  readonly onSpawn = (pid: number): void => {
    this.pgid = pid;
  };

  readonly kill = (): boolean => {
    if (this.pgid <= 0) return false;
    try {
      process.kill(-this.pgid, "SIGKILL");
      return true;
    } catch {
      return false; // ESRCH: nobody left
    }
  };

  async end(): Promise<void> {
    for (let i = 0; i < 200 && this.kill(); i++) await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Run a command, streaming its output. `onAbort` is called once when `signal` fires (to kill the
 * container the proper way); the promise still waits for the process to exit.
 */
export function runStreaming(
  exec: Exec,
  opts: {
    stdout?: (b: Buffer) => void;
    stderr?: (b: Buffer) => void;
    signal?: AbortSignal;
    onAbort?: () => void;
    onSpawn?: (pid: number) => void;
    onExit?: () => void;
    /** The child uses kiln's own stdout/stderr (and stdin when `stdin`) instead of pipes. */
    inherit?: { stdin: boolean };
    extraFds?: ExtraFd[];
    /** Rewrites stderr before the tail and `stderr` see it (e.g. drops a tracer's own lines). */
    filterStderr?: (b: Buffer) => Buffer;
  },
  tail: OutputTail,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const extra = opts.extraFds ?? [];
    const base: Array<"ignore" | "inherit" | StdioPipe> = opts.inherit ? [opts.inherit.stdin ? "inherit" : "ignore", "inherit", "inherit"] : ["ignore", "pipe", "pipe"];
    const stdio: Array<"ignore" | "inherit" | StdioPipe> = [...base, ...extra.map((): StdioPipe => "pipe")];
    const so: SpawnOptions = { stdio, env: exec.env ?? process.env };
    if (exec.cwd) so.cwd = exec.cwd;
    const child = spawn(exec.cmd, exec.args, so);
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    extra.forEach((x, i) => {
      const stream = child.stdio[3 + i];
      if (!stream) return;
      stream.on("error", () => undefined); // the child may exit before reading
      if ("write" in x) void Promise.resolve(x.write).then((b) => (stream as Writable).end(b), () => (stream as Writable).end());
      else (stream as Readable).on("data", x.read);
    });
    child.stdout?.on("data", (b: Buffer) => {
      tail.push(b);
      opts.stdout?.(b);
    });
    child.stderr?.on("data", (raw: Buffer) => {
      const b = opts.filterStderr ? opts.filterStderr(raw) : raw;
      if (b.length === 0) return;
      tail.push(b);
      opts.stderr?.(b);
    });
    const abort = (): void => {
      if (opts.onAbort) opts.onAbort();
      else child.kill("SIGKILL");
    };
    if (opts.signal?.aborted) abort();
    else opts.signal?.addEventListener("abort", abort, { once: true });
    // called when the process itself ends (its output may stay open in processes it left behind)
    if (opts.onExit) child.on("exit", opts.onExit);
    child.on("error", (e) => {
      opts.signal?.removeEventListener("abort", abort);
      reject(e);
    });
    child.on("close", (code, sig) => {
      opts.signal?.removeEventListener("abort", abort);
      resolve(code ?? 128 + (sig ? SIGNALS[sig] ?? 1 : 1));
    });
  });
}

/** Run a short helper command to completion; resolves with its exit code and stderr. */
export function runQuiet(cmd: string, args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let stdout = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", (e) => resolve({ code: 127, stderr: e.message, stdout }));
    child.on("close", (code) => resolve({ code: code ?? 1, stderr, stdout }));
  });
}

/** Single-quote a string for /bin/sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Why an isolated process did not start, from the output its setup left (the last line a tool
 * printed, e.g. "unshare: unshare failed: Operation not permitted"), else its exit status.
 */
export function startFailure(tailText: string, code: number): string {
  const line = tailText.split("\n").map((l) => l.trim()).filter((l) => l !== "").pop();
  return line ?? `exit code ${code}`;
}
