// The RUN preflight (issue #12) under real restrictions, each in its own process (the report is
// cached per process): root on this host may use every mode; a root without CAP_SYS_ADMIN (as in
// a pod with the default capabilities) is refused unshare, so oci and chroot are out and auto picks
// plain-chroot; uid 1000 may not chroot or mknod, so plain-chroot names root as what it needs.
// chooseIsolation's messages for an explicit mode and for a pod that allows none.
import { describe, expect, it } from "vitest";
import { join } from "node:path";
import { chooseIsolation, why, type PreflightReport } from "../../src/run/preflight.js";
import { REPO_ROOT, run } from "../helpers/kiln.js";

const SCRIPT = `const m = await import(${JSON.stringify(join(REPO_ROOT, "dist/run/preflight.js"))});
const r = await m.preflight();
let choice; try { choice = m.chooseIsolation("auto", r).isolation; } catch (e) { choice = "error: " + e.message; }
console.log(JSON.stringify({ ...r, choice }));`;

async function report(wrap: string[] = [], asUid?: number): Promise<PreflightReport & { choice: string }> {
  const [cmd, ...pre] = wrap.length > 0 ? wrap : [process.execPath];
  const args = [...pre, ...(wrap.length > 0 ? [process.execPath] : []), "--input-type=module", "-e", SCRIPT];
  const r = await run(cmd!, args, asUid !== undefined ? { asUid, cwd: "/" } : {});
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as PreflightReport & { choice: string };
}

describe("preflight", () => {
  it("as root on this host: every probe and every mode works, auto is oci", async () => {
    const r = await report();
    expect(r.uid).toBe(0);
    expect(r.capEff).toContain("sys_admin");
    expect(r.noNewPrivs).toBe(false);
    for (const [name, p] of Object.entries(r.probes)) expect([name, p.ok, p.reason]).toEqual([name, true, ""]);
    for (const [name, p] of Object.entries(r.modes)) expect([name, p.ok]).toEqual([name, true]);
    expect(r.choice).toBe("oci");
  });

  it("as root without CAP_SYS_ADMIN: unshare refused, plain-chroot and proot remain, auto is plain-chroot", async () => {
    const r = await report(["setpriv", "--bounding-set", "-sys_admin", "--"]);
    expect(r.capBnd).not.toContain("sys_admin");
    expect(r.probes.unshare).toEqual({ ok: false, reason: expect.stringContaining("Operation not permitted") });
    expect(r.probes.mount.ok).toBe(false);
    expect(r.probes.oci.ok).toBe(false);
    expect(r.modes.oci.reason).toMatch(/^the OCI runtime cannot start a container \(.*Operation not permitted/);
    expect(r.modes.chroot.ok).toBe(false);
    expect(r.modes["plain-chroot"]).toEqual({ ok: true, reason: "" });
    expect(r.modes.proot.ok).toBe(true);
    expect(r.choice).toBe("plain-chroot");
  });

  it("with no_new_privs and without CAP_SYS_CHROOT: chroot and plain-chroot are refused, proot remains", async () => {
    const r = await report(["setpriv", "--nnp", "--bounding-set", "-sys_admin,-sys_chroot", "--"]);
    expect(r.noNewPrivs).toBe(true);
    expect(r.probes.chroot.ok).toBe(false);
    expect(r.modes["plain-chroot"].reason).toMatch(/^chroot\(2\) is refused \(.*Operation not permitted/);
    expect(r.choice).toBe("proot");
  });

  it("as uid 1000: no chroot, no mknod; plain-chroot needs root", async () => {
    const r = await report([], 1000);
    expect(r.uid).toBe(1000);
    expect(r.capEff).toEqual([]);
    expect(r.probes.mknod.ok).toBe(false);
    expect(r.probes.chroot.ok).toBe(false);
    expect(r.modes["plain-chroot"]).toEqual({ ok: false, reason: "it needs root (uid 0 with CAP_SYS_CHROOT and CAP_SETPCAP)" });
    expect(r.modes.proot.ok).toBe(true);
  });
});

describe("chooseIsolation", () => {
  const no = (reason: string) => ({ ok: false, reason });
  const report: PreflightReport = {
    uid: 1000,
    capEff: [],
    capBnd: [],
    noNewPrivs: true,
    probes: { unshare: no("x"), mount: no("x"), oci: no("x"), mknod: no("x"), chroot: no("x"), plainChroot: no("x"), proot: no("x") },
    modes: {
      oci: no("unshare of a user namespace is refused (Operation not permitted)"),
      chroot: no("unshare of a user namespace is refused (Operation not permitted)"),
      "plain-chroot": no("it needs root (uid 0 with CAP_SYS_CHROOT and CAP_SETPCAP)"),
      proot: no("ptrace path translation does not work (ptrace is refused)"),
    },
  };

  it("an explicit mode that cannot work is one line naming what is missing", () => {
    expect(() => chooseIsolation("oci", report)).toThrow(/^isolation "oci" cannot work here: unshare of a user namespace is refused \(Operation not permitted\)$/);
  });

  it("a pod that allows no mode: one line naming each mode's refusal and what each needs", () => {
    let msg = "";
    try {
      chooseIsolation("auto", report);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).not.toContain("\n");
    expect(msg).toMatch(/^no RUN isolation works here \(uid 1000\): oci: unshare .*; chroot: .*; plain-chroot: it needs root .*; proot: ptrace path translation does not work/);
    expect(msg).toContain("proot needs ptrace");
  });
});

describe("why (a probe's reason)", () => {
  it("skips runc's logrus warnings and gives the error's msg", () => {
    const stderr = [
      'time="2026-12-03T05:39:42Z" level=warning msg="unable to get oom kill count" error="openat2 /sys/fs/cgroup/memory/x: no such file or directory"',
      'time="2026-12-03T05:39:42Z" level=error msg="runc run failed: unable to apply cgroup configuration: mkdir /sys/fs/cgroup/cpuset/x: read-only \\"file\\" system"',
    ].join("\n");
    expect(why(stderr, "refused")).toBe('runc run failed: unable to apply cgroup configuration: mkdir /sys/fs/cgroup/cpuset/x: read-only "file" system');
  });

  it("skips proot's warnings and infos and drops its 'proot error: ' prefix", () => {
    const stderr = 'proot warning: can\'t chdir("/w/./.") in the guest rootfs: No such file or directory\nproot info: default working directory is now "/"\nproot error: ptrace(TRACEME): Operation not permitted\nproot error: execve("/true"): Operation not permitted\n';
    expect(why(stderr, "ptrace is refused")).toBe("ptrace(TRACEME): Operation not permitted");
  });

  it("keeps the first line of other tools, without their name, and falls back when empty", () => {
    expect(why("unshare: unshare failed: Operation not permitted\n", "refused")).toBe("unshare failed: Operation not permitted");
    expect(why("\n", "refused")).toBe("refused");
  });
});
