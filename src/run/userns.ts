// Rootless support: the uid/gid mappings a user namespace gets when kiln is not root — the
// current user as root plus the subordinate ranges from /etc/subuid and /etc/subgid (applied via
// newuidmap/newgidmap), or a single-id mapping when there are none — and a clear error naming
// what is missing when user namespaces are unavailable.
import { readFileSync, existsSync } from "node:fs";
import { userInfo } from "node:os";
import { KilnError } from "../errors.js";
import type { IdMapping } from "../snapshot/idmap.js";

function which(cmd: string): boolean {
  return (process.env.PATH ?? "/usr/bin:/bin").split(":").some((d) => existsSync(`${d}/${cmd}`));
}

/** The first subordinate range for the current user in /etc/subuid or /etc/subgid. */
export function subordinateRange(file: "/etc/subuid" | "/etc/subgid"): { start: number; count: number } | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null;
  }
  const uid = String(process.getuid?.() ?? -1);
  let name = "";
  try {
    name = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  for (const line of text.split("\n")) {
    const [who, start, count] = line.trim().split(":");
    if ((who === uid || (name !== "" && who === name)) && Number(count) > 0) return { start: Number(start), count: Number(count) };
  }
  return null;
}

/** Mappings for a rootless container: current user -> 0, plus subordinate ids from 1 up when available. */
export function hostIdMappings(): { uid: IdMapping[]; gid: IdMapping[]; single: boolean } {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const su = which("newuidmap") ? subordinateRange("/etc/subuid") : null;
  const sg = which("newgidmap") ? subordinateRange("/etc/subgid") : null;
  if (su && sg) {
    return {
      uid: [{ containerID: 0, hostID: uid, size: 1 }, { containerID: 1, hostID: su.start, size: su.count }],
      gid: [{ containerID: 0, hostID: gid, size: 1 }, { containerID: 1, hostID: sg.start, size: sg.count }],
      single: false,
    };
  }
  return { uid: [{ containerID: 0, hostID: uid, size: 1 }], gid: [{ containerID: 0, hostID: gid, size: 1 }], single: true };
}

/** Throw a clear error when this kernel/system does not let unprivileged users create user namespaces. */
export function checkUserNamespaces(): void {
  const read = (p: string): string | null => {
    try {
      return readFileSync(p, "utf8").trim();
    } catch {
      return null;
    }
  };
  if (read("/proc/sys/user/max_user_namespaces") === "0") {
    throw new KilnError("ISOLATION_UNAVAILABLE", "rootless RUN needs user namespaces, but /proc/sys/user/max_user_namespaces is 0 (ask an administrator to raise it, or run kiln as root)");
  }
  if (read("/proc/sys/kernel/unprivileged_userns_clone") === "0") {
    throw new KilnError("ISOLATION_UNAVAILABLE", "rootless RUN needs user namespaces, but kernel.unprivileged_userns_clone is 0 (sysctl -w kernel.unprivileged_userns_clone=1, or run kiln as root)");
  }
  if (read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") === "1") {
    throw new KilnError("ISOLATION_UNAVAILABLE", "rootless RUN needs user namespaces, but AppArmor restricts them (kernel.apparmor_restrict_unprivileged_userns=1); run kiln as root or allow it");
  }
}

/**
 * `unshare` options for a user namespace with `maps` (hostIdMappings()): the current user as root
 * and, when there are subordinate ids, those from 1 up (via newuidmap/newgidmap).
 */
export function unshareUserArgs(maps: { uid: IdMapping[]; gid: IdMapping[]; single: boolean }): string[] {
  if (maps.single) return ["--user", "--map-root-user"];
  const u = maps.uid[1] as IdMapping;
  const g = maps.gid[1] as IdMapping;
  return ["--user", "--map-user=0", "--map-group=0", `--map-users=${u.hostID},1,${u.size}`, `--map-groups=${g.hostID},1,${g.size}`, "--setgroups", "allow"];
}
