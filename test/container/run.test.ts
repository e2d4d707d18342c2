// `kiln run` end to end, through the compiled CLI on the busybox base: exit status passthrough,
// -e/--env-file/-w/-u, -v ro/rw, --mount, --read-only, a fresh upper per run over layers
// extracted once, -it under a pseudo-terminal, a busybox httpd served on loopback with --network
// host and stopped with SIGTERM (nothing left behind), and kiln's own errors as one line, exit 125.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { useBusyboxBase } from "../helpers/busybox.js";
import { expectBuilt, KILN_BIN, kiln, run, type RunResult } from "../helpers/kiln.js";
import { freePort } from "../registry/harness.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const base = useBusyboxBase();
let cache: string;
let httpdImage: string;

beforeAll(async () => {
  cache = await temps.make("kiln-run-cache-");
  expect((await kiln(["tag", "--cache-dir", cache, `oci-layout://${base().layout}:${base().tag}`, "bb:1"])).code).toBe(0);
  const ctx = await temps.make("kiln-run-httpd-");
  await mkdir(join(ctx, "www"));
  await writeFile(join(ctx, "www", "index.html"), "hello from kiln run\n");
  await writeFile(join(ctx, "Dockerfile"), `FROM bb:1\nCOPY www /www\nENTRYPOINT ["httpd", "-f", "-h", "/www"]\nCMD ["-p", "127.0.0.1:80"]\n`);
  expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--load", "-t", "httpd:1", ctx]));
  httpdImage = "httpd:1";
});
afterAll(() => temps.cleanup());

const krun = (args: string[], options: Parameters<typeof kiln>[1] = {}): Promise<RunResult> => kiln(["run", "--cache-dir", cache, ...args], options);

/** Mounts under the cache directory, from this process's mount table. */
function mountsUnderCache(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.split(" ")[4]?.startsWith(cache));
}

async function leftovers(): Promise<string[]> {
  const out: string[] = mountsUnderCache();
  for (const d of ["rootfs", "run"]) out.push(...(await readdir(join(cache, d)).catch(() => [] as string[])).map((n) => `${d}/${n}`));
  return out;
}

