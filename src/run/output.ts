// Child-process plumbing shared by the runners: stream stdout/stderr to the caller, keep the last
// lines of combined output for error messages, and report the exit status (128+signal when killed).
import { spawn, type SpawnOptions } from "node:child_process";

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
  },
  tail: OutputTail,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const stdio: SpawnOptions["stdio"] = opts.inherit ? [opts.inherit.stdin ? "inherit" : "ignore", "inherit", "inherit"] : ["ignore", "pipe", "pipe"];
    const so: SpawnOptions = { stdio, env: exec.env ?? process.env };
    if (exec.cwd) so.cwd = exec.cwd;
    const child = spawn(exec.cmd, exec.args, so);
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    child.stdout?.on("data", (b: Buffer) => {
      tail.push(b);
      opts.stdout?.(b);
    });
    child.stderr?.on("data", (b: Buffer) => {
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
