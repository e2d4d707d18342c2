// The capabilities a RUN or a `kiln run` process gets: Docker's default set for containers, for
// every isolation that can set them (the OCI spec's sets, chroot's setpriv drop, plain-chroot's
// bounding set), and `kiln run --cap-add/--cap-drop` on top of it with Docker's rules: names with
// or without CAP_, any case; `ALL` in --cap-add gives every capability the kernel knows except
// the dropped ones, `ALL` in --cap-drop starts from none and keeps only the added ones, otherwise
// the drops leave the default set and the adds join it.
import { readFileSync } from "node:fs";
import { KilnError } from "../errors.js";

/** Docker's default capability set for containers (and so for RUN). */
export const DEFAULT_CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

/** Every capability by number (linux/capability.h). */
const ALL_BY_NUMBER = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
  "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
  "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
  "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
  "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
];

/** The capabilities kiln can hand on: the kernel's (up to cap_last_cap) that are in kiln's own bounding set. */
export function availableCaps(): string[] {
  let last = ALL_BY_NUMBER.length - 1;
  let bounding = (1n << 64n) - 1n;
  try {
    last = Math.min(last, Number.parseInt(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8"), 10));
    const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    if (hex) bounding = BigInt(`0x${hex}`);
  } catch {
    /* no /proc: every name kiln knows */
  }
  return ALL_BY_NUMBER.slice(0, last + 1).filter((_, i) => ((bounding >> BigInt(i)) & 1n) === 1n);
}

/** `net_admin`, `CAP_NET_ADMIN`, `Net_Admin` → `CAP_NET_ADMIN`; `all` → `ALL`; unknown names refused. */
function normalize(name: string, flag: string): string {
  const up = name.trim().toUpperCase();
  if (up === "ALL") return "ALL";
  const full = up.startsWith("CAP_") ? up : `CAP_${up}`;
  if (!ALL_BY_NUMBER.includes(full)) throw new KilnError("OPTION_INVALID", `${flag} ${name}: unknown capability ${JSON.stringify(name)}`);
  return full;
}

export interface CapabilityChoice {
  /** The container's set: bounding, and for root permitted and effective too. */
  set: string[];
  /**
   * The explicitly added ones (within `set`): a non-root user gets these as inheritable,
   * permitted, effective and ambient capabilities, as under podman (Docker gives it none).
   */
  added: string[];
}

/** The capabilities for `--cap-add`/`--cap-drop` (Docker's rules; see the header), in kernel order. */
export function capabilitySet(add: readonly string[], drop: readonly string[], base: readonly string[] = DEFAULT_CAPS): CapabilityChoice {
  const adds = add.map((c) => normalize(c, "--cap-add"));
  const drops = drop.map((c) => normalize(c, "--cap-drop"));
  const available = availableCaps();
  let caps: Set<string>;
  if (adds.includes("ALL")) caps = new Set(available.filter((c) => !drops.includes(c)));
  else if (drops.includes("ALL")) caps = new Set(adds);
  else caps = new Set([...base.filter((c) => !drops.includes(c)), ...adds]);
  const set = ALL_BY_NUMBER.filter((c) => caps.has(c));
  const added = set.filter((c) => adds.includes("ALL") || adds.includes(c));
  return { set, added };
}
