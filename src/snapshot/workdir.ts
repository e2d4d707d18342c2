// Kiln-owned work directories (root filesystems, run bundles) with an owner file, and removal of
// the ones a killed build left behind: containers its runtime still lists are deleted, mounts
// under them are detached, then the tree goes. No process is signalled by a pid read from a file.
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { spawn, spawnSync } from "node:child_process";
import { join, resolve } from "node:path";

/** The file in every kiln work directory naming the process that owns it. */
export const OWNER_FILE = "kiln.owner";

/** Kinds of work directory kept under the cache directory. */
export const WORK_KINDS = ["rootfs", "run"] as const;

function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // field 22 (starttime), after the ")" that ends the command name
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** Create `<base>/<random id>` with an owner file for this process; returns its path. */
export async function createWorkDir(base: string, prefix = ""): Promise<string> {
  const dir = join(resolve(base), `${prefix}${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, OWNER_FILE), `${process.pid} ${processStartTime(process.pid) ?? "?"}\n`);
  return dir;
}

/** True while the process recorded in `dir`'s owner file is still the same running process. */
export async function ownerAlive(dir: string): Promise<boolean> {
  return (await ownerState(dir)) === "alive";
}

/**
 * Whose `dir` is: "alive" (its owner file names this or another running process), "gone" (a
 * complete owner file naming a process that has ended, or none on a directory older than a
 * minute) or "new": made moments ago, its owner file not (fully) written yet (createWorkDir writes
 * it just after the mkdir, and a cleanup reading in between must leave the directory alone). The
 * file is read once: a second read could see it complete where the first saw it empty.
 */
async function ownerState(dir: string): Promise<"alive" | "gone" | "new"> {
  const text = await readFile(join(dir, OWNER_FILE), "utf8").catch(() => "");
  const m = /^(\d+) (\S+)\n$/.exec(text);
  if (!m) {
    const st = await stat(dir).catch(() => undefined);
    return st !== undefined && Date.now() - st.mtimeMs < 60_000 ? "new" : "gone";
  }
  const now = processStartTime(Number(m[1]));
  return now !== null && (m[2] === "?" || now === m[2]) ? "alive" : "gone";
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  let info: string;
  try {
    info = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const prefix = resolve(dir);
  const out: string[] = [];
  for (const line of info.split("\n")) {
    const f = line.split(" ");
    if (f.length < 5) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === prefix || mp.startsWith(prefix + "/")) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * Delete containers an OCI runtime still tracks in `<dir>/state` (through the runtime's own state,
 * which checks the process's identity, never a pid kiln read from a file). A dead build's step
 * processes are already gone: they die with kiln (see run/output.ts, dieWithKiln).
 */
function stopLeftovers(dir: string): void {
  const state = join(dir, "state");
  for (const rt of ["crun", "runc"]) {
    const list = spawnSync(rt, [`--root=${state}`, "list", "-q"], { encoding: "utf8" });
    if (list.status !== 0 || typeof list.stdout !== "string") continue;
    for (const id of list.stdout.split("\n").map((l) => l.trim()).filter((l) => l !== "")) {
      // without --force: a stopped container is removed, nothing is ever signalled
      spawnSync(rt, [`--root=${state}`, "delete", id], { stdio: "ignore" });
    }
  }
}

/**
 * `rm -rf` on one file system (a root filesystem can hold 100,000s of files: coreutils rm removes
 * them about four times faster than fs.rm); failures are left to the fs.rm that follows.
 */
export function removeTree(dir: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn("rm", ["-rf", "--one-file-system", "--", dir], { stdio: "ignore" });
    child.on("error", () => resolve());
    child.on("close", () => resolve());
  });
}

/**
 * Remove work directory `dir` off the caller's critical path: renamed at once (same parent, so
 * `cleanupStale` still finds it by its owner file once this process is gone), then removed by a
 * detached `rm -rf` that may outlive kiln. Only for a tree with nothing mounted below it; false
 * (nothing done) otherwise or when the rename fails, and the caller removes it itself.
 */
export async function removeWorkDirLater(dir: string): Promise<boolean> {
  if (mountsUnder(dir).length > 0) return false;
  const gone = `${dir}-removing`;
  try {
    await rename(dir, gone);
  } catch {
    return false;
  }
  try {
    const child = spawn("rm", ["-rf", "--one-file-system", "--", gone], { stdio: "ignore", detached: true });
    child.on("error", () => undefined);
    child.unref();
  } catch {
    // the next build's cleanupStale removes it
  }
  return true;
}

/**
 * Detach every mount under `dir` and remove the tree. `small`: the caller knows it holds a few
 * dozen entries at most (a run bundle, a container's root filesystem work directory whose upper
 * is small): removed with synchronous calls, well under a millisecond, where a thread-pool round
 * trip per entry adds up to several (kiln run's start-to-exit time).
 */
export async function removeWorkDir(dir: string, options: { small?: boolean } = {}): Promise<void> {
  for (const mp of mountsUnder(dir)) spawnSync("umount", ["-l", mp], { stdio: "ignore" });
  if (options.small) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  else await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * Remove work directories under `<cacheDir>/{rootfs,run}` whose owner process is gone (a
 * SIGKILLed build). Returns the removed paths. Directories of live builds are left alone.
 */
export async function cleanupStale(cacheDir: string, hooks: Array<(dir: string) => Promise<void>> = []): Promise<string[]> {
  const removed: string[] = [];
  for (const kind of WORK_KINDS) {
    const base = join(cacheDir, kind);
    let names: string[];
    try {
      names = await readdir(base);
    } catch {
      continue;
    }
    for (const n of names) {
      const dir = join(base, n);
      if ((await ownerState(dir)) !== "gone") continue;
      stopLeftovers(dir);
      for (const h of hooks) await h(dir).catch(() => undefined);
      await removeWorkDir(dir);
      removed.push(dir);
    }
  }
  return removed;
}
