// The preflight's report (and other probed host facts, such as whether overlay mounts work under
// the cache dir) kept for a few minutes in `<cache>/preflight/<key>.json`, so that short
// commands (`kiln run IMAGE true`) do not pay the probes each time. The key is everything the
// probes depend on: uid/gid, the capability sets, no_new_privs and seccomp mode from
// /proc/self/status, the cgroup and the boot id, kiln's version, and path, size and mtime of each
// tool the probes run. A stale report can only name a mode that no longer works (the run then
// fails with the runtime's error); it never hides a stronger mode for longer than MAX_AGE_MS.
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../store/atomic-file.js";
import { VERSION } from "../version.js";
import type { PreflightReport } from "./preflight.js";

export const MAX_AGE_MS = 10 * 60 * 1000;

const TOOLS = ["crun", "runc", "unshare", "chroot", "setpriv", "mount", "mknod", "proot", "busybox"];
const DIRS = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"];

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

let key: string | undefined;

/** What the probes' outcome depends on, hashed (once per process: the cached facts share it). */
export function preflightKey(): string {
  key ??= computeKey();
  return key;
}

function computeKey(): string {
  const status = read("/proc/self/status")
    .split("\n")
    .filter((l) => /^(Uid|Gid|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):/.test(l))
    .join("\n");
  const tools = TOOLS.map((t) => {
    for (const d of DIRS) {
      try {
        const st = statSync(`${d}/${t}`);
        return `${d}/${t}:${st.size}:${st.mtimeMs}`;
      } catch {
        /* not here */
      }
    }
    return `${t}:-`;
  });
  const parts = [VERSION, status, read("/proc/self/cgroup"), read("/proc/sys/kernel/random/boot_id").trim(), ...tools];
  return createHash("sha256").update(parts.join("\0")).digest("hex");
}

function plausible(r: unknown): r is PreflightReport {
  const x = r as PreflightReport | null;
  return !!x && typeof x.uid === "number" && Array.isArray(x.capEff) && Array.isArray(x.capBnd) && typeof x.modes === "object" && typeof x.modes?.oci?.ok === "boolean";
}

/**
 * `compute()`'s answer kept under `name` for MAX_AGE_MS in `<cacheDir>/preflight/` (keyed by
 * preflightKey() and `name`); `valid` checks what is read back.
 */
export async function cachedHostFact<T>(cacheDir: string, name: string, compute: () => Promise<T>, valid: (v: unknown) => v is T, now = Date.now()): Promise<T> {
  const key = name === "preflight" ? preflightKey() : createHash("sha256").update(`${preflightKey()}\0${name}`).digest("hex");
  const path = join(cacheDir, "preflight", `${key}.json`);
  try {
    // a few KiB kiln wrote: read at once (a thread-pool round trip per call made this a millisecond)
    const doc = JSON.parse(readFileSync(path, "utf8")) as { at?: unknown; report?: unknown };
    if (typeof doc.at === "number" && now - doc.at >= 0 && now - doc.at < MAX_AGE_MS && valid(doc.report)) return doc.report;
  } catch {
    /* none yet, or unreadable: compute */
  }
  const value = await compute();
  await writeFileAtomic(path, JSON.stringify({ at: now, report: value }), { mkdirMode: 0o700 }).catch(() => undefined);
  return value;
}

/** The preflight report from `<cacheDir>/preflight/` when fresh, else probed now and kept there. */
export function cachedPreflight(cacheDir: string, now = Date.now()): Promise<PreflightReport> {
  return cachedHostFact(cacheDir, "preflight", async () => (await import("./preflight.js")).preflight(), plausible, now);
}
