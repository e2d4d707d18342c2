import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRunner, type Runner, type RunSpec } from "../../src/run/index.js";
import { busyboxRoot, tempDir } from "../snapshot/helpers.js";

const ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "GREETING=hello world"];

const backends: Array<{ label: string; make: (workDir: string) => Promise<Runner> }> = [
  { label: "oci crun", make: (workDir) => createRunner("oci", { runtime: "crun", workDir }) },
  { label: "oci runc", make: (workDir) => createRunner("oci", { runtime: "runc", workDir }) },
  { label: "chroot", make: (workDir) => createRunner("chroot", { workDir }) },
];

for (const backend of backends) {
  describe(`runner: ${backend.label}`, () => {
    let t: { dir: string; cleanup: () => void };
    let root: string;
    let work: string;
    let runner: Runner;
    const hostSentinel = () => join(t.dir, "host-sentinel");

    beforeAll(async () => {
      t = tempDir("kiln-run-");
      root = join(t.dir, "rootfs");
      work = join(t.dir, "work");
      mkdirSync(root);
      busyboxRoot(root);
      writeFileSync(hostSentinel(), "host");
      runner = await backend.make(work);
    });
    afterAll(() => t.cleanup());

    const spec = (script: string, extra: Partial<RunSpec> = {}): RunSpec => ({
      rootfs: root,
      argv: ["/bin/sh", "-c", script],
      env: ENV,
      cwd: "/",
      user: "",
      network: "host",
      ...extra,
    });

    it("runs with the given env, streams output and returns the exit code", async () => {
      const out: Buffer[] = [];
      const r = await runner.run(spec('echo "$GREETING"; echo to-stderr >&2; exit 3', { stdout: (b) => out.push(b) }));
      expect(r.exitCode).toBe(3);
      expect(Buffer.concat(out).toString()).toBe("hello world\n");
      expect(r.outputTail).toContain("hello world");
      expect(r.outputTail).toContain("to-stderr");
    });

    it("keeps only the last lines in the output tail", async () => {
      const r = await runner.run(spec("i=0; while [ $i -lt 100 ]; do echo line$i; i=$((i+1)); done"));
      expect(r.exitCode).toBe(0);
      const lines = r.outputTail.split("\n");
      expect(lines.length).toBe(20);
      expect(lines[19]).toBe("line99");
    });

    it("creates and enters the working directory", async () => {
      const r = await runner.run(spec("pwd", { cwd: "/work/dir" }));
      expect(r.outputTail).toBe("/work/dir");
      expect(existsSync(join(root, "work/dir"))).toBe(true);
    });

    it("resolves USER by name, number and name:group", async () => {
      expect((await runner.run(spec("id -u; id -g; id -G", { user: "app" }))).outputTail).toBe("1000\n1000\n1000 50 60");
      expect((await runner.run(spec("id -u; id -g", { user: "4242:4343" }))).outputTail).toBe("4242\n4343");
      expect((await runner.run(spec("id -u; id -g", { user: "app:staff" }))).outputTail).toBe("1000\n50");
      expect((await runner.run(spec("id -u")))).toMatchObject({ outputTail: "0" });
      await expect(runner.run(spec("true", { user: "ghost" }))).rejects.toThrow("unable to find user ghost");
    });

    it("provides /etc/hosts, resolv.conf, hostname, /dev nodes and a private /proc", async () => {
      const r = await runner.run(
        spec("cat /etc/hosts; hostname; test -s /etc/resolv.conf && echo resolv-ok; echo hi > /dev/null && head -c 4 /dev/zero | wc -c; ls /proc | grep -c '^[0-9]'", { hostname: "buildbox" }),
      );
      expect(r.exitCode).toBe(0);
      expect(r.outputTail).toContain("127.0.0.1\tlocalhost");
      expect(r.outputTail).toContain("buildbox");
      expect(r.outputTail).toContain("resolv-ok");
      expect(r.outputTail).toMatch(/^4$/m);
      // fresh pid namespace: only a handful of processes are visible
      const procs = Number(r.outputTail.split("\n").at(-1));
      expect(procs).toBeGreaterThan(0);
      expect(procs).toBeLessThan(8);
      // injected files and mount points were removed from the rootfs afterwards
      expect(existsSync(join(root, "etc/hosts"))).toBe(false);
      expect(existsSync(join(root, "etc/hostname"))).toBe(false);
      expect(existsSync(join(root, "proc"))).toBe(false);
      expect(existsSync(join(root, "dev"))).toBe(false);
    });

    it("mounts /etc/hosts and /etc/resolv.conf read-only and provides no /etc/hostname (as BuildKit does)", async () => {
      const r = await runner.run(
        spec("echo x >> /etc/hosts || echo hosts-refused; echo x >> /etc/resolv.conf || echo resolv-refused; rm -f /etc/hosts 2>/dev/null || echo rm-refused; test ! -e /etc/hostname && echo h > /etc/hostname && echo hostname-ok; echo \"appended=$(grep -c '^x$' /etc/hosts)\""),
      );
      expect(r.outputTail).toContain("Read-only file system");
      expect(r.outputTail).toContain("hosts-refused");
      expect(r.outputTail).toContain("resolv-refused");
      expect(r.outputTail).toContain("rm-refused");
      expect(r.outputTail).toContain("hostname-ok");
      // (stdout and stderr interleave in any order: look for the line, not the last one)
      expect(r.outputTail).toContain("appended=0");
      // the step's own /etc/hostname is an ordinary file of the rootfs (a layer would keep it)
      expect(readFileSync(join(root, "etc/hostname"), "utf8")).toBe("h\n");
      rmSync(join(root, "etc/hostname"));
    });

    it("has only loopback with network none", async () => {
      const none = await runner.run(spec("ls /sys/class/net", { network: "none" }));
      expect(none.outputTail).toBe("lo");
      const host = await runner.run(spec("ls /sys/class/net | wc -l", { network: "host" }));
      expect(Number(host.outputTail)).toBeGreaterThan(1);
    });

    it("mounts /sys read-only and makes host-escape attempts stay inside", async () => {
      const sentinel = hostSentinel();
      const r = await runner.run(
        spec(
          `touch /sys/kiln 2>/dev/null && echo sys-writable; ` +
            `{ echo escaped > /proc/1/root/../../..${sentinel}; } 2>/dev/null; ` +
            `chroot /proc/1/root /bin/sh -c 'echo escaped2 > ../../../..${sentinel}' 2>/dev/null; ` +
            `ls /proc/1/root/ | tr '\\n' ' '; echo`,
        ),
      );
      expect(r.outputTail).not.toContain("sys-writable");
      // the mount namespace's root is the rootfs itself: climbing from the process's root ends
      // there
      const top = await runner.run(spec('[ "$(ls -a /proc/self/root/../../..)" = "$(ls -a /)" ] && echo same-root; grep -c oldroot /proc/self/mountinfo'));
      expect(top.outputTail).toBe("same-root\n0");
      expect(readFileSync(sentinel, "utf8")).toBe("host");
      // anything written landed inside the rootfs
      expect(readdirSync(t.dir).sort()).toEqual(["host-sentinel", "rootfs", "work"]);
    });

    it("bind-mounts and tmpfs-mounts extra targets, which leave no trace", async () => {
      const src = join(t.dir, "mount-src");
      mkdirSync(src, { recursive: true });
      writeFileSync(join(src, "f"), "from host\n");
      const r = await runner.run(
        spec("cat /mnt/in/f; touch /mnt/in/g 2>/dev/null || echo ro; echo x > /scratch/y && cat /scratch/y", {
          mounts: [
            { type: "bind", source: src, target: "/mnt/in", readonly: true },
            { type: "tmpfs", target: "/scratch" },
          ],
        }),
      );
      expect(r.outputTail).toBe("from host\nro\nx");
      expect(existsSync(join(root, "mnt"))).toBe(false);
      expect(existsSync(join(root, "scratch"))).toBe(false);
    });

    it("kills the command on abort and cleans up", async () => {
      const ac = new AbortController();
      const started = Date.now();
      setTimeout(() => ac.abort(), 1500);
      const r = await runner.run(spec("echo started; sleep 60", { signal: ac.signal }));
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(r.exitCode).not.toBe(0);
      expect(readdirSync(join(work))).toEqual([]);
    });

    it("leaves no run directories behind", () => {
      expect(readdirSync(work)).toEqual([]);
    });
  });
}
