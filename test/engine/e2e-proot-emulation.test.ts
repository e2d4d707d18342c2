// Emulated RUN in the namespace-less pod mode: under --isolation proot, RUN for linux/arm64 runs
// through `proot -q qemu-aarch64-static` (qemu-user-static's binary, run by proot for every
// program the step executes), so no binfmt_misc handler is needed or registered. The runner is
// checked against the qemu it is given (the big-endian one fails where the kernel's handler
// would have worked), and a build as uid 1000 (which could never register a handler) with
// Debian's arm64 static busybox.
import { chmod, chown, copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createProotRunner } from "../../src/run/proot.js";
import { foreignBusybox } from "../helpers/foreign-busybox.js";
import { KILN_BIN, expectBuilt, run } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

describe("emulated RUN under --isolation proot (proot -q)", () => {
  it("the proot runner runs the step's programs through the qemu it is given, not a binfmt_misc handler", async () => {
    const dir = await temps.make("kiln-proot-q-");
    const rootfs = join(dir, "rootfs");
    await mkdir(join(rootfs, "bin"), { recursive: true });
    await copyFile(await foreignBusybox("arm64", dir), join(rootfs, "bin", "busybox"));
    await chmod(join(rootfs, "bin", "busybox"), 0o755);
    const runner = createProotRunner({ workDir: join(dir, "run") });
    const step = async (qemu: string): Promise<{ code: number; out: string }> => {
      const out: Buffer[] = [];
      const r = await runner.run({
        rootfs, argv: ["/bin/busybox", "sh", "-c", "/bin/busybox uname -m"], env: ["PATH=/bin"], cwd: "/", user: "root", network: "host",
        qemu, stdout: (b) => out.push(b), stderr: (b) => out.push(b),
      }).catch((err: Error) => ({ exitCode: -1, outputTail: err.message }));
      return { code: r.exitCode, out: r.exitCode === 0 ? Buffer.concat(out).toString() : r.outputTail };
    };
    expect(await step("/usr/bin/qemu-aarch64-static")).toEqual({ code: 0, out: "aarch64\n" });
    // the big-endian emulator cannot run the little-endian busybox: proot used it, not the kernel's handler
    const wrong = await step("/usr/bin/qemu-aarch64_be-static");
    expect(wrong.code).not.toBe(0);
  });

  it("a build as uid 1000 runs the arm64 RUN through proot -q: /arch says aarch64", async () => {
    const dir = await temps.make("kiln-proot-emu-");
    await chmod(dir, 0o755);
    const ctx = join(dir, "ctx");
    await mkdir(ctx);
    await copyFile(await foreignBusybox("arm64", dir), join(ctx, "busybox"));
    await chmod(join(ctx, "busybox"), 0o755);
    await writeFile(join(ctx, "Dockerfile"), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nRUN uname -m > /arch\n');
    const home = join(dir, "home");
    await mkdir(home);
    await chown(home, 1000, 1000);
    const out = join(home, "out");
    const r = await run(process.execPath, [KILN_BIN, "build", "--progress", "plain", "--isolation", "proot", "--platform", "linux/arm64", "--cache-dir", join(home, "cache"), "-o", `type=oci,dest=${out}`, ctx], { env: { HOME: home }, asUid: 1000, cwd: home });
    expectBuilt(r);
    expect(r.stderr).toContain("RUN for linux/arm64 is emulated (proot -q /usr/bin/qemu-aarch64-static)");
    expect(r.stderr).toMatch(/\] RUN \(emulated linux\/arm64\) uname -m > \/arch/);
    // the last layer holds /arch
    const blob = (d: string): string => join(out, "blobs", "sha256", d.slice("sha256:".length));
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
    const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), "utf8")) as { layers: Array<{ digest: string }> };
    const last = manifest.layers[manifest.layers.length - 1]!;
    const listed = await run("tar", ["-xzOf", blob(last.digest), "arch"]);
    expect(listed.stdout).toBe("aarch64\n");
  });
});
