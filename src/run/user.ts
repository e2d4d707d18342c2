// USER resolution for RUN: turns a Dockerfile USER value (name, uid, name:group, uid:gid) into
// numeric uid, gid and supplementary groups using the root filesystem's /etc/passwd and /etc/group
// (read through confined paths, parsed by src/image/passwd.ts). Numeric ids work without those files.
import { readFile } from "node:fs/promises";
import { KilnError } from "../errors.js";
import { resolveInRoot } from "../snapshot/confine.js";
import { parseGroup, parsePasswd } from "../image/passwd.js";

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

/** A file of the root filesystem (undefined when it cannot be read). */
async function readInRoot(rootfs: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(await resolveInRoot(rootfs, path, { followFinal: true }), "utf8");
  } catch {
    return undefined;
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

  const [passwdText, groupText] = await Promise.all([readInRoot(rootfs, "/etc/passwd"), readInRoot(rootfs, "/etc/group")]);
  const passwd: PasswdEntry[] = parsePasswd(passwdText).map((r) => ({ name: r.name, uid: Number(r.uid), gid: Number(r.gid), home: r.home ?? "/" }));
  const groups: GroupEntry[] = parseGroup(groupText).map((r) => ({ name: r.name, gid: Number(r.gid), members: r.members }));

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
