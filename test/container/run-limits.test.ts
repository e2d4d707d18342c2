// `kiln run --memory/--cpus` (cgroup limits through the OCI runtime as root: the container's own
// cgroup files show them, and a process over the memory limit is OOM-killed) and their one-line
// refusal where cgroups are not available; `--init` (the host's static tini as pid 1 or
// subreaper): an orphan is reparented to it and reaped, and a forwarded SIGTERM reaches the child.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { useBusyboxBase } from "../helpers/busybox.js";
import { KILN_BIN, kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const base = useBusyboxBase();
let cache: string;

beforeAll(async () => {
  cache = await temps.make("kiln-limits-cache-");
  expect((await kiln(["tag", "--cache-dir", cache, `oci-layout://${base().layout}:${base().tag}`, "bb:1"])).code).toBe(0);
});
afterAll(() => temps.cleanup());

const krun = (args: string[]) => kiln(["run", "--cache-dir", cache, ...args]);

describe("kiln run --memory/--cpus", () => {
  it("sets the container's cgroup limits under --isolation oci", async () => {
    const r = await krun(["--isolation", "oci", "--memory", "64m", "--cpus", "0.5", "bb:1", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"]);
    expect(r).toEqual({ code: 0, stdout: `${64 * 1024 * 1024}\n50000\n100000\n`, stderr: "" });
  });

  it("a process over the memory limit is killed (137); under the limit it runs", async () => {
    // dd allocates its block size in one buffer and touches it
    const over = await krun(["--isolation", "oci", "-m", "16m", "bb:1", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    expect(over.code).toBe(137);
    const under = await krun(["--isolation", "oci", "-m", "128m", "bb:1", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    expect(under.code, under.stderr).toBe(0);
  });

  it.each(["chroot", "plain-chroot", "proot"])("--isolation %s refuses them in one line (no cgroups there)", async (isolation) => {
    const r = await krun(["--isolation", isolation, "--memory", "64m", "bb:1", "true"]);
    expect(r).toEqual({ code: 125, stdout: "", stderr: `error: kiln run: --memory/--cpus need cgroups, which are not available for isolation ${isolation} (only --isolation oci as root sets them)\n` });
  });

  it("bad values are usage errors", async () => {
    expect((await krun(["--memory", "1k", "bb:1", "true"])).stderr).toBe("error: kiln run: --memory 1k: the minimum is 6MiB (as docker)\n");
    expect((await krun(["--cpus", "0", "bb:1", "true"])).stderr).toMatch(/^error: kiln run: --cpus 0: expected a number from 0.01 to \d+ \(the CPUs available\)\n$/);
    expect((await krun(["--memory", "lots", "bb:1", "true"])).stderr).toMatch(/invalid size "lots"/);
  });
});

describe("kiln run --init", () => {
  // the orphan (a sleep whose parent shell exited) is reparented to the init, and reaped when it ends
  const script = [
    "sh -c 'sleep 0.3 & echo $! > /orphan'",
    "o=$(cat /orphan)",
    "p=$(awk '{print $4}' /proc/$o/stat)",
    "echo parent=$p $(cat /proc/$p/comm)",
    "sleep 0.6",
    "grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | wc -l",
    "test -e /proc/$o && echo orphan-left || echo orphan-reaped",
  ].join("; ");

  it.each(["oci", "chroot"])("reaps an orphan under --isolation %s", async (isolation) => {
    const r = await krun(["--isolation", isolation, "--init", "bb:1", "sh", "-c", script]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // reparented to the init (pid 1 under oci; the command's subreaper under chroot), then reaped: no zombie left
    expect(r.stdout).toMatch(isolation === "oci" ? /^parent=1 init\n0\norphan-reaped\n$/ : /^parent=\d+ init\n0\norphan-reaped\n$/);
  });

  it.each(["plain-chroot", "proot"])("starts the command through the init under --isolation %s too", async (isolation) => {
    const r = await krun(["--isolation", isolation, "--init", "bb:1", "sh", "-c", "echo hi; exit 5"]);
    expect(r).toEqual({ code: 5, stdout: "hi\n", stderr: "" });
  });

  it.each(["oci", "chroot"])("a forwarded SIGTERM reaches the child under --isolation %s", async (isolation) => {
    const child = spawn(process.execPath, [KILN_BIN, "run", "--cache-dir", cache, "--isolation", isolation, "--init", "--stop-timeout", "30", "bb:1", "sh", "-c", 'trap "echo got TERM; exit 42" TERM; echo ready; sleep 60 & wait'], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const ready = new Promise<void>((r) => child.stdout.on("data", (b: Buffer) => ((out += b.toString()), out.includes("ready") && r())));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    await ready;
    const t0 = Date.now();
    child.kill("SIGTERM");
    expect(await exited, err).toBe(42);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(out).toBe("ready\ngot TERM\n");
  });
});
