// `kiln doctor`: checks, on this host, every row of the requirements table (programs on PATH,
// overlayfs, loop devices, subordinate ids, binfmt handlers, the cgroup layout) and the RUN
// isolation modes the preflight finds, and returns a typed report: what works, what is missing,
// and the command that installs it. RUN can be built here when at least one mode works.
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { userInfo } from "node:os";
import { delimiter, join } from "node:path";
import { overlayUnsupported } from "../snapshot/overlay.js";
import { nativeZstd } from "../layer/zstd.js";
import { staticBusybox } from "../run/chroot.js";
import { crunNeedsHybridWorkaround } from "../run/oci.js";
import { preflight, type ConcreteIsolation } from "../run/preflight.js";
import { subordinateRange } from "../run/userns.js";
import { REQUIREMENTS, installHint, type Requirement, type RequirementId } from "./requirements.js";

export interface Check {
  id: RequirementId;
  name: string;
  usedFor: string;
  ok: boolean;
  /** What was found (a path, a version) or why it is missing. */
  detail: string;
  /** How to install it, when missing. */
  install?: string;
}

export interface DoctorReport {
  uid: number;
  node: string;
  cgroup: "v2" | "hybrid" | "v1" | "unknown";
  isolation: { mode: ConcreteIsolation; ok: boolean; reason: string }[];
  checks: Check[];
  /** The mode `--isolation auto` picks, or null when RUN cannot work here. */
  runIsolation: ConcreteIsolation | null;
}

/** Where the programs kiln starts by name are found: PATH, and the sbin directories it may lack. */
function which(cmd: string): string | null {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== ""), "/usr/sbin", "/sbin"];
  for (const d of dirs) if (existsSync(join(d, cmd))) return join(d, cmd);
  return null;
}

function cgroupLayout(): DoctorReport["cgroup"] {
  const CGROUP2 = 0x63677270;
  try {
    if (statfsSync("/sys/fs/cgroup").type === CGROUP2) return "v2";
    return existsSync("/sys/fs/cgroup/unified/cgroup.controllers") ? "hybrid" : "v1";
  } catch {
    return "unknown";
  }
}

function binfmtHandlers(): string[] {
  const dir = "/proc/sys/fs/binfmt_misc";
  const out: string[] = [];
  for (const arch of ["aarch64", "arm", "x86_64", "riscv64", "ppc64le", "s390x"]) {
    try {
      if (readFileSync(join(dir, `qemu-${arch}`), "utf8").startsWith("enabled")) out.push(arch);
    } catch {
      /* not registered */
    }
  }
  return out;
}

async function check(r: Requirement, cacheDir: string): Promise<Omit<Check, "id" | "name" | "usedFor">> {
  const found = r.commands.map((c) => ({ c, path: which(c) }));
  const present = found.filter((f) => f.path !== null);
  const missingCmds = found.filter((f) => f.path === null).map((f) => f.c);
  const tools = (): { ok: boolean; detail: string } =>
    missingCmds.length === 0 ? { ok: true, detail: present.map((f) => f.path).join(", ") } : { ok: false, detail: `not found: ${missingCmds.join(", ")}` };
  switch (r.id) {
    case "oci-runtime": {
      if (present.length === 0) return { ok: false, detail: "neither crun nor runc is installed" };
      const hybrid = crunNeedsHybridWorkaround();
      return { ok: true, detail: `${present.map((f) => f.path).join(", ")}${hybrid ? " (hybrid cgroup layout: crun runs with a private cgroup view)" : ""}` };
    }
    case "busybox": {
      const b = staticBusybox();
      return b ? { ok: true, detail: b } : { ok: false, detail: present.length > 0 ? "busybox is installed but not statically linked" : "not found" };
    }
    case "overlayfs": {
      const why = await overlayUnsupported(join(cacheDir, "rootfs"));
      return why === null ? { ok: true, detail: "overlay mounts work (snapshotter auto = overlay)" } : { ok: false, detail: `${why} (snapshotter auto = dir)` };
    }
    case "scratch-fs": {
      const t = tools();
      if (!t.ok) return t;
      return existsSync("/dev/loop-control") ? t : { ok: false, detail: "no /dev/loop-control (loop devices unavailable)" };
    }
    case "uidmap": {
      if (process.getuid?.() === 0) return { ok: true, detail: "not needed as root" };
      const t = tools();
      if (!t.ok) return t;
      const su = subordinateRange("/etc/subuid");
      const sg = subordinateRange("/etc/subgid");
      if (!su || !sg) return { ok: false, detail: `no range for ${userInfo().username} in ${!su ? "/etc/subuid" : "/etc/subgid"} (only root-owned files in RUN)` };
      return { ok: true, detail: `subuid ${su.start}+${su.count}, subgid ${sg.start}+${sg.count}` };
    }
    case "zstd":
      if (nativeZstd()) return { ok: true, detail: `not needed: Node.js ${process.version} decodes zstd` };
      return tools();
    case "qemu": {
      const handlers = binfmtHandlers();
      if (present.length === 0) return { ok: false, detail: "qemu-user-static is not installed" };
      return handlers.length > 0 ? { ok: true, detail: `binfmt_misc handlers: ${handlers.join(", ")}` } : { ok: false, detail: "no qemu handler registered in binfmt_misc" };
    }
    default:
      return tools();
  }
}

/** Check this host. `cacheDir` is where kiln would work (the overlay probe runs there). */
export async function doctor(cacheDir: string): Promise<DoctorReport> {
  const [report, checks] = await Promise.all([
    preflight(),
    Promise.all(REQUIREMENTS.map(async (r) => {
      const c = await check(r, cacheDir);
      return { id: r.id, name: r.name, usedFor: r.usedFor, ...c, ...(c.ok ? {} : { install: installHint(r.packages) }) };
    })),
  ]);
  const order: ConcreteIsolation[] = ["oci", "chroot", "plain-chroot", "proot"];
  const isolation = order.map((mode) => ({ mode, ok: report.modes[mode].ok, reason: report.modes[mode].reason }));
  return {
    uid: report.uid,
    node: process.version,
    cgroup: cgroupLayout(),
    isolation,
    checks,
    runIsolation: isolation.find((m) => m.ok)?.mode ?? null,
  };
}

/** The report as the lines `kiln doctor` prints. */
export function formatDoctor(r: DoctorReport): string {
  const lines: string[] = [`host: uid ${r.uid}, Node.js ${r.node}, cgroup ${r.cgroup}`, "", "RUN isolation (strongest first):"];
  for (const m of r.isolation) lines.push(`  ${m.ok ? "ok     " : "no     "} ${m.mode.padEnd(13)} ${m.ok ? "" : m.reason}`.trimEnd());
  lines.push("", "Host tools and features:");
  for (const c of r.checks) {
    lines.push(`  ${c.ok ? "ok     " : "missing"} ${c.name.padEnd(32)} ${c.detail}`);
    if (!c.ok) lines.push(`  ${"".padEnd(7)} ${"".padEnd(32)} for ${c.usedFor}; install: ${c.install}`);
  }
  lines.push("");
  lines.push(r.runIsolation
    ? `RUN steps can be built here (--isolation auto uses ${r.runIsolation}).`
    : "RUN steps cannot be built here: no isolation mode works (builds without RUN still do).");
  return lines.join("\n") + "\n";
}
