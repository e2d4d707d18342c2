// A succeeded build's root filesystems are removed off its critical path: dispose({ background })
// renames the work directory at once (under the same parent, so cleanupStale still knows it) and a
// detached rm removes it, also after the caller is gone; a leftover of a process that is gone is
// removed by the next cleanupStale. With something mounted below, nothing is done in background.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cleanupStale, createDirRootFS } from "../../src/snapshot/rootfs.js";
import { OWNER_FILE, removeWorkDirLater } from "../../src/snapshot/workdir.js";
import { tempDir } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir("kiln-remove-later-");
});
afterEach(() => t.cleanup());

async function until(check: () => boolean, ms = 30_000): Promise<void> {
  for (const end = Date.now() + ms; !check(); ) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("background removal of root filesystems", () => {
  it("dispose({ background: true }) returns at once and the tree goes afterwards", async () => {
    const rootfs = await createDirRootFS(t.dir);
    for (let d = 0; d < 20; d++) {
      mkdirSync(join(rootfs.dir, `d${d}`));
      for (let i = 0; i < 100; i++) writeFileSync(join(rootfs.dir, `d${d}`, `f${i}`), "x");
    }
    const work = join(rootfs.dir, "..");
    await rootfs.dispose({ background: true });
    expect(existsSync(work)).toBe(false);
    await until(() => readdirSync(join(t.dir, "rootfs")).length === 0);
  });

  it("a leftover whose owner is gone is removed by cleanupStale; a mounted tree is not handed off", async () => {
    const left = join(t.dir, "rootfs", "x-removing");
    mkdirSync(join(left, "root"), { recursive: true });
    writeFileSync(join(left, OWNER_FILE), "999999999 1\n");
    expect(await cleanupStale(t.dir)).toEqual([left]);
    expect(existsSync(left)).toBe(false);

    const mounted = join(t.dir, "rootfs", "m");
    mkdirSync(join(mounted, "mnt"), { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "kiln-test", join(mounted, "mnt")]);
    try {
      expect(await removeWorkDirLater(mounted)).toBe(false);
      expect(existsSync(join(mounted, "mnt"))).toBe(true);
    } finally {
      execFileSync("umount", [join(mounted, "mnt")]);
    }
  });
});
