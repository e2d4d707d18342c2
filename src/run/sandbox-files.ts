// Per-run files and mount points: writes the generated /etc/hosts and /etc/resolv.conf into the
// run directory (mounted read-only, as BuildKit does; like BuildKit, no /etc/hostname is provided:
// the hostname is the UTS namespace's), places every mount target (resolved through the mounts
// before it, see mount-view.ts), creates missing targets inside the rootfs and removes the ones
// kiln created afterwards — re-resolved after the step and touched only while they are still the
// objects kiln made, restoring the parent directories' times — so none of them enters a layer.
// Also the secrets: shell lines that fill a tmpfs from a pipe (runners that mount), or 0400 files
// in the run directory (runners that cannot).
import { randomBytes } from "node:crypto";
import { lstatSync, statSync, type Stats } from "node:fs";
import { chmod, chown, mkdir, readFile, rmdir, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { KilnError } from "../errors.js";
import { resolveInRoot } from "../snapshot/confine.js";
import { extraHostLines, type ExtraHost } from "./hosts.js";
import { MountView, addSystemMounts } from "./mount-view.js";
import type { RunMount, RunSpec } from "./types.js";

export interface EtcFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
}

const DEFAULT_RESOLV = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";

export function newHostname(): string {
  return randomBytes(6).toString("hex");
}

