import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { createDirRootFS, cleanupStale } from "../../src/snapshot/rootfs.js";
import { createWorkDir } from "../../src/snapshot/workdir.js";
import { createRunner } from "../../src/run/index.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import { makeTar, tarLayer, tempDir } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir("kiln-rootfs-");
});
afterEach(() => t.cleanup());

describe("directory root filesystem", () => {
  it("applies compressed layers, snapshots a RUN and disposes", async () => {
    const rootfs = await createDirRootFS(t.dir);
    expect(rootfs.dir.startsWith(join(t.dir, "rootfs"))).toBe(true);
    const tarBuf = makeTar([
      { name: "bin/", type: "dir" },
      { name: "bin/busybox", content: readFileSync("/bin/busybox"), mode: 0o755 },
      { name: "bin/sh", type: "symlink", linkname: "busybox" },
      { name: "etc/passwd", content: "root:x:0:0::/root:/bin/sh\n" },
      { name: "etc/old", content: "old" },
    ]);
    await rootfs.applyLayer(tarLayer(tarBuf, true));
    await rootfs.applyLayer(tarLayer(makeTar([{ name: "etc/.wh.old" }, { name: "etc/new", content: "n" }])));
    expect(readdirSync(join(rootfs.dir, "etc")).sort()).toEqual(["new", "passwd"]);

    // a RUN step through a real runner: injected files and mount points never reach the layer
    // (/etc/hosts is a read-only mount, as under BuildKit: the write is refused)
    const runner = await createRunner("chroot", { workDir: join(t.dir, "run") });
    const step = await rootfs.beginStep();
    const r = await runner.run({
      rootfs: rootfs.dir,
      argv: ["/bin/sh", "-c", "echo hi > /etc/greeting; rm /etc/new; ! { echo junk >> /etc/hosts; } 2>/dev/null"],
      env: ["PATH=/bin"],
      cwd: "/",
      user: "",
      network: "none",
    });
    expect(r.exitCode).toBe(0);
    const entries = await step.changes();
    expect(entries.map((e) => `${e.type} ${e.path}`)).toEqual(["dir etc", "file etc/.wh.new", "file etc/greeting"]);
    // a RUN that changes nothing yields no entries, under every isolation
    for (const iso of ["chroot", "oci"] as const) {
      const rn = await createRunner(iso, { workDir: join(t.dir, "run") });
      const s2 = await rootfs.beginStep();
      const r2 = await rn.run({ rootfs: rootfs.dir, argv: ["/bin/sh", "-c", "cat /etc/hosts /etc/resolv.conf >/dev/null; ls /dev /proc >/dev/null"], env: ["PATH=/bin"], cwd: "/", user: "", network: "host" });
      expect(r2.exitCode).toBe(0);
      expect(await s2.changes()).toEqual([]);
    }
    await rootfs.dispose();
    expect(existsSync(rootfs.dir)).toBe(false);
  });

  it("reports a corrupt compressed layer as a KilnError", async () => {
    const rootfs = await createDirRootFS(t.dir);
    await expect(
      rootfs.applyLayer({ diffID: "sha256:cccc", mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", open: () => Readable.from([Buffer.from("not gzip at all")]) }),
    ).rejects.toThrow(/^layer sha256:cccc: /);
    await rootfs.dispose();
  });
});

describe("cleanupStale", () => {
  it("removes work directories of killed builds, including their mounts, and keeps live ones", async () => {
    const live = await createWorkDir(join(t.dir, "rootfs"));
    // a build process that creates its work dir, mounts a tmpfs in it, and is then SIGKILLed
    const child = spawn(process.execPath, ["-e", `
      const fs = require("node:fs"); const path = require("node:path");
      const stat = fs.readFileSync("/proc/self/stat", "utf8");
      const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
      const d = path.join(${JSON.stringify(join(t.dir, "run"))}, "x-" + process.pid);
      fs.mkdirSync(path.join(d, "root"), { recursive: true });
      fs.writeFileSync(path.join(d, "kiln.owner"), process.pid + " " + start + "\\n");
      require("node:child_process").execFileSync("mount", ["-t", "tmpfs", "tmpfs", path.join(d, "root")]);
      fs.writeFileSync(path.join(d, "root", "f"), "x");
      console.log(d);
      setInterval(() => {}, 1000);
    `], { stdio: ["ignore", "pipe", "inherit"] });
    const stale = await new Promise<string>((res) => child.stdout.once("data", (b: Buffer) => res(b.toString().trim())));
    child.kill("SIGKILL");
    await new Promise((res) => child.once("exit", res));
    expect(readFileSync("/proc/self/mountinfo", "utf8")).toContain(stale);
    const removed = await cleanupStale(t.dir);
    expect(removed).toEqual([stale]);
    expect(existsSync(stale)).toBe(false);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(stale);
    expect(existsSync(live)).toBe(true);
  });

  it("leaves a work directory made moments ago whose owner file is not (fully) written yet; removes one left so for a minute", async () => {
    // createWorkDir's mkdir, then its owner file: another process's cleanup may run in between
    const fresh = join(t.dir, "run", "oci-fresh");
    const half = join(t.dir, "run", "oci-half");
    const old = join(t.dir, "run", "oci-old");
    mkdirSync(fresh, { recursive: true });
    mkdirSync(old, { recursive: true });
    // (the owner file created, its line not written yet)
    mkdirSync(half, { recursive: true });
    writeFileSync(join(half, "kiln.owner"), "");
    const minuteAgo = (Date.now() - 61_000) / 1000;
    utimesSync(old, minuteAgo, minuteAgo);
    expect(await cleanupStale(t.dir)).toEqual([old]);
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(half)).toBe(true);
    expect(existsSync(old)).toBe(false);
  });

  it("ignores a cache directory without work directories", async () => {
    mkdirSync(join(t.dir, "blobs"));
    writeFileSync(join(t.dir, "blobs", "x"), "");
    expect(await cleanupStale(t.dir)).toEqual([]);
  });
});
