// End-to-end: RUN for a foreign platform through qemu-user-static and binfmt_misc. kiln (root)
// registers the missing qemu-aarch64 handler from qemu-user-static's definition with the F flag,
// then a `--platform linux/amd64,linux/arm64` build of a busybox image (Debian's static busybox
// for each architecture) runs `RUN uname -m > /arch` natively for amd64 and emulated for arm64:
// the index's arm64 image says aarch64, the progress marks only the arm64 RUNs as emulated.
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUSYBOX_BINARY } from "../helpers/busybox.js";
import { foreignBusybox } from "../helpers/foreign-busybox.js";
import { expectBuilt, kiln, mustRun } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const HANDLER = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

describe("emulated RUN for linux/arm64 (qemu-user-static + binfmt_misc)", () => {
  let out = "";
  let stderr = "";
  beforeAll(async () => {
    expect(process.arch, "these tests emulate arm64 on an amd64 machine").toBe("x64");
    expect(process.getuid?.(), "registering a binfmt_misc handler needs root").toBe(0);
    out = await temps.make("kiln-emu-");
    const ctx = await temps.make("kiln-emu-ctx-");
    await copyFile(BUSYBOX_BINARY, join(ctx, "busybox-amd64"));
    await copyFile(await foreignBusybox("arm64", out), join(ctx, "busybox-arm64"));
    await writeFile(join(ctx, "Dockerfile"), [
      "FROM scratch",
      "ARG TARGETARCH",
      "COPY --chmod=755 busybox-${TARGETARCH} /bin/busybox",
      'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
      "RUN uname -m > /arch",
      "",
    ].join("\n"));
    // kiln registers the handler itself: start without it (binfmt_misc is the kernel's, not per build)
    if (existsSync(HANDLER)) await writeFile(HANDLER, "-1");
    const r = await kiln(["build", "--progress", "plain", "--cache-dir", join(out, "cache"), "--platform", "linux/amd64,linux/arm64", "-t", "emu:1", "-o", `type=oci,dest=${join(out, "dir")}`, ctx]);
    expectBuilt(r);
    stderr = r.stderr;
  }, 180_000);

  it("registers the missing qemu-aarch64 handler with the F flag", async () => {
    const handler = await readFile(HANDLER, "utf8");
    expect(handler).toMatch(/^enabled$/m);
    expect(handler).toMatch(/^flags: \S*F/m);
    expect(handler).toContain("interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P");
    expect(stderr).toContain("RUN for linux/arm64 is emulated (binfmt_misc handler qemu-aarch64)");
  });

  it("runs the arm64 RUNs emulated and the amd64 ones natively: /arch says aarch64 and x86_64", async () => {
    const arches: Record<string, string> = {};
    for (const arch of ["amd64", "arm64"]) {
      const one = join(await temps.make("kiln-emu-one-"), "layout");
      await mustRun("skopeo", ["copy", "--override-arch", arch, `oci:${join(out, "dir")}:1`, `oci:${one}:x`]);
      arches[arch] = await readFile(join(await umociUnpack(temps, one, "x"), "arch"), "utf8");
    }
    expect(arches).toEqual({ amd64: "x86_64\n", arm64: "aarch64\n" });
    expect(stderr).toMatch(/\[linux\/arm64 stage-0 5\/5\] RUN \(emulated linux\/arm64\) uname -m > \/arch/);
    expect(stderr).toMatch(/\[linux\/amd64 stage-0 5\/5\] RUN uname -m > \/arch/);
    expect(stderr).not.toMatch(/\[linux\/amd64 [^\]]*\] RUN \(emulated/);
  });
});
