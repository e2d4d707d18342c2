// The namespace-less runners tell an isolation failure from the command's own: when the step's
// process cannot be started inside the root (plain-chroot: the root filesystem is mounted noexec,
// so the exec after chroot is refused; proot: it cannot find the command), they reject with an
// IsolationError (ISOLATION_FAILED) carrying the tool's reason; a command that runs and exits
// non-zero is still just its exit code.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IsolationError } from "../../src/errors.js";
import { createPlainChrootRunner } from "../../src/run/plain-chroot.js";
import { createProotRunner } from "../../src/run/proot.js";
import type { RunSpec } from "../../src/run/types.js";
import { busyboxRoot, tempDir } from "../snapshot/helpers.js";

const ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"];

describe("plain-chroot: a process that cannot start is an isolation failure", () => {
  let t: { dir: string; cleanup: () => void };
  let mnt: string;

  beforeAll(() => {
    t = tempDir("kiln-startfail-");
    mnt = join(t.dir, "noexec");
    mkdirSync(mnt);
    execFileSync("mount", ["-t", "tmpfs", "-o", "noexec,size=64m", "kiln-startfail", mnt]);
  });
  afterAll(() => {
    execFileSync("umount", ["-l", mnt]);
    t.cleanup();
  });

  const spec = (root: string, script: string): RunSpec => ({ rootfs: root, argv: ["/bin/sh", "-c", script], env: ENV, cwd: "/", user: "", network: "host" });

  it("noexec root: IsolationError naming the refusal", async () => {
    const root = join(mnt, "rootfs");
    mkdirSync(root);
    busyboxRoot(root);
    const runner = createPlainChrootRunner({ workDir: join(t.dir, "work") });
    const err = await runner.run(spec(root, "echo never")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IsolationError);
    expect((err as IsolationError).code).toBe("ISOLATION_FAILED");
    expect((err as IsolationError).message).toMatch(/^cannot start the isolated process: .*Permission denied/);
  });

  it("the command's own failure stays the command's", async () => {
    const root = join(t.dir, "rootfs-ok");
    mkdirSync(root);
    busyboxRoot(root);
    const runner = createPlainChrootRunner({ workDir: join(t.dir, "work-ok") });
    const r = await runner.run(spec(root, "echo ran; exit 3"));
    expect(r.exitCode).toBe(3);
    expect(r.outputTail).toContain("ran");
  });
});

describe("proot: its own refusal is an isolation failure", () => {
  let t: { dir: string; cleanup: () => void };
  beforeAll(() => {
    t = tempDir("kiln-startfail-proot-");
  });
  afterAll(() => t.cleanup());

  it("a command proot cannot find: IsolationError with proot's line; exit 3 stays the command's", async () => {
    const root = join(t.dir, "rootfs");
    mkdirSync(root);
    busyboxRoot(root);
    const runner = createProotRunner({ workDir: join(t.dir, "work") });
    const err = await runner.run({ rootfs: root, argv: ["/no/such/tool"], env: ENV, cwd: "/", user: "", network: "host" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IsolationError);
    expect((err as IsolationError).message).toMatch(/^cannot start the isolated process: proot: .*not found/);
    const r = await runner.run({ rootfs: root, argv: ["/bin/sh", "-c", "echo ran; exit 3"], env: ENV, cwd: "/", user: "", network: "host" });
    expect(r.exitCode).toBe(3);
  });
});
