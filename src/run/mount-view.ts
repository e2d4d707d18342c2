// Where a RUN's mount targets really are: resolves each target inside the container as the
// kernel will see it once the mounts before it are in place (openat2 RESOLVE_IN_ROOT semantics
// over the whole mount table, not just the rootfs). The walk goes component by component; when it
// enters an earlier mount's target it continues inside that mount's source (a bind: its host
// directory; a tmpfs: empty, so the rest will be created fresh), and symlinks found anywhere are
// resolved relative to the container root. Targets that cannot be placed safely (under /proc,
// /sys, kiln's /dev nodes, below a file, or needing a new directory in a read-only bind) are
// refused with a one-line error naming the mount.
import { lstatSync, readlinkSync, type Stats } from "node:fs";
import { posix } from "node:path";
import { KilnError } from "../errors.js";
import { MAX_SYMLINKS } from "../snapshot/confine.js";

export type PlacedKind = "bind-dir" | "bind-file" | "tmpfs" | "opaque";

export interface PlacedMount {
  /** In-container target, already resolved (absolute, no symlinks on the way). */
  target: string;
  kind: PlacedKind;
  /** Host directory or file behind a bind mount. */
  source?: string;
  /** Whether the container (and kiln's own setup) may create entries inside it. */
  writable: boolean;
}

export interface ResolvedTarget {
  /** The target inside the container: absolute, symlink-free once the earlier mounts are in place. */
  path: string;
  /** True when something (a file, directory or earlier mount point) already exists there. */
  exists: boolean;
  /** The earlier mount the target lies in (undefined: in the rootfs itself). */
  within?: PlacedMount;
}

function components(p: string): string[] {
  return p.split("/").filter((c) => c !== "" && c !== ".");
}

function isUnder(dir: string, p: string): boolean {
  return dir === "/" || p === dir || p.startsWith(`${dir}/`);
}

/** The mount table of one RUN, in the order the mounts are made. */
export class MountView {
  private readonly mounts: PlacedMount[] = [];

  constructor(private readonly rootfs: string) {}

  add(m: PlacedMount): void {
    this.mounts.push(m);
  }

  /** The innermost mount containing in-container path `p` (the latest one wins on equal targets). */
  mountAt(p: string): PlacedMount | undefined {
    let best: PlacedMount | undefined;
    for (const m of this.mounts) if (isUnder(m.target, p) && (!best || m.target.length >= best.target.length)) best = m;
    return best;
  }

  /**
   * Resolve `target` (absolute in-container path) through the rootfs and the earlier mounts.
   * `label` names the mount in errors (e.g. `--mount=type=tmpfs,target=/x`).
   */
  resolve(target: string, label: string, options: { followFinal?: boolean } = {}): ResolvedTarget {
    const refuse = (why: string): never => {
      throw new KilnError("RUN_MOUNT_INVALID", `${label}: target ${target} ${why}`);
    };
    const resolved: string[] = [];
    const pending = components(target).reverse();
    let links = 0;
    // resolved.length at the first component found missing (null: everything so far exists)
    let missingAt: number | null = null;
    while (pending.length > 0) {
      const c = pending.pop() as string;
      if (c === "..") {
        resolved.pop();
        if (missingAt !== null && resolved.length < missingAt) missingAt = null; // back on real ground
        continue;
      }
      const isFinal = pending.length === 0;
      resolved.push(c);
      const here = `/${resolved.join("/")}`;
      const m = this.mountAt(here);
      if (m?.kind === "opaque") refuse(`lies on ${m.target}, which kiln provides itself`);
      if (m && m.target === here) {
        // an earlier mount point: it exists and is what that mount put there
        if (!isFinal && m.kind === "bind-file") refuse(`goes through ${m.target}, a mounted file`);
        missingAt = null;
        continue;
      }
      if (missingAt !== null) continue;
      if (m?.kind === "tmpfs") {
        missingAt = resolved.length; // a fresh tmpfs is empty: the rest is created inside it
        continue;
      }
      const base = m ? (m.source as string) : this.rootfs;
      const rel = m ? here.slice(m.target.length + (m.target === "/" ? 0 : 1)) : here.slice(1);
      const host = rel === "" ? base : posix.join(base, rel);
      let st: Stats | undefined;
      try {
        st = lstatSync(host, { throwIfNoEntry: false });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOTDIR") throw err;
        refuse(`goes through something that is not a directory`);
      }
      if (st === undefined) {
        missingAt = resolved.length;
        continue;
      }
      if (st.isSymbolicLink() && (!isFinal || options.followFinal)) {
        if (++links > MAX_SYMLINKS) refuse("has too many levels of symbolic links");
        resolved.pop();
        const link = readlinkSync(host);
        if (link.startsWith("/")) resolved.length = 0; // absolute: from the container's root
        const tc = components(link);
        for (let i = tc.length - 1; i >= 0; i--) pending.push(tc[i] as string);
        continue;
      }
      if (!isFinal && !st.isDirectory()) refuse(`goes through ${here}, which is not a directory`);
    }
    const path = `/${resolved.join("/")}`;
    const missing = missingAt !== null;
    if (path === "/") refuse("is the container's root");
    const within = this.mountAt(path);
    if (missing && within && !within.writable) {
      refuse(`does not exist inside the read-only mount at ${within.target} (kiln never writes into a mount's source)`);
    }
    return { path, exists: !missing, ...(within ? { within } : {}) };
  }
}

/** What kiln mounts under /dev itself (both isolations): targets on or through these are refused. */
export const DEV_OPAQUE = ["null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "fd", "stdin", "stdout", "stderr", "mqueue", ".kiln"];

/**
 * Record kiln's own /proc, /dev (a tmpfs with its nodes, devpts and /dev/shm) and /sys at the
 * places they were resolved to (`at`: in-container, symlink-free).
 */
export function addSystemMounts(view: MountView, at: { proc: string; dev: string; sys: string }): void {
  view.add({ target: at.proc, kind: "opaque", writable: false });
  view.add({ target: at.dev, kind: "tmpfs", writable: true });
  for (const n of DEV_OPAQUE) view.add({ target: posix.join(at.dev, n), kind: "opaque", writable: false });
  view.add({ target: posix.join(at.dev, "shm"), kind: "tmpfs", writable: true });
  view.add({ target: at.sys, kind: "opaque", writable: false });
}
