// The RUN preflight: probes, before any work, what this process may do (uid, capabilities,
// no_new_privs, namespaces, mount, the OCI runtime, mknod, chroot, the plain-chroot privilege
// drop, ptrace via proot), returns a typed report, and picks the isolation from it: "auto" takes
// the strongest mode that works (oci → chroot → plain-chroot → proot); an explicit mode that cannot
// work is a one-line KilnError naming what is missing. Results are cached per process.
import { existsSync, readFileSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IsolationError, KilnError } from "../errors.js";
import { runQuiet } from "./output.js";
import { crunNeedsHybridWorkaround } from "./oci.js";
import type { Isolation } from "./types.js";

export type ConcreteIsolation = Exclude<Isolation, "auto">;
export const ISOLATIONS: readonly Isolation[] = ["auto", "oci", "chroot", "plain-chroot", "proot"];

export interface Probe {
  ok: boolean;
  /** Why it failed (one short phrase), empty when ok. */
  reason: string;
}

export interface PreflightReport {
  uid: number;
  /** Capability names (lower case, without CAP_) in the effective and bounding sets. */
  capEff: string[];
  capBnd: string[];
  noNewPrivs: boolean;
  probes: {
    unshare: Probe;
    mount: Probe;
    oci: Probe;
    mknod: Probe;
    chroot: Probe;
    plainChroot: Probe;
    proot: Probe;
  };
  /** Per mode: usable, or what is missing. */
  modes: Record<ConcreteIsolation, Probe>;
}

// Bit numbers of the capabilities the report names (linux/capability.h).
const CAP_NAMES: Record<number, string> = {
  0: "chown", 1: "dac_override", 2: "dac_read_search", 3: "fowner", 4: "fsetid", 5: "kill", 6: "setgid", 7: "setuid",
  8: "setpcap", 9: "linux_immutable", 10: "net_bind_service", 11: "net_broadcast", 12: "net_admin", 13: "net_raw",
  14: "ipc_lock", 15: "ipc_owner", 16: "sys_module", 17: "sys_rawio", 18: "sys_chroot", 19: "sys_ptrace", 20: "sys_pacct",
  21: "sys_admin", 22: "sys_boot", 23: "sys_nice", 24: "sys_resource", 25: "sys_time", 26: "sys_tty_config", 27: "mknod",
  28: "lease", 29: "audit_write", 30: "audit_control", 31: "setfcap", 32: "mac_override", 33: "mac_admin", 34: "syslog",
  35: "wake_alarm", 36: "block_suspend", 37: "audit_read", 38: "perfmon", 39: "bpf", 40: "checkpoint_restore",
};

export function capNames(hex: string): string[] {
  const v = BigInt(`0x${hex}`);
  const out: string[] = [];
  for (let i = 0; i < 64; i++) if ((v >> BigInt(i)) & 1n) out.push(CAP_NAMES[i] ?? `cap_${i}`);
  return out;
}

function status(): { capEff: string[]; capBnd: string[]; noNewPrivs: boolean } {
  const text = readFileSync("/proc/self/status", "utf8");
  const field = (k: string): string => new RegExp(`^${k}:\\s*(\\S+)`, "m").exec(text)?.[1] ?? "0";
  return { capEff: capNames(field("CapEff")), capBnd: capNames(field("CapBnd")), noNewPrivs: field("NoNewPrivs") === "1" };
}

function tool(name: string): string | null {
  for (const d of ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"]) if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
  return null;
}

// lines a tool prints besides its error: runc's logrus warnings, proot's warnings and infos
const NOISE = /^time="[^"]*" level=(?:warning|info|debug)\b|^[\w./-]+ (?:warning|info):/;

/**
 * The first error line of a failed probe's stderr (warnings and infos skipped), without the
 * tool's "name: " / "name error: " prefix; runc's `time=... level=error msg="..."` gives its msg.
 */
