// RUN resource limits as `docker build` spells them: `--ulimit NAME=SOFT[:HARD]` (Docker's names:
// nofile, nproc, core, ...; -1 or "unlimited" for no limit) and `--shm-size SIZE` (/dev/shm's size,
// binary units as Docker reads them: 64m = 64 MiB). The parsing, and how a runner applies them:
// the OCI runtime through `process.rlimits`, the other runners through util-linux `prlimit`, which
// sets the limits on itself and execs the step's outermost process (limits survive exec and fork).
import { existsSync } from "node:fs";
import { UsageError } from "../errors.js";
import type { Exec } from "./output.js";

/** One resource limit; `soft`/`hard` are numbers or "unlimited". */
export interface Ulimit {
  name: (typeof ULIMIT_NAMES)[number];
  soft: number | "unlimited";
  hard: number | "unlimited";
}

/** Docker's --ulimit names (each is RLIMIT_<NAME> and util-linux prlimit's --<name>). */
export const ULIMIT_NAMES = ["core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"] as const;

/** /dev/shm's size when no --shm-size is given (Docker's default). */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

function limitValue(text: string, raw: string): number | "unlimited" {
  if (text === "-1" || text === "unlimited") return "unlimited";
  if (!/^\d+$/.test(text)) throw new UsageError("OPTION_INVALID", `--ulimit ${raw}: "${text}" is not a number (or -1 / unlimited)`);
  return Number(text);
}

/** `nofile=1024:2048`, `nproc=512`, `core=-1`. */
export function parseUlimit(raw: string): Ulimit {
  const m = /^([a-z]+)=([^:]+)(?::([^:]+))?$/.exec(raw.trim());
  if (!m) throw new UsageError("OPTION_INVALID", `--ulimit ${raw}: expected NAME=SOFT[:HARD] (e.g. nofile=1024:2048)`);
  const name = m[1] as Ulimit["name"];
  if (!ULIMIT_NAMES.includes(name)) throw new UsageError("OPTION_INVALID", `--ulimit ${raw}: unknown limit "${m[1]}" (one of ${ULIMIT_NAMES.join(", ")})`);
  const soft = limitValue(m[2]!, raw);
  const hard = m[3] === undefined ? soft : limitValue(m[3], raw);
  if (soft !== "unlimited" && (hard === "unlimited" ? false : soft > hard)) {
    throw new UsageError("OPTION_INVALID", `--ulimit ${raw}: the soft limit is above the hard limit`);
  }
  if (soft === "unlimited" && hard !== "unlimited") throw new UsageError("OPTION_INVALID", `--ulimit ${raw}: the soft limit is above the hard limit`);
  return { name, soft, hard };
}

const SHM_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** `--shm-size`: bytes, or a number with b, k, m, g (binary, as Docker: 64m = 64 MiB; kb, mib also read). */
export function parseShmSize(raw: string): number {
  const m = /^(\d+)\s*([bkmg]?)(?:i?b)?$/i.exec(raw.trim());
  const bytes = m ? Number(m[1]) * SHM_UNITS[m[2]!.toLowerCase()]! : NaN;
  if (!m || !Number.isSafeInteger(bytes) || bytes < 4096) throw new UsageError("OPTION_INVALID", `--shm-size ${raw}: expected a size of at least 4k (e.g. 64m, 1g)`);
  return bytes;
}

/** Stands for RLIM_INFINITY in `ociRlimits` until `ociJson` writes it as the number 2^64-1 (beyond JSON.stringify's numbers). */
const INFINITY_MARK = "__kiln_rlim_infinity__";

/** The OCI runtime spec's `process.rlimits` entries; write the config with `ociJson`. */
export function ociRlimits(limits: readonly Ulimit[]): Array<{ type: string; soft: number | string; hard: number | string }> {
  const v = (x: number | "unlimited"): number | string => (x === "unlimited" ? INFINITY_MARK : x);
  return limits.map((l) => ({ type: `RLIMIT_${l.name.toUpperCase()}`, soft: v(l.soft), hard: v(l.hard) }));
}

/** JSON of an OCI config whose rlimits may hold RLIM_INFINITY (18446744073709551615). */
export function ociJson(config: object): string {
  return JSON.stringify(config, null, 2).replaceAll(`"${INFINITY_MARK}"`, "18446744073709551615");
}

/** `exec` started through `prlimit --NAME=SOFT:HARD ... --` (unchanged without limits). */
export function withRlimits(exec: Exec, limits: readonly Ulimit[] | undefined): Exec {
  if (!limits || limits.length === 0) return exec;
  const prlimit = ["/usr/bin/prlimit", "/bin/prlimit"].find((p) => existsSync(p)) ?? "prlimit";
  const flags = limits.map((l) => `--${l.name}=${l.soft}:${l.hard}`);
  return { ...exec, cmd: prlimit, args: [...flags, "--", exec.cmd, ...exec.args] };
}

/** The tmpfs `size=` option for /dev/shm. */
export function shmSizeOption(bytes: number | undefined): string {
  return `size=${Math.floor((bytes ?? DEFAULT_SHM_SIZE) / 1024)}k`;
}
