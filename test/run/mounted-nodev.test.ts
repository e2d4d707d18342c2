// The OCI runner binds the root onto itself nodev only when it is not a nodev mount already:
// mountedNodev reads /proc/self/mountinfo for the topmost mount on a path (stacked mounts: the
// last one wins; a path with a space is found under mountinfo's octal escape; a plain directory
// is no mount at all). The overlay snapshotter mounts its roots nodev, so a kiln run on overlay
// starts without that mount process.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountedNodev } from "../../src/run/oci.js";
import { mountOverlay, unmount } from "../../src/snapshot/overlay.js";
import { tempDir } from "../snapshot/helpers.js";

describe("mountedNodev", () => {
  let t: { dir: string; cleanup: () => void };
  let plain: string;
  let nodev: string;
  let stacked: string;
  let spaced: string;
  const mounted: string[] = [];
  const mount = (opts: string, target: string): void => {
    execFileSync("mount", ["-t", "tmpfs", "-o", `${opts}size=1m`, "kiln-nodev-test", target]);
    mounted.push(target);
  };

  beforeAll(() => {
    t = tempDir("kiln-nodev-");
    plain = join(t.dir, "plain");
    nodev = join(t.dir, "nodev");
    stacked = join(t.dir, "stacked");
    spaced = join(t.dir, "with space");
    for (const d of [plain, nodev, stacked, spaced]) mkdirSync(d);
    mount("nodev,", nodev);
    mount("nodev,", stacked);
    mount("", stacked); // on top: the one a process sees there
    mount("nodev,", spaced);
  });
  afterAll(() => {
    for (const m of mounted.reverse()) execFileSync("umount", ["-l", m]);
    t.cleanup();
  });

  it("is true for a nodev mount, false for a plain directory and for a mount without nodev on top", () => {
    expect(mountedNodev(nodev)).toBe(true);
    expect(mountedNodev(spaced)).toBe(true);
    expect(mountedNodev(plain)).toBe(false);
    expect(mountedNodev(stacked)).toBe(false);
    expect(mountedNodev(join(t.dir, "missing"))).toBe(false);
  });

  it("is true for the overlay snapshotter's root", async () => {
    const work = join(t.dir, "ovl");
    for (const d of ["l", "u", "w", "merged"]) mkdirSync(join(work, d), { recursive: true });
    await mountOverlay({ cwd: work, lowers: ["l"], upper: "u", work: "w", target: join(work, "merged") });
    try {
      expect(mountedNodev(join(work, "merged"))).toBe(true);
    } finally {
      await unmount(join(work, "merged"));
    }
  });
});
