// The context SBOM scan's opens and reads: symlinks are refused by the open itself (one swapped in
// after the directory was listed too), a fifo does not block, reads are bounded by the cap whatever
// the file grows to.
import { execFileSync } from "node:child_process";
import { appendFile, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openRegularFile, readCapped, scanDirectory } from "../../src/attest/scan-dir.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const lock = (name: string): string => JSON.stringify({ lockfileVersion: 3, packages: { [`node_modules/${name}`]: { version: "1.0.0" } } });

describe("openRegularFile", () => {
  it("refuses a symlink at open time, even one to a regular file", async () => {
    const dir = await temps.make("kiln-scan-open-");
    await writeFile(join(dir, "secret"), "outside");
    await symlink(join(dir, "secret"), join(dir, "link"));
    expect(await openRegularFile(join(dir, "link"))).toBeUndefined();
    const opened = await openRegularFile(join(dir, "secret"));
    expect(opened?.size).toBe(7);
    await opened?.fh.close();
  });

  it("refuses a fifo without blocking, and a directory", async () => {
    const dir = await temps.make("kiln-scan-fifo-");
    execFileSync("mkfifo", [join(dir, "fifo")]);
    expect(await openRegularFile(join(dir, "fifo"))).toBeUndefined();
    expect(await openRegularFile(dir)).toBeUndefined();
  });
});

describe("readCapped", () => {
  it("reads what the file holds up to the cap, past a stale size; refuses one grown past the cap", async () => {
    const dir = await temps.make("kiln-scan-cap-");
    const path = join(dir, "f");
    await writeFile(path, "abc");
    const opened = (await openRegularFile(path))!;
    try {
      expect((await readCapped(opened.fh, opened.size, 10))?.toString()).toBe("abc");
      expect(await readCapped(opened.fh, opened.size, 2)).toBeUndefined();
      await appendFile(path, "defg"); // grows after fstat sized it (3): within the cap, read whole
      expect((await readCapped(opened.fh, opened.size, 10))?.toString()).toBe("abcdefg");
      expect((await readCapped(opened.fh, opened.size, 7))?.toString()).toBe("abcdefg");
      await appendFile(path, "x".repeat(1 << 20)); // past the cap: refused, not read whole
      expect(await readCapped(opened.fh, opened.size, 10)).toBeUndefined();
    } finally {
      await opened.fh.close();
    }
  });
});

describe("scanDirectory and symlinks", () => {
  it("follows no symlink present in the tree, and does not block on a fifo", async () => {
    const outside = await temps.make("kiln-scan-outside-");
    await mkdir(join(outside, "node_modules/evil"), { recursive: true });
    await writeFile(join(outside, "node_modules/evil/package.json"), JSON.stringify({ name: "evil", version: "6.6.6" }));
    await writeFile(join(outside, "package-lock.json"), lock("evil"));
    const root = await temps.make("kiln-scan-links-");
    await symlink(join(outside, "package-lock.json"), join(root, "package-lock.json"));
    await symlink(join(outside, "node_modules"), join(root, "node_modules"));
    await mkdir(join(root, "app"));
    execFileSync("mkfifo", [join(root, "app/package-lock.json")]);
    expect([...(await scanDirectory(root)).keys()]).toEqual([]);
  });

  it("refuses a file or directory swapped for a symlink after the directory was listed", async () => {
    const outside = await temps.make("kiln-scan-outside-");
    await mkdir(join(outside, "ms"), { recursive: true });
    await writeFile(join(outside, "ms/package.json"), JSON.stringify({ name: "evil", version: "6.6.6" }));
    await writeFile(join(outside, "package-lock.json"), lock("evil"));
    const root = await temps.make("kiln-scan-swap-");
    await mkdir(join(root, "node_modules/ms"), { recursive: true });
    await writeFile(join(root, "node_modules/ms/package.json"), JSON.stringify({ name: "ms", version: "2.1.3" }));
    await writeFile(join(root, "package-lock.json"), lock("ms"));
    const swapped = new Set<string>();
    // the ignore matcher runs after the listing and before the open: the swap happens in between
    const ignore = (rel: string): boolean => {
      if ((rel === "package-lock.json" || rel === "node_modules") && !swapped.has(rel)) {
        swapped.add(rel);
        execFileSync("sh", ["-c", `mv "$1" "$1.orig" && ln -s "$2" "$1"`, "sh", join(root, rel), join(outside, rel === "node_modules" ? "" : rel)]);
      }
      return false;
    };
    const files = await scanDirectory(root, { ignore });
    expect(swapped.size).toBe(2);
    expect([...files.keys()]).toEqual([]);
  });

  it("reads a walked directory's files through its open descriptor when its path is swapped for a symlink", async () => {
    const outside = await temps.make("kiln-scan-outside-");
    await mkdir(join(outside, "node_modules/ms"), { recursive: true });
    await writeFile(join(outside, "node_modules/ms/package.json"), JSON.stringify({ name: "ms", version: "6.6.6" }));
    const root = await temps.make("kiln-scan-parent-");
    await mkdir(join(root, "node_modules/ms"), { recursive: true });
    await writeFile(join(root, "node_modules/ms/package.json"), JSON.stringify({ name: "ms", version: "2.1.3" }));
    let swapped = false;
    // node_modules is open and listed when "node_modules/ms" is matched: its path now leads outside
    const ignore = (rel: string): boolean => {
      if (rel === "node_modules/ms" && !swapped) {
        swapped = true;
        execFileSync("sh", ["-c", `mv "$1" "$1.orig" && ln -s "$2" "$1"`, "sh", join(root, "node_modules"), join(outside, "node_modules")]);
      }
      return false;
    };
    const files = await scanDirectory(root, { ignore });
    expect(swapped).toBe(true);
    expect(JSON.parse(files.get("node_modules/ms/package.json")!.toString()).version).toBe("2.1.3");
  });

  it("a failure names the context and the entry, never a /proc/self/fd path", async () => {
    const gone = join(await temps.make("kiln-scan-gone-"), "nope");
    await expect(scanDirectory(gone)).rejects.toMatchObject({ code: "CONTEXT_READ", message: `SBOM scan of the build context ${gone}: .: ENOENT` });
  });
});
