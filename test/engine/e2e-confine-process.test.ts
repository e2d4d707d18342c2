// End-to-end confinement of a RUN's processes (issue #10, escape 4 and the process items):
// device nodes from a layer (a loop device attached to a sentinel file, a node the step makes
// itself) cannot be opened under --isolation chroot or oci, with either snapshotter, while kiln's
// own /dev nodes work; a RUN's processes die within ~2 s of a kill -9 of kiln (chroot, oci,
// plain-chroot; rootless chroot and oci too); after such a kill no file holding a secret's bytes
// is left under the cache dir or the temporary directory (chroot, oci, as root and rootless); an
// isolation that refuses to start the process is reported as such (ISOLATION_FAILED), not as the
// command's exit code.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { makeTar } from "../snapshot/helpers.js";
import { useBusyboxBase } from "../helpers/busybox.js";
import { writeHandLayout } from "../helpers/hand-layout.js";
import { KILN_BIN, REPO_ROOT, expectBuilt, kiln, mustRun, run } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";

const temps = new TempDirs();
const base = useBusyboxBase();
const loops: string[] = [];
afterAll(async () => {
  for (const l of loops) await run("losetup", ["-d", l]);
  await temps.cleanup();
});

const MATRIX = (["oci", "chroot"] as const).flatMap((isolation) => (["overlay", "dir"] as const).map((snapshotter) => ({ isolation, snapshotter })));

async function context(dockerfile: string): Promise<string> {
  const ctx = await temps.make("kiln-ctx-");
  await writeFile(join(ctx, "Dockerfile"), dockerfile);
  return ctx;
}

/** Processes (other than zombies) whose command line contains `marker`. */
function processesWith(marker: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmdline.includes(marker)) found.push(`${pid}: ${cmdline.replace(/\0/g, " ")}`);
    } catch {
      /* gone */
    }
  }
  return found;
}

async function waitFor<T>(what: string, ms: number, probe: () => T | undefined): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once the build's RUN printed `started`; rejects when the build ended first. Returns the output so far (growing). */
async function untilRunStarted(child: ReturnType<typeof spawn>, exited: Promise<unknown>): Promise<() => string> {
  let text = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (b: Buffer): void => {
      text += b.toString();
      if (/^#\d+ started$/m.test(text)) resolve();
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exited.then(() => reject(new Error(`build ended before its RUN started:\n${text}`)));
  });
  return () => text;
}