export function why(stderr: string, fallback: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const line = lines.find((l) => !NOISE.test(l)) ?? lines[0] ?? "";
  const logrus = /^time="[^"]*" level=\w+ msg="((?:[^"\\]|\\.)*)"/.exec(line);
  const text = logrus ? logrus[1]!.replace(/\\(.)/g, "$1") : line;
  return text.replace(/^[\w./-]+(?: error)?: /, "") || fallback;
}

/** The OCI runtime to use: `preferred` when installed, else crun (where it can run) or runc. */
export function pickRuntime(preferred?: "crun" | "runc"): "crun" | "runc" | null {
  if (preferred) return tool(preferred) ? preferred : null;
  const crunUsable = process.getuid?.() === 0 || !crunNeedsHybridWorkaround();
  if (tool("crun") && crunUsable) return "crun";
  if (tool("runc")) return "runc";
  return null;
}

async function probe(cmd: string | null, missing: string, args: string[], fallback: string): Promise<Probe> {
  if (!cmd) return { ok: false, reason: missing };
  const r = await runQuiet(cmd, args);
  return r.code === 0 ? { ok: true, reason: "" } : { ok: false, reason: why(r.stderr, fallback) };
}

const NO_PROBE: Probe = { ok: false, reason: "" };

async function runProbes(rootless: boolean, dir: string): Promise<PreflightReport["probes"]> {
  // the backends' modules, only when probing (a kept report needs none: preflight-cache.ts)
  const [{ staticBusybox }, { createOciRunner }, { DROPPED_IN_ROOT, plainChrootPrelude }] = await Promise.all([import("./chroot.js"), import("./oci.js"), import("./plain-chroot.js")]);
  const unshareTool = tool("unshare");
  const userArgs = rootless ? ["--user", "--map-root-user"] : [];
  const unshare = await probe(unshareTool, "util-linux unshare is not installed", [...userArgs, "--mount", "--pid", "--fork", "true"], "refused");
  const mnt = join(dir, "mnt");
  await mkdir(mnt);
  const mount = unshare.ok
    ? await probe(unshareTool, "", [...userArgs, "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "kiln-probe", mnt], "refused")
    : { ok: false, reason: "needs a mount namespace" };
  // A root filesystem holding only the static busybox: what the runtime and chroot probes run.
  const root = join(dir, "root");
  await mkdir(root);
  const busybox = staticBusybox();
  if (busybox) await copyFile(busybox, join(root, "true"));
  let oci: Probe = NO_PROBE;
  const runtime = pickRuntime();
  if (!runtime) oci = { ok: false, reason: "no OCI runtime installed (crun or runc)" };
  else if (!busybox) oci = { ok: false, reason: "no static busybox on the host to probe the runtime with" };
  else {
    try {
      const runner = createOciRunner({ runtime, workDir: join(dir, "oci") });
      const r = await runner.run({ rootfs: root, argv: ["/true"], env: [], cwd: "/", user: "", network: "host" });
      oci = r.exitCode === 0 ? { ok: true, reason: "" } : { ok: false, reason: why(r.outputTail, `exit code ${r.exitCode}`) };
    } catch (err) {
      const text = err instanceof IsolationError ? err.reason : (err as Error).message;
      // the runtime runs inside a pid namespace of kiln's (so it dies with kiln): where unshare is
      // refused, that is the first thing that fails, before the runtime could say anything
      const wrapper = /^\s*unshare: /.test(text);
      oci = { ok: false, reason: wrapper ? `its pid namespace is refused: ${why(text, "refused")}` : why(text, "refused") };
    }
  }
  const mknod = await probe(tool("mknod"), "coreutils mknod is not installed", [join(dir, "null"), "c", "1", "3"], "refused");
  const chroot = await probe(tool("chroot"), "coreutils chroot is not installed", [busybox ? root : "/", busybox ? "/true" : "true"], "refused");
  let plainChroot: Probe;
  const setpriv = tool("setpriv");
  if (!setpriv) plainChroot = { ok: false, reason: "util-linux setpriv is not installed" };
  else if (!busybox) plainChroot = { ok: false, reason: "no static busybox on the host (Debian package busybox-static)" };
  else if (!chroot.ok) plainChroot = { ok: false, reason: `chroot is refused (${chroot.reason})` };
  else {
    await copyFile(busybox, join(root, "busybox"));
    plainChroot = await probe(setpriv, "", [...plainChrootPrelude(setpriv), tool("chroot") as string, root, "/busybox", "setpriv", "--inh-caps", DROPPED_IN_ROOT.map((c) => `-${c}`).join(","), "--", "/true"], "refused");
  }
  const prootTool = tool("proot");
  const proot = prootTool
    ? await probe(prootTool, "", ["-0", "-w", "/", "-r", busybox ? root : "/", busybox ? "/true" : "true"], "ptrace is refused")
    : { ok: false, reason: "proot is not installed (Debian package proot)" };
  return { unshare, mount, oci, mknod, chroot, plainChroot, proot };
}

function modes(uid: number, p: PreflightReport["probes"]): Record<ConcreteIsolation, Probe> {
  const need = (pr: Probe, what: string): Probe => (pr.ok ? pr : { ok: false, reason: `${what} (${pr.reason})` });
  const all = (...ps: Probe[]): Probe => ps.find((x) => !x.ok) ?? { ok: true, reason: "" };
  const ns = uid === 0 ? "unshare of a mount and pid namespace is refused" : "unshare of a user namespace is refused";
  return {
    oci: need(p.oci, "the OCI runtime cannot start a container"),
    chroot: all(need(p.unshare, ns), need(p.mount, "mount is refused")),
    "plain-chroot":
      uid !== 0
        ? { ok: false, reason: "it needs root (uid 0 with CAP_SYS_CHROOT and CAP_SETPCAP)" }
        : all(need(p.chroot, "chroot(2) is refused"), need(p.plainChroot, "the privilege drop after chroot fails")),
    proot: need(p.proot, "ptrace path translation does not work"),
  };
}

let cached: Promise<PreflightReport> | undefined;

/** Probe this process once (cached); cheap: a handful of short helper processes. */
export function preflight(): Promise<PreflightReport> {
  cached ??= (async () => {
    const uid = process.getuid?.() ?? 0;
    const dir = await mkdtemp(join(tmpdir(), "kiln-preflight-"));
    try {
      const probes = await runProbes(uid !== 0, dir);
      // reasons name no temporary path
      for (const p of Object.values(probes)) p.reason = p.reason.split(dir).join("<probe dir>");
      return { uid, ...status(), probes, modes: modes(uid, probes) };
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  })();
  return cached;
}

const ORDER: ConcreteIsolation[] = ["oci", "chroot", "plain-chroot", "proot"];

export interface IsolationChoice {
  isolation: ConcreteIsolation;
  /** Why this mode (one short phrase for progress). */
  why: string;
}

/** The isolation to use: the requested one when it works, else (auto) the strongest that does. */
export function chooseIsolation(requested: Isolation, report: PreflightReport): IsolationChoice {
  if (requested !== "auto") {
    const m = report.modes[requested];
    if (!m) throw new KilnError("OPTION_INVALID", `unknown isolation "${String(requested)}" (use ${ISOLATIONS.join(", ")})`);
    if (!m.ok) throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "${requested}" cannot work here: ${m.reason}`);
    return { isolation: requested, why: "requested" };
  }
  const failed: string[] = [];
  for (const mode of ORDER) {
    const m = report.modes[mode];
    if (m.ok) return { isolation: mode, why: failed.length === 0 ? "strongest available" : `${failed.join("; ")}` };
    failed.push(`${mode}: ${m.reason}`);
  }
  throw new KilnError("ISOLATION_UNAVAILABLE", 
    `no RUN isolation works here (uid ${report.uid}): ${failed.join("; ")}. ` +
      "oci and chroot need unshare and mount (CAP_SYS_ADMIN or user namespaces, unconfined seccomp); plain-chroot needs root with CAP_SYS_CHROOT and CAP_SETPCAP; proot needs ptrace",
  );
}
