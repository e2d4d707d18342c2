// The unprivileged users the rootless tests drive kiln as: created with useradd when missing
// (system user, no home, no shell) with a subordinate uid/gid range of 65,536 ids from `subStart`
// in /etc/subuid and /etc/subgid; left in place for the next run, as useradd-made users are.
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";

export function ensureRootlessUser(user: string, subStart: number): void {
  if (spawnSync("id", [user]).status !== 0) execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]);
  for (const f of ["/etc/subuid", "/etc/subgid"]) {
    const text = existsSync(f) ? readFileSync(f, "utf8") : "";
    if (!text.split("\n").some((l) => l.startsWith(`${user}:`))) appendFileSync(f, `${user}:${subStart}:65536\n`);
  }
}