describe("kiln run", () => {
  it("passes the process's exit status through (7, 0, 255)", async () => {
    expect((await krun(["bb:1", "sh", "-c", "exit 7"])).code).toBe(7);
    const ok = await krun(["bb:1", "sh", "-c", "echo out; echo err >&2"]);
    expect(ok).toEqual({ code: 0, stdout: "out\n", stderr: "err\n" });
    expect((await krun(["bb:1", "sh", "-c", "exit 255"])).code).toBe(255);
    expect(await leftovers()).toEqual([]);
  });

  it("-e, --env-file, -w, -u 1000:1000 as docker: image ENV, then the file, then -e; HOME from passwd", async () => {
    const dir = await temps.make("kiln-run-env-");
    const envFile = join(dir, "env");
    await writeFile(envFile, "# comment\nFROMFILE=file value\n\nOVER=file\nFROMHOST\n");
    const r = await krun(
      ["-e", "OVER=flag", "-e", "A=1", "--env-file", envFile, "-w", "/tmp/work", "-u", "1000:1000", "bb:1", "sh", "-c", 'echo "$A|$FROMFILE|$OVER|$FROMHOST|$HOME|$PATH"; pwd; id'],
      { env: { FROMHOST: "from kiln" } },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(
      "1|file value|flag|from kiln|/home/app|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/tmp/work\nuid=1000(app) gid=1000(app) groups=1000(app)\n",
    );
    expect((await krun(["-u", "app", "-e", "HOME=/x", "bb:1", "sh", "-c", "echo $HOME; id -u"])).stdout).toBe("/x\n1000\n");
  });

  it("-v read-only and read-write binds, --mount bind and tmpfs, --read-only", async () => {
    const vol = await temps.make("kiln-run-vol-");
    await writeFile(join(vol, "in"), "host data\n");
    const ro = await krun(["-v", `${vol}:/data:ro`, "bb:1", "sh", "-c", "cat /data/in; echo no > /data/out"]);
    expect(ro.code).toBe(1);
    expect(ro.stdout).toBe("host data\n");
    expect(ro.stderr).toMatch(/Read-only file system/);
    await expect(stat(join(vol, "out"))).rejects.toThrow();
    const rw = await krun(["-v", `${vol}:/data`, "bb:1", "sh", "-c", "echo yes > /data/out"]);
    expect(rw.code, rw.stderr).toBe(0);
    expect(await readFile(join(vol, "out"), "utf8")).toBe("yes\n");
    const m = await krun(["--mount", `type=bind,source=${vol},target=/m,readonly`, "--mount", "type=tmpfs,target=/scratch", "bb:1", "sh", "-c", "cat /m/out; touch /scratch/x && grep -c ' /scratch tmpfs' /proc/mounts; touch /m/x"]);
    expect(m.stdout).toBe("yes\n1\n");
    expect(m.code).toBe(1);
    const readOnly = await krun(["--read-only", "--mount", "type=tmpfs,target=/tmp", "bb:1", "sh", "-c", "touch /tmp/ok && echo tmp-ok; touch /etc/nope"]);
    expect(readOnly.stdout).toBe("tmp-ok\n");
    expect(readOnly.stderr).toMatch(/touch: \/etc\/nope: Read-only file system/);
    expect(readOnly.code).toBe(1);
    // a missing -v host directory is created, as docker does
    const fresh = join(vol, "new", "dir");
    expect((await krun(["-v", `${fresh}:/n`, "bb:1", "sh", "-c", "echo made > /n/f"])).code).toBe(0);
    expect(await readFile(join(fresh, "f"), "utf8")).toBe("made\n");
    expect(await leftovers()).toEqual([]);
  });

  it("each run gets a fresh writable upper over layers extracted once (a second run extracts nothing)", async () => {
    const layersDir = join(cache, "layers");
    const inodes = async (): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (const n of await readdir(layersDir)) out[n] = (await stat(join(layersDir, n))).ino;
      return out;
    };
    expect((await krun(["bb:1", "sh", "-c", "echo one > /written; cat /written"])).stdout).toBe("one\n");
    const before = await inodes();
    expect(Object.keys(before).length).toBeGreaterThan(0);
    const second = await krun(["bb:1", "sh", "-c", "test -e /written && echo kept || echo fresh"]);
    expect(second.stdout).toBe("fresh\n");
    expect(await inodes()).toEqual(before);
  });

  it("-it gives the process a pseudo-terminal (driven through script(1))", async () => {
    const cmd = `${process.execPath} ${KILN_BIN} run --cache-dir ${cache} -it bb:1 sh -c 'tty; test -t 0 && echo stdin-is-a-tty; echo "TERM=$TERM"; exit 3'`;
    const r = await run("script", ["-qec", cmd, "/dev/null"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r?\n/);
    expect(r.stdout).toMatch(/stdin-is-a-tty\r?\n/);
    expect(r.stdout).toMatch(/TERM=xterm\r?\n/);
    const piped = await krun(["-i", "bb:1", "sh", "-c", "read x; echo got:$x"], { input: "line\n" });
    expect(piped.stdout).toBe("got:line\n");
  });

  it("serves busybox httpd on loopback with --network host; SIGTERM is forwarded, SIGKILL follows the stop timeout", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [KILN_BIN, "run", "--cache-dir", cache, "--network", "host", "--stop-timeout", "1", httpdImage, "-p", `127.0.0.1:${port}`], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    let body = "";
    for (let i = 0; i < 100 && body === ""; i++) {
      body = await fetch(`http://127.0.0.1:${port}/`).then((res) => res.text(), () => "");
      if (body === "") await new Promise((r) => setTimeout(r, 100));
    }
    expect(body, stderr).toBe("hello from kiln run\n");
    const pids = (await run("pgrep", ["-f", `httpd -f -h /www -p 127.0.0.1:${port}`])).stdout.trim();
    expect(pids).not.toBe("");
    const t0 = Date.now();
    child.kill("SIGTERM");
    // httpd is the container's pid 1 without a SIGTERM handler: the kernel ignores the signal
    // (as under docker), so kiln kills it after --stop-timeout
    expect(await exited).toBe(137);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect((await run("pgrep", ["-f", `httpd -f -h /www -p 127.0.0.1:${port}`])).stdout).toBe("");
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    expect(await leftovers()).toEqual([]);
  });

  it("a process that handles SIGTERM gets it and its own exit status is kiln's", async () => {
    const child = spawn(process.execPath, [KILN_BIN, "run", "--cache-dir", cache, "--stop-timeout", "30", "bb:1", "sh", "-c", 'trap "echo got TERM; exit 42" TERM; echo ready; sleep 60 & wait'], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const ready = new Promise<void>((r) => child.stdout.on("data", (b: Buffer) => ((out += b.toString()), out.includes("ready") && r())));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    await ready;
    const t0 = Date.now();
    child.kill("SIGTERM");
    expect(await exited).toBe(42);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(out).toBe("ready\ngot TERM\n");
    expect(await leftovers()).toEqual([]);
  });

  it.each(["chroot", "plain-chroot", "proot"])("runs under --isolation %s too (output through kiln, exit status passed through)", async (isolation) => {
    const r = await krun(["--isolation", isolation, "-u", "1000:1000", "-e", "X=y", "-w", "/etc", "bb:1", "sh", "-c", "id -u; echo $X; pwd; exit 3"]);
    expect(r).toEqual({ code: 3, stdout: "1000\ny\n/etc\n", stderr: "" });
    expect(await leftovers()).toEqual([]);
  });

  it.each(["plain-chroot", "proot"])("--isolation %s refuses --read-only and -i/-t in one line (nothing can be mounted; no terminal hand-over)", async (isolation) => {
    const ro = await krun(["--isolation", isolation, "--read-only", "bb:1", "true"]);
    expect(ro.code).toBe(125);
    expect(ro.stderr).toBe(`error: kiln run: --read-only needs --isolation oci or chroot; ${isolation} cannot mount the root read-only\n`);
    const i = await krun(["--isolation", isolation, "-i", "bb:1", "true"]);
    expect(i.stderr).toBe(`error: kiln run: -i and -t need a runner that hands kiln's terminal over (--isolation oci or chroot); ${isolation} cannot\n`);
    expect(await leftovers()).toEqual([]);
  });

  it("--isolation chroot: --read-only, -i, -it under a pseudo-terminal, and forwarded signals", async () => {
    const readOnly = await krun(["--isolation", "chroot", "--read-only", "--mount", "type=tmpfs,target=/tmp", "bb:1", "sh", "-c", "touch /tmp/ok && echo tmp-ok; touch /etc/nope"]);
    expect(readOnly.stdout).toBe("tmp-ok\n");
    expect(readOnly.stderr).toMatch(/touch: \/etc\/nope: Read-only file system/);
    expect(readOnly.code).toBe(1);
    const piped = await krun(["--isolation", "chroot", "-i", "bb:1", "sh", "-c", "read x; echo got:$x"], { input: "line\n" });
    expect(piped).toEqual({ code: 0, stdout: "got:line\n", stderr: "" });
    const cmd = `${process.execPath} ${KILN_BIN} run --cache-dir ${cache} --isolation chroot -it bb:1 sh -c 'tty; test -t 0 && test -t 1 && echo stdio-is-a-tty; echo "TERM=$TERM"; exit 3'`;
    const tty = await run("script", ["-qec", cmd, "/dev/null"]);
    expect(tty.code).toBe(3);
    expect(tty.stdout).toMatch(/^\/dev\/console\r?\n/);
    expect(tty.stdout).toMatch(/stdio-is-a-tty\r?\n/);
    expect(tty.stdout).toMatch(/TERM=xterm\r?\n/);
    const child = spawn(process.execPath, [KILN_BIN, "run", "--cache-dir", cache, "--isolation", "chroot", "--stop-timeout", "30", "bb:1", "sh", "-c", 'trap "echo got TERM; exit 42" TERM; echo ready; sleep 60 & wait'], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const ready = new Promise<void>((r) => child.stdout.on("data", (b: Buffer) => ((out += b.toString()), out.includes("ready") && r())));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    await ready;
    child.kill("SIGTERM");
    expect(await exited).toBe(42);
    expect(out).toBe("ready\ngot TERM\n");
    expect(await leftovers()).toEqual([]);
  });

  it("kiln's own errors are one line naming the image and the value, exit 125", async () => {
    const cases: Array<[string[], string]> = [
      [["--pull", "never", "nosuch:1"], `kiln run: image nosuch:1 is not in the local store (pull policy "never")`],
      [["-v", "data:/data", "bb:1", "true"], `kiln run: bad volume spec "data:/data": HOST must be an absolute path (kiln has no named volumes)`],
      [["-v", "/tmp:/x:rx", "bb:1", "true"], `kiln run: bad volume spec "/tmp:/x:rx": unknown option "rx" (kiln supports ro and rw)`],
      [["--mount", "type=volume,target=/x", "bb:1", "true"], `kiln run: bad --mount "type=volume,target=/x": type=volume is not supported (kiln supports type=bind and type=tmpfs)`],
      [["-u", "nobody2", "bb:1", "true"], `kiln run: bb:1: user "nobody2" not found in /etc/passwd`],
      [["-u", "app:nogroup2", "bb:1", "true"], `kiln run: bb:1: group "nogroup2" not found in /etc/group`],
      [["bb:1", "nosuchcmd"], `kiln run: bb:1: executable "nosuchcmd" not found in $PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)`],
      [["--entrypoint", "/no/such", "bb:1"], `kiln run: bb:1: "/no/such": no such executable file in the image`],
      [["-w", "rel", "bb:1", "true"], `kiln run: bb:1: the working directory "rel" must be an absolute path`],
      [["--name", "x", "bb:1", "true"], `kiln run: --name is not supported (kiln keeps no container state; every container is removed when it exits)`],
      [["--bogus", "bb:1"], `kiln run: unknown option --bogus (see: kiln help run)`],
      [["--entrypoint", "", "bb:1"], `kiln run: bb:1: no command specified (the image has no ENTRYPOINT or CMD; give one after the image name)`],
    ];
    for (const [args, message] of cases) {
      const r = await krun(args);
      expect(r.stderr, args.join(" ")).toBe(`error: ${message}\n`);
      expect(r.code, args.join(" ")).toBe(125);
      expect(r.stdout).toBe("");
    }
    expect(await leftovers()).toEqual([]);
  });
});
