// `kiln run --platform`: from a stored linux/amd64+linux/arm64 index (Debian's static busybox for
// each architecture), --platform picks the image and a foreign one runs emulated through
// qemu-user-static and binfmt_misc (the handler kiln registers as builds do); without the flag the
// host's image runs; a platform the index lacks is one line, exit 125.
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUSYBOX_BINARY } from "../helpers/busybox.js";
import { foreignBusybox } from "../helpers/foreign-busybox.js";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
let cache: string;
afterAll(() => temps.cleanup());

beforeAll(async () => {
  expect(process.arch, "these tests emulate arm64 on an amd64 machine").toBe("x64");
  expect(process.getuid?.(), "registering a binfmt_misc handler needs root").toBe(0);
  cache = await temps.make("kiln-run-platform-cache-");
  const ctx = await temps.make("kiln-run-platform-ctx-");
  await copyFile(BUSYBOX_BINARY, join(ctx, "busybox-amd64"));
  await copyFile(await foreignBusybox("arm64", await temps.make("kiln-run-platform-deb-")), join(ctx, "busybox-arm64"));
  await writeFile(join(ctx, "Dockerfile"), 'FROM scratch\nARG TARGETARCH\nCOPY --chmod=755 busybox-${TARGETARCH} /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n');
  expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--platform", "linux/amd64,linux/arm64", "-t", "multi:1", ctx]));
}, 180_000);

describe("kiln run --platform", () => {
  it("runs the host's image by default and the arm64 one emulated with --platform linux/arm64", async () => {
    expect(await kiln(["run", "--cache-dir", cache, "multi:1", "uname", "-m"])).toEqual({ code: 0, stdout: "x86_64\n", stderr: "" });
    for (const isolation of ["oci", "chroot"]) {
      const r = await kiln(["run", "--cache-dir", cache, "--isolation", isolation, "--platform", "linux/arm64", "multi:1", "sh", "-c", "uname -m; exit 4"]);
      expect({ isolation, ...r }).toEqual({ isolation, code: 4, stdout: "aarch64\n", stderr: "" });
    }
  });

  it("a platform the index lacks is one line, exit 125", async () => {
    const r = await kiln(["run", "--cache-dir", cache, "--platform", "linux/s390x", "multi:1", "true"]);
    expect(r.code).toBe(125);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("error: kiln run: image multi:1: no image for platform linux/s390x (available: linux/amd64, linux/arm64)\n");
  });
});