/** Write hosts and resolv.conf for one run into `runDir` (`hostname` and the `--add-host` entries go into hosts). */
export async function writeEtcFiles(runDir: string, hostname: string, extraHosts: readonly ExtraHost[] = []): Promise<EtcFiles> {
  const hosts = join(runDir, "hosts");
  const resolvConf = join(runDir, "resolv.conf");
  const resolv = async (): Promise<string> => {
    try {
      const host = await readFile("/etc/resolv.conf", "utf8");
      if (/^\s*nameserver\s/m.test(host)) return host;
    } catch {
      /* no host resolv.conf: use the default */
    }
    return DEFAULT_RESOLV;
  };
  // (chmod: 0644 whatever kiln's umask)
  await Promise.all([
    writeFile(
      hosts,
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t${hostname}\n${extraHostLines(extraHosts)}`,
    ).then(() => chmod(hosts, 0o644)),
    resolv().then((text) => writeFile(resolvConf, text)).then(() => chmod(resolvConf, 0o644)),
  ]);
  return { hostname, hosts, resolvConf };
}

/**
 * The /etc files a RUN may read but not write: BuildKit bind-mounts /etc/hosts and
 * /etc/resolv.conf read-only (executor/oci/spec_linux.go withROBind), so a step that writes them
 * fails under Docker. kiln mounts them read-only too (oci, chroot); where nothing can be mounted
 * (plain-chroot, proot) a step that changed one fails after it ran (readOnlyEtcError).
 */
export const READ_ONLY_ETC = ["/etc/hosts", "/etc/resolv.conf"] as const;

/** The error for a step that changed read-only /etc files (plain-chroot, proot). */
export function readOnlyEtcError(paths: readonly string[]): KilnError {
  return new KilnError(
    "RUN_FAILED",
    `the step wrote ${paths.join(" and ")}, which ${paths.length > 1 ? "are" : "is"} read-only during RUN (BuildKit mounts /etc/hosts and /etc/resolv.conf read-only, so this step fails under Docker too)`,
  );
}

/** Contents of the generated read-only files (hosts, resolv.conf), to see afterwards whether a step changed them. */
export async function readOnlyEtcSnapshot(etc: EtcFiles): Promise<Map<string, Buffer>> {
  return new Map([
    ["/etc/hosts", await readFile(etc.hosts)],
    ["/etc/resolv.conf", await readFile(etc.resolvConf)],
  ]);
}

/** Which of the generated read-only files a step changed since `snapshot`. */
export async function readOnlyEtcWritten(etc: EtcFiles, snapshot: Map<string, Buffer>): Promise<string[]> {
  const now = new Map([
    ["/etc/hosts", await readFile(etc.hosts).catch(() => undefined)],
    ["/etc/resolv.conf", await readFile(etc.resolvConf).catch(() => undefined)],
  ]);
  return READ_ONLY_ETC.filter((p) => {
    const a = now.get(p);
    const b = snapshot.get(p);
    return a === undefined || b === undefined || !a.equals(b);
  });
}

/** One object kiln created (or, for a parent, found) inside the rootfs, as it was then. */
interface Known {
  /** Path relative to the rootfs, symlink-free when recorded. */
  rel: string;
  dev: number;
  ino: number;
}

interface Created {
  kind: "dir" | "file";
  /** The parent of the shallowest created component, and its times before the stub was made. */
  parent: Known & { atime: Date; mtime: Date };
  /** Every component kiln created for this stub, shallowest first (the last one is the stub). */
  paths: Known[];
}

/**
 * lstat of `rel` inside `root` without following anything: every component on the way must be a
 * real directory (not a symlink). "unsafe" when one is not (a step replaced it), undefined when
 * the path is gone.
 */
function lstatNoFollow(root: string, rel: string): Stats | "unsafe" | undefined {
  const parts = rel.split("/").filter((p) => p !== "");
  let cur = root;
  for (let i = 0; i < parts.length; i++) {
    cur = posix.join(cur, parts[i] as string);
    let st: Stats | undefined;
    try {
      st = lstatSync(cur, { throwIfNoEntry: false });
    } catch {
      return "unsafe"; // ENOTDIR and friends: something on the way is no longer a directory
    }
    if (st === undefined) return undefined;
    if (i === parts.length - 1) return st;
    if (st.isSymbolicLink() || !st.isDirectory()) return "unsafe";
  }
  return lstatSync(root);
}

function known(root: string, rel: string): Known {
  const st = lstatSync(rel === "" ? root : posix.join(root, rel));
  return { rel, dev: st.dev, ino: st.ino };
}

/** True when `rel` is, right now, the very object recorded (same dev/ino, nothing followed on the way). */
function stillSame(root: string, k: Known): Stats | undefined {
  const st = lstatNoFollow(root, k.rel);
  if (st === undefined || st === "unsafe") return undefined;
  return st.dev === k.dev && st.ino === k.ino ? st : undefined;
}

/** Mount targets kiln created inside a rootfs, to be removed after the run. */
export class MountTargets {
  private readonly created: Created[] = [];
  constructor(private readonly rootfs: string) {}

  /**
   * Make sure in-container path `target` exists (as a directory or an empty file) and return its
   * confined host path (symlinks resolved inside the rootfs).
   */
  async ensure(target: string, kind: "dir" | "file"): Promise<string> {
    const host = await resolveInRoot(this.rootfs, target, { followFinal: true });
    try {
      lstatSync(host); // (as resolveInRoot's own lookups: synchronous, no thread-pool round trip)
      return host;
    } catch {
      /* create it below */
    }
    // Record every component kiln creates (shallowest first), so clean-up can remove exactly
    // those that are still empty stubs afterwards, as BuildKit's mount-stub cleaner does.
    const rel = posix.relative(this.rootfs, host);
    const parts = rel.split("/");
    const missing: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts.slice(0, i + 1).join("/");
      if (missing.length === 0 && lstatSync(posix.join(this.rootfs, p), { throwIfNoEntry: false })) continue;
      missing.push(p);
    }
    const parentRel = posix.dirname(missing[0] ?? rel);
    const parentHost = parentRel === "." ? this.rootfs : posix.join(this.rootfs, parentRel);
    const before = await stat(parentHost);
    if (kind === "dir") await mkdir(host, { recursive: true, mode: 0o755 });
    else {
      await mkdir(posix.dirname(host), { recursive: true, mode: 0o755 });
      await writeFile(host, "", { mode: 0o644, flag: "wx" });
    }
    // Identities are taken after creation (an overlay parent has been copied up by then).
    const parent = { ...known(this.rootfs, parentRel === "." ? "" : parentRel), atime: before.atime, mtime: before.mtime };
    this.created.push({ kind, parent, paths: missing.map((p) => known(this.rootfs, p)) });
    return host;
  }

  /**
   * Remove the stubs ensure() created (newest first) when the step left them empty, and restore
   * the parents' times. A stub the step wrote into (a directory that now has files, a file with
   * content) is the step's change and stays. Every path is resolved again inside the rootfs and
   * acted on only when it is still the object kiln created (no symlink on the way, same dev/ino):
   * a step that replaced a stub's parent by a symlink to a host directory cannot make kiln touch it.
   */
  async cleanup(): Promise<void> {
    while (this.created.length > 0) {
      const c = this.created.pop() as Created;
      let removedAll = true;
      for (let i = c.paths.length - 1; i >= 0; i--) {
        const p = c.paths[i] as Known;
        const now = lstatNoFollow(this.rootfs, p.rel);
        if (now === undefined) continue; // already gone
        const st = stillSame(this.rootfs, p);
        const isStub = st !== undefined && (i === c.paths.length - 1 && c.kind === "file" ? st.isFile() && st.size === 0 : st.isDirectory());
        if (!isStub) {
          removedAll = false;
          break;
        }
        try {
          const host = posix.join(this.rootfs, p.rel);
          if (st.isDirectory()) await rmdir(host);
          else await unlink(host);
        } catch {
          removedAll = false;
          break; // not empty: the step put something there
        }
      }
      if (removedAll && stillSame(this.rootfs, c.parent)) {
        const host = c.parent.rel === "" ? this.rootfs : posix.join(this.rootfs, c.parent.rel);
        await utimes(host, c.parent.atime, c.parent.mtime).catch(() => undefined);
      }
    }
  }
}

/** Create the working directory inside the rootfs when missing (Docker does this for WORKDIR). */
export async function ensureCwd(rootfs: string, cwd: string): Promise<void> {
  const host = await resolveInRoot(rootfs, cwd, { followFinal: true });
  if (posix.resolve(host) === posix.resolve(rootfs)) return; // the root itself (WORKDIR /): it exists
  await mkdir(host, { recursive: true, mode: 0o755 });
}

/** One mount of a RUN, placed: where it goes and whether kiln must create its target in the namespace. */
export interface PlacedRunMount {
  mount: RunMount;
  /** In-container target, symlink-free once the mounts before it are in place. */
  target: string;
  /** rootfs + target: the path to mount on from outside (chroot's setup script). */
  host: string;
  isDir: boolean;
  /** The target is missing inside an earlier (writable) mount: create it there once that is mounted. */
  createInside: boolean;
}

export interface PlacedMounts {
  proc: string;
  dev: string;
  sys: string;
  /** The generated /etc files (bind-mounted files) then the RUN's own mounts, in mount order. */
  mounts: PlacedRunMount[];
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Resolve every mount target of a run in mount order (kiln's /proc, /dev, /sys, the /etc files,
 * then the RUN's mounts) through a MountView, creating stubs (via `targets`) only for targets that
 * lie in the rootfs itself. Throws a KilnError naming the mount for a target that cannot be placed.
 */
export async function placeMounts(spec: RunSpec, targets: MountTargets, etc: EtcFiles): Promise<PlacedMounts> {
  const view = new MountView(spec.rootfs);
  const system = async (t: string): Promise<string> => view.resolve(t, `kiln's ${t} mount`, { followFinal: true }).path;
  const at = { proc: await system("/proc"), dev: await system("/dev"), sys: await system("/sys") };
  const proc = await targets.ensure(at.proc, "dir");
  const dev = await targets.ensure(at.dev, "dir");
  const sys = await targets.ensure(at.sys, "dir");
  addSystemMounts(view, at);
  const all: RunMount[] = [
    { type: "bind", source: etc.hosts, target: "/etc/hosts", readonly: true },
    { type: "bind", source: etc.resolvConf, target: "/etc/resolv.conf", readonly: true },
    ...(spec.mounts ?? []),
  ];
  const mounts: PlacedRunMount[] = [];
  for (const m of all) {
    const label = m.label ?? `the ${m.target} mount`;
    if (m.type === "bind" && !m.source) throw new KilnError("RUN_MOUNT_INVALID", `${label}: bind mount has no source`);
    if (m.type === "secret" && m.data === undefined) throw new KilnError("RUN_MOUNT_INVALID", `${label}: secret mount has no content`);
    const isDir = m.type === "tmpfs" || (m.type === "bind" && isDirectory(m.source as string));
    const r = view.resolve(m.target, label, { followFinal: true });
    const createInside = !r.exists && r.within !== undefined;
    if (!r.exists && !r.within) await targets.ensure(r.path, isDir ? "dir" : "file");
    mounts.push({ mount: m, target: r.path, host: posix.join(spec.rootfs, r.path), isDir, createInside });
    view.add({
      target: r.path,
      kind: m.type === "tmpfs" ? "tmpfs" : isDir ? "bind-dir" : "bind-file",
      ...(m.type === "bind" && m.source ? { source: m.source } : {}),
      writable: m.type === "tmpfs" || (m.type === "bind" && !m.readonly),
    });
  }
  return { proc, dev, sys, mounts };
}

/** The fd a setup script reads the secrets' bytes from (see secretLines) and the one it reports on. */
export const SECRETS_FD = 4;
export const STATUS_FD = 3;

/**
 * Shell lines that give a run's secret mounts their files without a host file: a tmpfs mounted at
 * `dir` (run them inside the step's private mount namespace, so the tmpfs exists only there and
 * vanishes with it, even when kiln is killed) filled from fd SECRETS_FD, which carries `data` (the
 * secrets' bytes, in mount order). `files` maps each secret mount to its file in `dir`.
 */
export function secretLines(placed: PlacedMounts, dir: string): { lines: string[]; data: Buffer; files: Map<PlacedRunMount, string> } {
  const secrets = placed.mounts.filter((p) => p.mount.type === "secret");
  const files = new Map<PlacedRunMount, string>();
  if (secrets.length === 0) return { lines: [], data: Buffer.alloc(0), files };
  const data = Buffer.concat(secrets.map((p) => p.mount.data as Buffer));
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const lines = [`mount -t tmpfs -o nosuid,nodev,noexec,mode=700,size=${data.length + 65536} kiln-secrets ${q(dir)}`];
  secrets.forEach((p, i) => {
    const file = posix.join(dir, String(i));
    files.set(p, file);
    const m = p.mount;
    lines.push(`head -c ${(m.data as Buffer).length} <&${SECRETS_FD} > ${q(file)}`);
    lines.push(`chown ${m.uid ?? 0}:${m.gid ?? 0} ${q(file)}; chmod ${(m.mode ?? 0o400).toString(8)} ${q(file)}`);
  });
  lines.push(`exec ${SECRETS_FD}<&-`);
  return { lines, data, files };
}

/**
 * For runners that cannot mount (plain-chroot, proot, a rootless OCI runtime): each secret as a
 * file in `dir` (a directory only kiln can enter, removed with the run), with its mode and owner.
 */
export async function writeSecretFiles(mounts: readonly RunMount[], dir: string): Promise<Map<RunMount, string>> {
  const files = new Map<RunMount, string>();
  let i = 0;
  for (const m of mounts) {
    if (m.type !== "secret") continue;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, String(i++));
    await writeFile(file, m.data ?? Buffer.alloc(0), { mode: 0o600, flag: "wx" });
    if (m.uid !== undefined || m.gid !== undefined) await chown(file, m.uid ?? 0, m.gid ?? 0);
    await chmod(file, m.mode ?? 0o400);
    files.set(m, file);
  }
  return files;
}
