// `COPY/ADD --chown` (and the owner of WORKDIR's directories): `uid`, `uid:gid`, `name`,
// `name:group`, `:group`. Names are looked up in the destination image's /etc/passwd and
// /etc/group (parsed by src/image/passwd.ts). As in BuildKit: a numeric user alone gets gid = uid;
// a named user alone gets that user's primary group.
import { KilnError } from "../errors.js";
import { parseGroup, parsePasswd } from "../image/passwd.js";

const MAX_ID = 0xffffffff;

export function resolveChown(spec: string, passwd?: Buffer, group?: Buffer): { uid: number; gid: number } {
  const s = spec.trim();
  if (s === "") throw new KilnError("COPY_CHOWN_INVALID", `invalid --chown ""`);
  const colon = s.indexOf(":");
  const userPart = colon < 0 ? s : s.slice(0, colon);
  const groupPart = colon < 0 ? undefined : s.slice(colon + 1);
  if (groupPart !== undefined && groupPart.includes(":")) throw new KilnError("COPY_CHOWN_INVALID", `invalid --chown "${spec}"`);

  let uid = 0;
  let gid = 0;
  if (userPart !== "") {
    const id = parseId(userPart, spec);
    if (id !== undefined) {
      uid = id;
      gid = id;
    } else {
      const row = parsePasswd(passwd).find((r) => r.name === userPart);
      if (!row) throw new KilnError("USER_UNKNOWN", `unable to find user "${userPart}": no matching entries in passwd file`);
      uid = parseId(row.uid, spec) ?? 0;
      gid = parseId(row.gid, spec) ?? 0;
    }
  }
  if (groupPart !== undefined) {
    if (groupPart === "") throw new KilnError("COPY_CHOWN_INVALID", `invalid --chown "${spec}"`);
    const id = parseId(groupPart, spec);
    if (id !== undefined) gid = id;
    else {
      const row = parseGroup(group).find((r) => r.name === groupPart);
      if (!row) throw new KilnError("USER_UNKNOWN", `unable to find group "${groupPart}": no matching entries in group file`);
      gid = parseId(row.gid, spec) ?? 0;
    }
  }
  return { uid, gid };
}

function parseId(s: string, spec: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n > MAX_ID) throw new KilnError("COPY_CHOWN_INVALID", `invalid --chown "${spec}": id out of range`);
  return n;
}
