// End-to-end test helpers for running the compiled kiln CLI (`node bin/kiln ...`) as a child
// process: captures exit code, stdout and stderr; feeds stdin; runs as another user on request.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** The repository root (test/helpers/ is two levels below it). */
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const KILN_BIN = join(REPO_ROOT, "bin", "kiln");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KilnRunOptions {
  cwd?: string;
  /** Bytes written to the child's stdin (then closed). Without it stdin is empty. */
  input?: string | Buffer;
  /** Extra environment (merged over the test's environment; `undefined` removes a variable). */
  env?: Record<string, string | undefined>;
  /** Run as this uid/gid (via setpriv), e.g. 65534 for nobody. */
  asUid?: number;
}

/** Runs any command; never rejects on a non-zero exit. */
export function run(cmd: string, args: string[], options: KilnRunOptions = {}): Promise<RunResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  // A test's SOURCE_DATE_EPOCH must be explicit, never inherited.
  delete env.SOURCE_DATE_EPOCH;
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  let file = cmd;
  let argv = args;
  if (options.asUid !== undefined) {
    file = "setpriv";
    argv = [`--reuid=${options.asUid}`, `--regid=${options.asUid}`, "--clear-groups", "--", cmd, ...args];
  }
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { cwd: options.cwd ?? REPO_ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
    child.stdin.on("error", () => undefined); // the child may exit before reading stdin
    child.stdin.end(options.input ?? "");
  });
}

/** Runs `node bin/kiln ARGS`. */
export function kiln(args: string[], options: KilnRunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [KILN_BIN, ...args], options);
}

/** Runs `node bin/kiln verify DIR`; throws with kiln's output when verification fails. */
export async function verify(dir: string): Promise<string> {
  const r = await kiln(["verify", dir]);
  if (r.code !== 0) throw new Error(`kiln verify ${dir} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Runs a command and throws (with its stderr) unless it exits 0. */
export async function mustRun(cmd: string, args: string[], options: KilnRunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r;
}

/** Throws with kiln's stderr unless the build succeeded; returns the digest kiln printed. */
export function expectBuilt(r: RunResult): string {
  if (r.code !== 0) throw new Error(`kiln build failed (${r.code}): ${r.stderr.trim()}`);
  const digest = r.stdout.trim().split("\n").pop() ?? "";
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`kiln build printed no digest: ${JSON.stringify(r.stdout)}`);
  return digest;
}
