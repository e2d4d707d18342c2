// `git status` run by a small shell that lives as long as the process: whether a checkout's work
// tree has changes, for the provenance (vcs.ts). Forking a Node process of a hundred megabytes
// or more costs it ~2 ms of CPU each time (the fork, then the copy-on-write faults after it);
// forking a shell costs the shell little. So a process that asks more than once forks once more,
// for a `sh` that reads one directory a line and answers `dirty`, `clean` or `failed` a line,
// and later builds only write to it. The shell never keeps the process alive (unref'd while
// nothing is asked; it ends when its stdin closes), is started anew when the environment changes
// (git reads HOME, XDG_*, GIT_*), and is ended, with its git, when a caller's signal aborts. It
// answers one question at a time; its answer is undefined when it cannot serve (the process's
// first question, busy with another build's, a directory with a newline in its name, the shell
// gone): the caller then runs git itself. git runs as vcs.ts runs it: no fsmonitor, no prompts, no
// optional locks, stderr dropped; its output goes to a file of the shell's own (a much changed
// tree's status can be large).
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "node:net";
import type { Readable, Writable } from "node:stream";

export type StatusAnswer = "dirty" | "clean" | "failed";

// status.showStash off: then any output at all is a change
const SCRIPT = `while IFS= read -r d; do
  if git -c core.fsmonitor=false -c status.showStash=false -C "$d" status --porcelain=v2 --untracked-files=normal >"$KILN_STATUS_OUT" 2>/dev/null; then
    if [ -s "$KILN_STATUS_OUT" ]; then echo dirty; else echo clean; fi
  else
    echo failed
  fi
done
rm -f "$KILN_STATUS_OUT"`;

interface Pending {
  resolve(answer: StatusAnswer | undefined): void;
}

class StatusShell {
  readonly env: string;
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private readonly pending: Pending[] = [];
  private readonly out: string;
  private buffered = "";
  gone = false;

  constructor(env: NodeJS.ProcessEnv, key: string) {
    this.env = key;
    this.out = join(tmpdir(), `kiln-git-status-${process.pid}-${randomBytes(6).toString("hex")}`);
    this.child = spawn("/bin/sh", ["-c", SCRIPT], {
      stdio: ["pipe", "pipe", "ignore"],
      // its own process group: ending it ends the git it runs too
      detached: true,
      env: { ...env, KILN_STATUS_OUT: this.out, GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0", LC_ALL: "C" },
    });
    this.child.on("error", () => this.end());
    this.child.on("exit", () => this.end());
    this.child.stdin.on("error", () => this.end());
    this.child.stdout.setEncoding("utf8");
    this.child.stdout.on("data", (text: string) => {
      this.buffered += text;
      for (let nl = this.buffered.indexOf("\n"); nl >= 0; nl = this.buffered.indexOf("\n")) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const p = this.pending.shift();
        p?.resolve(line === "dirty" || line === "clean" || line === "failed" ? line : undefined);
      }
      this.idle();
    });
    this.idle();
  }

  /** Unref'd while nothing is asked: the shell alone never keeps the process running. */
  private idle(): void {
    // the pipes are sockets, which hold the event loop as the process does
    const pipes = [this.child.stdout, this.child.stdin] as unknown as Socket[];
    if (this.pending.length > 0) {
      this.child.ref();
      for (const p of pipes) p.ref();
    } else {
      this.child.unref();
      for (const p of pipes) p.unref();
    }
  }

  /** A question is being answered (one at a time: a slow status never holds up another build's). */
  get busy(): boolean {
    return this.pending.length > 0;
  }

  ask(dir: string): Promise<StatusAnswer | undefined> {
    if (this.gone) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.pending.push({ resolve });
      this.idle();
      this.child.stdin.write(`${dir}\n`);
    });
  }

  /** End the shell (and the git it runs): what is still asked is answered undefined. */
  end(): void {
    if (this.gone) return;
    this.gone = true;
    if (this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(this.out, { force: true });
    for (const p of this.pending.splice(0)) p.resolve(undefined);
    if (shell === this) shell = undefined;
  }
}

let shell: StatusShell | undefined;
/** Questions asked in this process: the first is left to the caller (see shellStatus). */
let asked = 0;

/**
 * Whether the work tree at `dir` has changes, as `git status --porcelain=v2
 * --untracked-files=normal` tells (failed: git does not take it as a checkout), asked of the
 * process's status shell; undefined when the shell cannot answer (then run git directly).
 * `signal` aborting ends the shell and so the git it runs (the next call starts another). The
 * process's first question is answered undefined too: a process that builds once never starts
 * the shell.
 */
export async function shellStatus(dir: string, signal?: AbortSignal): Promise<StatusAnswer | undefined> {
  // a process that reads one checkout once (a `kiln build`) forks once, for git itself: the shell
  // is for the questions after the first
  if (asked++ === 0 || dir.includes("\n") || dir.includes("\0") || signal?.aborted) return undefined;
  const key = JSON.stringify(Object.entries(process.env).filter(([k]) => /^(HOME|XDG_.*|GIT_.*|PATH|PREFIX)$/.test(k)).sort());
  if (shell && shell.env !== key) shell.end();
  let current: StatusShell;
  try {
    current = shell ??= new StatusShell(process.env, key);
  } catch {
    return undefined;
  }
  if (current.busy) return undefined; // answering another build: this one runs git itself
  const onAbort = (): void => current.end();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await current.ask(dir);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
