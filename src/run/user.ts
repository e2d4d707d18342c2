// USER resolution: turns a Dockerfile USER value (name, uid, name:group, uid:gid) into numeric
// uid, gid and supplementary groups using the root filesystem's /etc/passwd and /etc/group
// (read through confined paths). Numeric ids work without those files.
import { readFile } from "node:fs/promises";
import { KilnError } from "../errors.js";
import { resolveInRoot } from "../fs/confine.js";

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups (includes the primary gid, as runc does). */
  additionalGids: number[];
  /** Home directory from passwd, when known. */
  home?: string;
}

interface PasswdEntry { name: string; uid: number; gid: number; home: string }
interface GroupEntry { name: string; gid: number; members: string[] }

async function readLines(rootfs: string, path: string): Promise<string[] | null> {
  try {
    const host = await resolveInRoot(rootfs, path, { followFinal: true });
    return (await readFile(host, "utf8")).split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  } catch {
    return null;
  }
}

function isNumeric(s: string): boolean {
  return /^[0-9]+$/.test(s);
}

export async function resolveUser(rootfs: string, user: string): Promise<ResolvedUser> {
  const spec = user.trim() === "" ? "root" : user.trim();
  const colon = spec.indexOf(":");
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? "" : spec.slice(colon + 1);

  const passwd: PasswdEntry[] = ((await readLines(rootfs, "/etc/passwd")) ?? []).map((l) => {
    const f = l.split(":");
    return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? "/" };
  });
  const groups: GroupEntry[] = ((await readLines(rootfs, "/etc/group")) ?? []).map((l) => {
    const f = l.split(":");
    return { name: f[0], gid: Number(f[2]), members: (f[3] ?? "").split(",").filter((m) => m !== "") };
  });

  let uid: number;
  let gid = 0;
  let name: string | undefined;
  let home: string | undefined;
  const byName = passwd.find((p) => p.name === userPart);
  if (byName && !isNumeric(userPart)) {
    ({ uid, gid, name, home } = byName);
  } else if (isNumeric(userPart)) {
    uid = Number(userPart);
    const byUid = passwd.find((p) => p.uid === uid);
    if (byUid) ({ gid, name, home } = byUid);
  } else if (userPart === "root") {
    uid = 0;
  } else {
    throw new KilnError("USER_UNKNOWN", `unable to find user ${userPart}: no matching entries in passwd file`);
  }

  let additionalGids: number[] = [];
  if (groupPart !== "") {
    if (isNumeric(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw new KilnError("USER_UNKNOWN", `unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
    additionalGids = [gid];
  } else {
    additionalGids = [gid];
    if (name !== undefined) {
      for (const g of groups) if (g.members.includes(name) && !additionalGids.includes(g.gid)) additionalGids.push(g.gid);
    }
  }
  const out: ResolvedUser = { uid, gid, additionalGids };
  if (home !== undefined) out.home = home;
  return out;
}
