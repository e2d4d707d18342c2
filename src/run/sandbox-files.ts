// Per-run files and mount points: writes the generated /etc/hosts, /etc/resolv.conf and
// /etc/hostname into the run directory, creates missing mount targets inside the rootfs
// (confined) and removes the ones kiln created afterwards — restoring the parent directories'
// times — so none of them ever enters a layer.
import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { resolveInRoot } from "../fs/confine.js";

export interface EtcFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
  hostnameFile: string;
}

const DEFAULT_RESOLV = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";

export function newHostname(): string {
  return randomBytes(6).toString("hex");
}

/** Write hosts/resolv.conf/hostname for one run into `runDir`. */
export async function writeEtcFiles(runDir: string, hostname: string): Promise<EtcFiles> {
  const hosts = join(runDir, "hosts");
  const resolvConf = join(runDir, "resolv.conf");
  const hostnameFile = join(runDir, "hostname");
  await writeFile(
    hosts,
    `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t${hostname}\n`,
  );
  let resolv = DEFAULT_RESOLV;
  try {
    const host = await readFile("/etc/resolv.conf", "utf8");
    if (/^\s*nameserver\s/m.test(host)) resolv = host;
  } catch {
    /* no host resolv.conf: use the default */
  }
  await writeFile(resolvConf, resolv);
  await writeFile(hostnameFile, `${hostname}\n`);
  for (const f of [hosts, resolvConf, hostnameFile]) await chmod(f, 0o644);
  return { hostname, hosts, resolvConf, hostnameFile };
}

interface Created {
  host: string;
  parent: string;
  parentTimes: { atime: Date; mtime: Date } | null;
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
      await lstat(host);
      return host;
    } catch {
      /* create it below */
    }
    // find the first missing ancestor: that is what we remove afterwards
    const rel = posix.relative(this.rootfs, host);
    const parts = rel.split("/");
    let first = this.rootfs;
    for (let i = 0; i < parts.length; i++) {
      const p = posix.join(this.rootfs, ...parts.slice(0, i + 1));
      try {
        await lstat(p);
      } catch {
        first = p;
        break;
      }
    }
    const parent = posix.dirname(first);
    let parentTimes: Created["parentTimes"] = null;
    try {
      const st = await stat(parent);
      parentTimes = { atime: st.atime, mtime: st.mtime };
    } catch {
      parentTimes = null;
    }
    if (kind === "dir") await mkdir(host, { recursive: true, mode: 0o755 });
    else {
      await mkdir(posix.dirname(host), { recursive: true, mode: 0o755 });
      await writeFile(host, "", { mode: 0o644 });
    }
    this.created.push({ host: first, parent, parentTimes });
    return host;
  }

  /** Remove what ensure() created (newest first) and restore the parents' times. */
  async cleanup(): Promise<void> {
    while (this.created.length > 0) {
      const c = this.created.pop() as Created;
      await rm(c.host, { recursive: true, force: true }).catch(() => undefined);
      if (c.parentTimes) await utimes(c.parent, c.parentTimes.atime, c.parentTimes.mtime).catch(() => undefined);
    }
  }
}

/** Create the working directory inside the rootfs when missing (Docker does this for WORKDIR). */
export async function ensureCwd(rootfs: string, cwd: string): Promise<void> {
  const host = await resolveInRoot(rootfs, cwd, { followFinal: true });
  await mkdir(host, { recursive: true, mode: 0o755 });
}
