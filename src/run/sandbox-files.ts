// Per-run files and mount points: writes the generated /etc/hosts, /etc/resolv.conf and
// /etc/hostname into the run directory, creates missing mount targets inside the rootfs
// (confined) and removes the ones kiln created afterwards — restoring the parent directories'
// times — so none of them ever enters a layer.
import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, readFile, rmdir, stat, unlink, utimes, writeFile } from "node:fs/promises";
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
  /** Every path kiln created for this stub, shallowest first. */
  paths: string[];
  kind: "dir" | "file";
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
    // Record every component kiln creates (shallowest first), so clean-up can remove exactly
    // those that are still empty stubs afterwards, as BuildKit's mount-stub cleaner does.
    const rel = posix.relative(this.rootfs, host);
    const parts = rel.split("/");
    const missing: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = posix.join(this.rootfs, ...parts.slice(0, i + 1));
      if (missing.length === 0) {
        try {
          await lstat(p);
          continue;
        } catch {
          /* first missing component */
        }
      }
      missing.push(p);
    }
    const parent = posix.dirname(missing[0] ?? host);
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
    this.created.push({ host, parent, parentTimes, paths: missing, kind });
    return host;
  }

  /**
   * Remove the stubs ensure() created (newest first) when the step left them empty, and restore
   * the parents' times. A stub the step wrote into (a directory that now has files, a file with
   * content) is the step's change and stays.
   */
  async cleanup(): Promise<void> {
    while (this.created.length > 0) {
      const c = this.created.pop() as Created;
      let removedAll = true;
      for (const p of [...c.paths].reverse()) {
        const st = await lstat(p).catch(() => undefined);
        if (!st) continue;
        const isStub = p === c.host && c.kind === "file" ? st.isFile() && st.size === 0 : st.isDirectory();
        if (!isStub) {
          removedAll = false;
          break;
        }
        try {
          if (st.isDirectory()) await rmdir(p);
          else await unlink(p);
        } catch {
          removedAll = false;
          break; // not empty: the step put something there
        }
      }
      if (removedAll && c.parentTimes) await utimes(c.parent, c.parentTimes.atime, c.parentTimes.mtime).catch(() => undefined);
    }
  }
}

/** Create the working directory inside the rootfs when missing (Docker does this for WORKDIR). */
export async function ensureCwd(rootfs: string, cwd: string): Promise<void> {
  const host = await resolveInRoot(rootfs, cwd, { followFinal: true });
  await mkdir(host, { recursive: true, mode: 0o755 });
}
