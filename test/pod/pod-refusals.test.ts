// The simulated pod is a real pod (issue #12): inside kiln's image under each variant's podman
// flags, `unshare -m` and `mount -t proc` fail, seccomp is in filter mode, and the capability sets
// are a pod's — with Docker's default profile from ../shared and with the profile the suite
// generates when that file is absent. Bad input: a pod that allows no RUN isolation (uid 1000 and
// a profile without ptrace) and `--isolation oci` / `chroot` in a root pod are one-line errors,
// exit 1, before any work (no step runs, no output is written), while a build without RUN still works there.
import { execFileSync } from "node:child_process";
import { chmod, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useBusyboxBase } from "../helpers/busybox.js";
import { expectBuilt } from "../helpers/kiln.js";
import { DOCKER_DEFAULT_CAPS, podImage, podRun, podWritableDir, writeContext, writeSeccomp, type PodVariant } from "../helpers/pod.js";
import { capNames } from "../../src/run/preflight.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());
const busybox = useBusyboxBase();

let work: string;
const profiles: Record<string, string> = {};

beforeAll(async () => {
  await podImage();
  work = await temps.make("kiln-pod-refusals-");
  await chmod(work, 0o755);
  for (const prefer of ["shared", "generated"] as const) {
    const p = await writeSeccomp(work, { prefer });
    profiles[prefer] = p.path;
    expect(p.source).toBe(prefer); // the shared profile must be there in this checkout's CI
  }
  profiles.noptrace = (await writeSeccomp(work, { ptrace: false })).path;
  await chmod(join(busybox().layout, ".."), 0o755);
  execFileSync("chmod", ["-R", "a+rX", busybox().layout]);
}, 900_000);

const PROOF = [
  "unshare -m true 2>&1; echo unshare=$?",
  "mount -t proc proc /mnt 2>&1; echo mount=$?",
  "unshare -U true 2>&1; echo userns=$?",
  "grep -E '^(CapEff|CapBnd|CapAmb|Seccomp|NoNewPrivs):' /proc/self/status",
  "id -u",
].join("; ");

const DOCKER_CAPS = DOCKER_DEFAULT_CAPS.map((c) => c.toLowerCase()).sort();
// podman's own default set: Docker's without mknod, net_raw, audit_write (see helpers/pod.ts)
const PODMAN_CAPS = DOCKER_CAPS.filter((c) => !["mknod", "net_raw", "audit_write"].includes(c));
const EXPECTED: Record<PodVariant, { uid: string; eff: string[]; bnd: string[]; nnp: string }> = {
  root: { uid: "0", eff: DOCKER_CAPS, bnd: DOCKER_CAPS, nnp: "0" },
  user1000: { uid: "1000", eff: [], bnd: PODMAN_CAPS, nnp: "0" },
  "user1000-nocaps": { uid: "1000", eff: [], bnd: [], nnp: "1" },
};

describe.each(["shared", "generated"] as const)("the simulated pod (%s seccomp profile)", (profile) => {
  it.each(["root", "user1000", "user1000-nocaps"] as const)("%s: no unshare, no mount, seccomp filter on, a pod's capabilities and no_new_privs", async (variant) => {
    const r = await podRun({ variant, seccomp: profiles[profile]!, entrypoint: "sh" }, ["-c", PROOF]);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/unshare failed: Operation not permitted\nunshare=1\n/);
    expect(out).toMatch(/\nmount=32\n/);
    expect(out).toMatch(/userns=1\n/);
    expect(out).toMatch(/^Seccomp:\s+2$/m);
    expect(out).toMatch(/^CapAmb:\s+0+$/m);
    const caps = (k: string) => capNames(new RegExp(`^${k}:\\s+([0-9a-f]+)$`, "m").exec(out)![1]!).sort();
    expect(caps("CapEff")).toEqual(EXPECTED[variant].eff);
    expect(caps("CapBnd")).toEqual(EXPECTED[variant].bnd);
    expect(out).toMatch(new RegExp(`^NoNewPrivs:\\s+${EXPECTED[variant].nnp}$`, "m"));
    expect(out.trim().split("\n").pop()).toBe(EXPECTED[variant].uid);
  }, 120_000);
});

const RUN_BUILD = "FROM base\nRUN echo ran > /ran\n";

async function podBuild(name: string, variant: PodVariant, seccomp: string, dockerfile: string, extra: string[] = [], base = "/bases/busybox") {
  const ctx = await writeContext(join(work, `ctx-${name}`), { Dockerfile: dockerfile });
  const out = await podWritableDir(join(work, `out-${name}`), variant);
  const r = await podRun(
    { variant, seccomp, mounts: { [ctx]: "/workspace/ctx:ro", [out]: "/out", [busybox().layout]: "/bases/busybox:ro" } },
    ["build", "--progress", "plain", ...extra, "--build-context", `base=oci-layout://${base}:latest`, "-o", "type=oci,dest=/out/layout", "ctx"],
  );
  return { r, written: await readdir(out) };
}

describe("bad input in a pod", () => {
  // --user 1000 --cap-drop=ALL (no_new_privs) and Docker's profile without ptrace. The base is a
  // layout that does not exist: the refusal comes before the base is opened, pulled or extracted.
  it("a pod that allows no mode (uid 1000, no capabilities, no ptrace): one line naming each mode's refusal, exit 1, before any work", async () => {
    const { r, written } = await podBuild("none", "user1000-nocaps", profiles.noptrace!, RUN_BUILD, [], "/bases/absent");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: no RUN isolation works here \(uid 1000\): oci: the OCI runtime cannot start a container \(.+\); chroot: unshare of a user namespace is refused \(unshare failed: Operation not permitted\); plain-chroot: it needs root \(uid 0 with CAP_SYS_CHROOT and CAP_SETPCAP\); proot: ptrace path translation does not work \(ptrace\(TRACEME\): Operation not permitted\)\. oci and chroot need .+; proot needs ptrace$/);
    expect(written).toEqual([]);
  }, 120_000);

  it("the same pod builds what needs no RUN", async () => {
    const { r, written } = await podBuild("none-copy", "user1000", profiles.noptrace!, "FROM base\nENV A=1\n");
    expectBuilt(r);
    expect(written).toEqual(["layout"]);
  }, 120_000);

  it("--isolation oci in a root pod: one line naming what refuses the runtime, exit 1, before any work", async () => {
    const { r, written } = await podBuild("oci", "root", profiles.shared!, RUN_BUILD, ["--isolation", "oci"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    // kiln starts the runtime in a pid namespace of its own (so the container dies with kiln):
    // in a pod, creating it is the first refusal, and the line says so
    expect(lines[0]).toMatch(/^error: isolation "oci" cannot work here: the OCI runtime cannot start a container \((its pid namespace is refused: unshare failed: Operation not permitted|runc run failed: unable to start container process: [^()]+)\)$/);
    expect(written).toEqual([]);
  }, 120_000);

  it("--isolation chroot in a root pod: one line naming the refused unshare, exit 1, before any work", async () => {
    const { r, written } = await podBuild("chroot", "root", profiles.shared!, RUN_BUILD, ["--isolation", "chroot"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('error: isolation "chroot" cannot work here: unshare of a mount and pid namespace is refused (unshare failed: Operation not permitted)');
    expect(written).toEqual([]);
  }, 120_000);
});
