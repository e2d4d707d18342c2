// An image's /etc/passwd and /etc/group: the one parser of their rows (blank lines and `#`
// comments skipped, surrounding white space and CRLF endings trimmed, fields split on ":") that
// both owner resolutions use — COPY/ADD --chown and WORKDIR (src/context/owner.ts) and the RUN
// user (src/run/user.ts). Pure text in, rows out; where the file comes from is the caller's.

/** A passwd row: name, then (as written) uid, gid and home directory. */
export interface PasswdRow {
  name: string;
  uid: string;
  gid: string;
  home: string | undefined;
}

/** A group row: name, gid (as written) and the member names. */
export interface GroupRow {
  name: string;
  gid: string;
  members: string[];
}

/** The rows of a passwd/group-style file with at least three fields, split on ":". */
function rows(file: string | Buffer | undefined): string[][] {
  if (file === undefined) return [];
  const out: string[][] = [];
  for (const line of file.toString("utf8").split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const cols = t.split(":");
    if (cols.length >= 3) out.push(cols);
  }
  return out;
}

export function parsePasswd(file: string | Buffer | undefined): PasswdRow[] {
  return rows(file).map((f) => ({ name: f[0]!, uid: f[2]!, gid: f[3] ?? "", home: f[5] }));
}

export function parseGroup(file: string | Buffer | undefined): GroupRow[] {
  return rows(file).map((f) => ({ name: f[0]!, gid: f[2]!, members: (f[3] ?? "").split(",").filter((m) => m !== "") }));
}