/** Start `kiln build` and resolve once the RUN printed `started`; the caller kills it. */
async function startBuild(args: string[], env: Record<string, string> = {}): Promise<{ pid: number; exited: Promise<number | null>; output: () => string }> {
  const child = spawn(process.execPath, [KILN_BIN, "build", "--progress", "plain", ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  // "exit", not "close": processes that outlive kiln would hold its output pipes open
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const output = await untilRunStarted(child, exited);
  return { pid: child.pid as number, exited, output };
}

/** When a test fails before its kill: the build must not outlive it. */
function killIfRunning(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
}

/** Files under `dirs` whose content holds `needle` (devices, fifos and sockets skipped). */
async function filesHolding(needle: string, dirs: string[]): Promise<string[]> {
  const r = await run("grep", ["-rlF", "-D", "skip", "--", needle, ...dirs]);
  return r.stdout.split("\n").filter((l) => l !== "");
}

describe("escape 4: device nodes from a layer cannot be opened", () => {
  for (const { isolation, snapshotter } of MATRIX) {
    it(`a block node of a loop device holding a sentinel, and one the step makes, are refused; kiln's /dev nodes work (${isolation}, ${snapshotter})`, async () => {
      const dir = await temps.make("kiln-dev-");
      const marker = `SENTINEL${randomBytes(8).toString("hex")}`;
      const sentinel = join(dir, "disk.img");
      await writeFile(sentinel, Buffer.alloc(4096, `${marker}\n`));
      const before = { content: await readFile(sentinel), mtime: (await stat(sentinel)).mtimeMs };
      const loop = (await mustRun("losetup", ["-f", "--show", sentinel])).stdout.trim();
      loops.push(loop);
      const rdev = (await stat(loop)).rdev;
      const [major, minor] = [Math.floor(rdev / 256) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00)];
      const layout = await writeHandLayout(join(dir, "base"), [
        makeTar([
          { name: "bin/", type: "dir" },
          { name: "bin/busybox", content: await readFile("/bin/busybox"), mode: 0o755 },
          { name: "bin/sh", type: "symlink", linkname: "busybox" },
          { name: "keep/", type: "dir" },
          { name: "keep/disk", type: "block", devmajor: major, devminor: minor, mode: 0o666 },
          { name: "keep/mem", type: "char", devmajor: 1, devminor: 1, mode: 0o666 },
        ]),
      ]);
      const ctx = await context(`FROM base
RUN /bin/busybox sh -c 'for n in /keep/disk /keep/mem; do /bin/busybox head -c 64 $n && echo "read $n"; echo pwned | /bin/busybox dd of=$n conv=notrunc 2>/dev/null && echo "wrote $n"; done; \\
  /bin/busybox mknod /made b ${major} ${minor} && /bin/busybox head -c 64 /made && echo "read /made"; /bin/busybox rm -f /made; \\
  /bin/busybox mknod /dev/made b ${major} ${minor} && /bin/busybox head -c 64 /dev/made && echo "read /dev/made"; \\
  /bin/busybox mount -o remount,dev / && echo remounted; \\
  echo ok > /dev/null && /bin/busybox head -c 4 /dev/zero | /bin/busybox wc -c > /zero-bytes; /bin/busybox head -c 4 /dev/urandom | /bin/busybox wc -c >> /zero-bytes; true'
`);
      const layoutOut = join(dir, "out");
      const r = await kiln(["build", "--progress", "plain", "--isolation", isolation, "--snapshotter", snapshotter, "--cache-dir", join(dir, "cache"), "--build-context", `base=${layout.ref}`, "-o", `type=oci,dest=${layoutOut}`, "-t", "t:1", ctx]);
      expectBuilt(r);
      expect(r.stderr, "a device node was opened").not.toMatch(/^#\d+ (read \/|wrote \/|remounted)/m);
      expect(r.stderr).not.toContain(marker);
      expect(r.stderr).toMatch(/\/keep\/disk: (Permission denied|Operation not permitted)/);
      expect(await readFile(sentinel)).toEqual(before.content);
      expect((await stat(sentinel)).mtimeMs).toBe(before.mtime);
      // kiln's own nodes (binds of the host's) are usable
      const unpacked = await umociUnpack(temps, layoutOut, "1");
      expect(await readFile(join(unpacked, "zero-bytes"), "utf8")).toBe("4\n4\n");
    });
  }
});

describe("a RUN's processes die with kiln", () => {
  for (const isolation of ["chroot", "oci", "plain-chroot"] as const) {
    it(`kill -9 of kiln during a RUN ends the RUN's processes within 2 s (${isolation}, dir)`, async () => {
      const dir = await temps.make("kiln-die-");
      const marker = `MARK${randomBytes(8).toString("hex")}`;
      const ctx = await context(`FROM base
RUN sh -c 'while :; do date > /tmp/heartbeat; sleep 0.2; done # ${marker}' & echo started; sleep 600; : ${marker}
`);
      const b = await startBuild(["--isolation", isolation, "--snapshotter", "dir", "--cache-dir", join(dir, "cache"), "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${join(dir, "out")}`, ctx]);
      onTestFinished(() => killIfRunning(b.pid));
      await waitFor("the RUN's processes", 5000, () => (processesWith(marker).length >= 2 && processesWith(join(dir, "cache")).length >= 2 ? true : undefined));
      process.kill(b.pid, "SIGKILL");
      await b.exited;
      const t0 = Date.now();
      // neither the step's processes nor kiln's helpers (unshare, the setup shell, the runtime,
      // timeout: their command lines name the cache dir)
      const left = (): string[] => [...processesWith(marker), ...processesWith(join(dir, "cache"))];
      await waitFor(`no process of the step (left: ${left().join("; ")})`, 2000, () => (left().length === 0 ? true : undefined));
      expect(Date.now() - t0).toBeLessThan(2000);
      // the next build cleans up what the killed one left (mounts, run directories)
      expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", join(dir, "cache"), "-o", `type=oci,dest=${join(dir, "out2")}`, await context("FROM scratch\nENV A=1\n")]));
    });
  }
});

describe("secrets vanish with kiln", () => {
  for (const isolation of ["chroot", "oci"] as const) {
    it(`after kill -9 during a RUN with a secret, no file under the cache dir or tmp holds its bytes (${isolation}, dir)`, async () => {
      const dir = await temps.make("kiln-secret-");
      const secret = `TOPSECRET${randomBytes(12).toString("hex")}`;
      const src = join(dir, "src", "secret.txt");
      await mkdir(join(dir, "src"), { mode: 0o700 });
      await writeFile(src, secret);
      const tmp = join(dir, "tmp");
      await mkdir(tmp);
      await chmod(tmp, 0o1777);
      const cache = join(dir, "cache");
      const ctx = await context(`FROM base
RUN --mount=type=secret,id=s grep -c TOPSECRET /run/secrets/s && echo started && sleep 600
`);
      const b = await startBuild(["--isolation", isolation, "--snapshotter", "dir", "--cache-dir", cache, "--secret", `id=s,src=${src}`, "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${join(dir, "out")}`, ctx], { TMPDIR: tmp });
      onTestFinished(() => killIfRunning(b.pid));
      expect(b.output()).toMatch(/#\d+ 1\n/); // the step could read it
      // while the step runs, no host file holds it either (only the source)
      expect(await filesHolding(secret, [cache, tmp, "/dev/shm"])).toEqual([]);
      process.kill(b.pid, "SIGKILL");
      await b.exited;
      await new Promise((r) => setTimeout(r, 500));
      expect(await filesHolding(secret, [cache, tmp, "/dev/shm"])).toEqual([]);
      expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "-o", `type=oci,dest=${join(dir, "out2")}`, await context("FROM scratch\nENV A=1\n")]));
    });
  }
});

const ROOTLESS_USER = "kiln-rootless";

/** The unprivileged user of test/run/rootless.test.ts (created here too, with a subordinate id range). */
async function rootlessUser(): Promise<{ uid: number; gid: number }> {
  if ((await run("id", [ROOTLESS_USER])).code !== 0) await mustRun("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ROOTLESS_USER]);
  for (const f of ["/etc/subuid", "/etc/subgid"]) {
    const text = await readFile(f, "utf8").catch(() => "");
    if (!text.split("\n").some((l) => l.startsWith(`${ROOTLESS_USER}:`))) await writeFile(f, `${text}${ROOTLESS_USER}:1300000:65536\n`);
  }
  const uid = Number((await mustRun("id", ["-u", ROOTLESS_USER])).stdout.trim());
  const gid = Number((await mustRun("id", ["-g", ROOTLESS_USER])).stdout.trim());
  return { uid, gid };
}

describe("rootless: a RUN's processes and secrets die with kiln", () => {
  for (const isolation of ["chroot", "oci"] as const) {
    it(`kill -9 of a rootless kiln during a RUN with a secret: its processes are gone within 2 s, no file holds the secret (${isolation})`, async () => {
      const { uid, gid } = await rootlessUser();
      const dir = await temps.make("kiln-rl-");
      await chmod(dir, 0o755);
      const home = join(dir, "home");
      await mkdir(home);
      await mkdir(join(dir, "tmp"));
      await mustRun("cp", ["-r", base().layout, join(dir, "base")]);
      await mustRun("chown", ["-R", `${uid}:${gid}`, home, join(dir, "tmp"), join(dir, "base")]);
      const marker = `MARK${randomBytes(8).toString("hex")}`;
      const secret = `TOPSECRET${randomBytes(12).toString("hex")}`;
      const src = join(dir, "secret.txt");
      await writeFile(src, secret);
      await mustRun("chown", [`${uid}:${gid}`, src]);
      const ctx = await context(`FROM base
RUN --mount=type=secret,id=s grep -c TOPSECRET /run/secrets/s && sh -c 'sleep 600; : ${marker}' & echo started; sleep 600; : ${marker}
`);
      await chmod(ctx, 0o755);
      await chmod(join(ctx, "Dockerfile"), 0o644);
      const cache = join(home, "cache");
      const child = spawn("setpriv", [`--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--", process.execPath, KILN_BIN, "build", "--progress", "plain", "--isolation", isolation, "--cache-dir", cache, "--secret", `id=s,src=${src}`, "--build-context", `base=oci-layout://${join(dir, "base")}:latest`, "-o", `type=oci,dest=${join(home, "out")}`, ctx], {
        cwd: home,
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, TMPDIR: join(dir, "tmp") },
      });
      onTestFinished(() => killIfRunning(child.pid as number));
      const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
      await untilRunStarted(child, exited);
      await waitFor("the RUN's processes", 5000, () => (processesWith(marker).length >= 2 ? true : undefined));
      expect(await filesHolding(secret, [home, join(dir, "tmp"), "/dev/shm"])).toEqual([]);
      process.kill(child.pid as number, "SIGKILL");
      await exited;
      await waitFor(`no process with the marker (left: ${processesWith(marker).join("; ")})`, 2000, () => (processesWith(marker).length === 0 ? true : undefined));
      expect(await filesHolding(secret, [home, join(dir, "tmp"), "/dev/shm"])).toEqual([]);
    });
  }
});

describe("an isolation failure is not the command's", () => {
  it("chroot(2) refused (no CAP_SYS_CHROOT, which the preflight of chroot does not need): RUN: cannot start the isolated process, code ISOLATION_FAILED", async () => {
    const dir = await temps.make("kiln-isofail-");
    const ctx = await context("FROM base\nRUN echo never\n");
    const args = [KILN_BIN, "build", "--progress", "plain", "--isolation", "chroot", "--cache-dir", join(dir, "cache"), "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${join(dir, "out")}`, ctx];
    const r = await run("setpriv", ["--bounding-set", "-sys_chroot", "--", process.execPath, ...args]);
    expect(r.code, r.stderr).toBe(1);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^error: Dockerfile:2: RUN: cannot start the isolated process: (\/usr\/sbin\/)?chroot: cannot change root directory to .*: Operation not permitted$/);
    expect(r.stderr).not.toContain("did not complete successfully");
    await expect(stat(join(dir, "out"))).rejects.toThrow();
    // the library reports the code
    const lib = await run("setpriv", ["--bounding-set", "-sys_chroot", "--", process.execPath, "--input-type=module", "-e", `
      import { build } from ${JSON.stringify(join(REPO_ROOT, "dist", "index.js"))};
      try { await build({ context: ${JSON.stringify(ctx)}, isolation: "chroot", cacheDir: ${JSON.stringify(join(dir, "cache"))}, buildContexts: { base: ${JSON.stringify(base().buildContext)} }, outputs: [] }); console.log("built"); }
      catch (e) { console.log(e.name, e.code); }
    `]);
    expect(lib.stdout.trim()).toBe("DockerfileError ISOLATION_FAILED");
  });

  it("an OCI runtime that refuses to create the container (a runtime on PATH that fails for the step, not the probe): ISOLATION_FAILED with its message", async () => {
    const dir = await temps.make("kiln-isofail-oci-");
    const shim = join(dir, "bin");
    await mkdir(shim);
    // passes the preflight's probe (argv /true) through to the real runtime; refuses the step's container
    const script = `#!/bin/sh
for a; do case "$a" in --bundle) bundle=next;; *) [ "$bundle" = next ] && bundle="$a";; esac; done
if [ -n "$bundle" ] && [ "$bundle" != next ] && grep -q never "$bundle/config.json" 2>/dev/null; then
  echo 'runc run failed: unable to apply cgroup configuration: mkdir /sys/fs/cgroup/pids/kiln: permission denied' >&2; exit 1
fi
exec /usr/bin/$(basename "$0") "$@"
`;
    for (const rt of ["runc", "crun"]) {
      await writeFile(join(shim, rt), script);
      await chmod(join(shim, rt), 0o755);
    }
    const ctx = await context("FROM base\nRUN echo never\n");
    const r = await kiln(["build", "--progress", "plain", "--isolation", "oci", "--cache-dir", join(dir, "cache"), "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${join(dir, "out")}`, ctx], {
      env: { PATH: `${shim}:${process.env.PATH ?? "/usr/bin:/bin"}` },
    });
    expect(r.code, r.stderr).toBe(1);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    expect(errors).toEqual(["error: Dockerfile:2: RUN: cannot start the isolated process: runc run failed: unable to apply cgroup configuration: mkdir /sys/fs/cgroup/pids/kiln: permission denied"]);
  });

  it("the command's own failure stays the command's", async () => {
    const dir = await temps.make("kiln-cmdfail-");
    for (const isolation of ["chroot", "oci"]) {
      const r = await kiln(["build", "--progress", "plain", "--isolation", isolation, "--cache-dir", join(dir, "cache"), "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${join(dir, "out")}`, await context("FROM base\nRUN exit 3\n")]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/error: Dockerfile:2: RUN: process "\/bin\/sh -c exit 3" did not complete successfully: exit code: 3/);
    }
  });
});
