// overlayfs mounts for the overlay snapshotter: mounting a stack of lower directories (with an
// upper and work directory, or read-only), unmounting, and a once-per-directory probe that tells
// whether overlay mounts work there (root, a kernel with overlayfs, a file system that can hold
// an upper directory: not overlayfs itself). Lower directories are passed as paths relative to
// the mount's working directory (short `l/<n>` symlinks, as Docker's overlay2 does), so even
// hundreds of layers fit in the one page of mount options the kernel accepts.
import { spawn } from "node:child_process";
import { mkdir, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { createWorkDir, removeWorkDir } from "./workdir.js";

export interface OverlayMount {
  /** Directory the relative paths below are resolved from. */
  cwd: string;
  /** Lower directories, topmost first (relative to cwd). At least one. */
  lowers: string[];
  /** Upper and work directories (relative to cwd); omitted for a read-only view. */
  upper?: string;
  work?: string;
  /** Absolute mount point. */
  target: string;
}

/** Options that keep the upper directory a plain description of the change (no redirects, no metadata-only copies). */
const RW_OPTIONS = ["index=off", "redirect_dir=off", "metacopy=off"];
/** Skip syncs to the upper (kernel 5.10+): a step's upper is thrown away after a crash anyway. */
let volatileWorks = true;

function run(cmd: string, args: string[], cwd?: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    // LC_ALL=C: mount(8) loads no locale files (its messages, English, are the same)
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", (err) => resolve({ code: 127, stderr: err.message }));
    child.on("close", (code) => resolve({ code: code ?? 1, stderr }));
  });
}

/** The -o options of `m`'s mount, with or without "volatile" (upper and work directories only). */
function overlayOptions(m: OverlayMount, withVolatile: boolean): string {
  const rw = m.upper !== undefined && m.work !== undefined;
  // nodev: no device node of a layer opens through the root (the runners' own nodev bind is then not needed)
  const opts = [`lowerdir=${m.lowers.join(":")}`, "nodev"];
  if (rw) opts.push(`upperdir=${m.upper}`, `workdir=${m.work}`, ...RW_OPTIONS, ...(withVolatile ? ["volatile"] : []));
  else opts.unshift("ro");
  return opts.join(",");
}

/**
 * The mount(8) argument lists that mount `m` (run in `m.cwd`), to try in order: with "volatile"
 * first where this kernel may have it, then without. For a runner that mounts the root in its own
 * mount namespace.
 */
export function overlayMountArgs(m: OverlayMount): string[][] {
  if (m.lowers.length === 0) throw new KilnError("INTERNAL", "mountOverlay: no lower directory");
  const rw = m.upper !== undefined && m.work !== undefined;
  const variants = rw && volatileWorks ? [true, false] : [false];
  return variants.map((v) => ["-t", "overlay", "overlay", "-o", overlayOptions(m, v), m.target]);
}

export async function mountOverlay(m: OverlayMount): Promise<void> {
  if (m.lowers.length === 0) throw new KilnError("INTERNAL", "mountOverlay: no lower directory");
  const rw = m.upper !== undefined && m.work !== undefined;
  const options = (withVolatile: boolean): string => overlayOptions(m, withVolatile);
  let r = await run("mount", ["-t", "overlay", "overlay", "-o", options(rw && volatileWorks), m.target], m.cwd);
  if (r.code !== 0 && rw && volatileWorks) {
    // an older kernel without "volatile": mount without it from now on
    const again = await run("mount", ["-t", "overlay", "overlay", "-o", options(false), m.target], m.cwd);
    if (again.code === 0) volatileWorks = false;
    r = again.code === 0 ? again : r;
  }
  if (r.code !== 0) throw new KilnError("SNAPSHOT_MOUNT_FAILED", `overlay mount on ${m.target} failed: ${r.stderr.trim().split("\n")[0] ?? `exit ${r.code}`}`);
}

/** Unmount `target`; a busy mount is detached lazily instead. */
export async function unmount(target: string): Promise<void> {
  const r = await run("umount", [target]);
  if (r.code === 0) return;
  const lazy = await run("umount", ["-l", target]);
  if (lazy.code !== 0) throw new KilnError("SNAPSHOT_MOUNT_FAILED", `unmounting ${target} failed: ${r.stderr.trim().split("\n")[0] ?? `exit ${r.code}`}`);
}

const probes = new Map<string, Promise<string | null>>();

/**
 * Whether overlay mounts with an upper directory work under `base` (a directory kiln owns):
 * null when they do, else the reason they do not. Tried once per directory per process.
 */
/** Take `answer` (e.g. remembered from an earlier process) as the probe's for `base` in this process. */
export function primeOverlayProbe(base: string, answer: string | null): void {
  if (!probes.has(base)) probes.set(base, Promise.resolve(answer));
}

export function overlayUnsupported(base: string): Promise<string | null> {
  let p = probes.get(base);
  if (!p) {
    p = probe(base);
    probes.set(base, p);
  }
  return p;
}

async function probe(base: string): Promise<string | null> {
  if (process.platform !== "linux") return "overlayfs needs Linux";
  if (process.getuid?.() !== 0) return "overlay mounts need root (rootless builds use the dir snapshotter)";
  let work: string;
  try {
    work = await createWorkDir(base, "probe-");
  } catch (err) {
    return `cannot create ${base}: ${(err as Error).message}`;
  }
  try {
    await Promise.all(["lower", "upper", "work", "merged", "l"].map((d) => mkdir(join(work, d))));
    // extracted layers hold whiteouts (0/0 character devices) and opaque markers (trusted xattrs)
    const wh = await run("mknod", [join(work, "lower", "wh"), "c", "0", "0"]);
    if (wh.code !== 0) return `cannot create overlayfs whiteouts under ${base}: ${wh.stderr.trim() || `mknod exit ${wh.code}`}`;
    const xa = await run("setfattr", ["-n", "trusted.overlay.opaque", "-v", "y", join(work, "lower")]);
    if (xa.code !== 0) return `cannot set trusted xattrs under ${base}: ${xa.stderr.trim() || `setfattr exit ${xa.code}`}`;
    await symlink(join(work, "lower"), join(work, "l", "0"));
    await mountOverlay({ cwd: work, lowers: ["l/0"], upper: "upper", work: "work", target: join(work, "merged") });
    await unmount(join(work, "merged"));
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await removeWorkDir(work).catch(() => rm(work, { recursive: true, force: true }));
  }
}
