// `COPY/ADD --chown`: `uid`, `uid:gid`, `name`, `name:group`, `:group`. Names are looked up in
// the destination image's /etc/passwd and /etc/group. As in BuildKit: a numeric user alone gets
// gid = uid; a named user alone gets that user's primary group.
import { KilnError } from "../errors.js";

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
      const row = findRow(passwd, userPart);
      if (!row) throw new KilnError("USER_UNKNOWN", `unable to find user "${userPart}": no matching entries in passwd file`);
      uid = parseId(row[2] ?? "", spec) ?? 0;
      gid = parseId(row[3] ?? "", spec) ?? 0;
    }
  }
  if (groupPart !== undefined) {
    if (groupPart === "") throw new KilnError("COPY_CHOWN_INVALID", `invalid --chown "${spec}"`);
    const id = parseId(groupPart, spec);
    if (id !== undefined) gid = id;
    else {
      const row = findRow(group, groupPart);
      if (!row) throw new KilnError("USER_UNKNOWN", `unable to find group "${groupPart}": no matching entries in group file`);
      gid = parseId(row[2] ?? "", spec) ?? 0;
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

/** The first `name:...` row of a passwd/group file, split on ":". */
function findRow(file: Buffer | undefined, name: string): string[] | undefined {
  if (!file) return undefined;
  for (const line of file.toString("utf8").split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const cols = t.split(":");
    if (cols[0] === name && cols.length >= 3) return cols;
  }
  return undefined;
}
