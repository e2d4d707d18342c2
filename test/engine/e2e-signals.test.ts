// Clean-up under interruption: SIGINT/SIGTERM during a RUN stop the build (one line
// "interrupted", exit 130/143, never the RUN's exit code) and remove its root filesystem, mounts
// and temp files; after a SIGKILL the next build cleans up what was left.
import { spawn } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { useBusyboxBase } from "../helpers/busybox.js";
import { KILN_BIN, expectBuilt, kiln } from "../helpers/kiln.js";
import { TempDirs, casePath } from "../helpers/temp.js";

const temps = new TempDirs();
const base = useBusyboxBase();
afterAll(() => temps.cleanup());

/** Start a build of run-sleep and resolve once its RUN has started. */
async function startSleepingBuild(cacheDir: string, out: string): Promise<{ child: ReturnType<typeof spawn>; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [
    KILN_BIN, "build", "--progress", "plain", "--isolation", "chroot", "--cache-dir", cacheDir,
    "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${out}`, casePath("run-sleep"),
  ], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    let text = "";
    child.stderr!.on("data", (b: Buffer) => {
      text += b.toString();
      if (text.includes("started")) resolve();
    });
    child.on("close", () => reject(new Error(`build ended before its RUN started:\n${text}`)));
  });
  return { child, exited };
}

async function leftovers(cacheDir: string): Promise<string[]> {
  const rootfs = await readdir(join(cacheDir, "rootfs")).catch(() => []);
  const tmp = (await readdir(join(cacheDir, "tmp")).catch(() => [] as string[])).filter((n) => n.startsWith("build-"));
  return [...rootfs, ...tmp];
}

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  return info.split("\n").filter((l) => l.includes(dir));
}

describe("interrupting a build", () => {
  for (const [signal, exitCode] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    it(`${signal} stops the RUN, reports "interrupted" with exit ${exitCode}, and removes every temporary tree and mount`, async () => {
      const cacheDir = await temps.make("kiln-sig-cache-");
      const out = join(await temps.make("kiln-sig-out-"), "layout");
      const { child, exited } = await startSleepingBuild(cacheDir, out);
      expect(await leftovers(cacheDir)).not.toEqual([]);
      let stderr = "";
      child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
      child.kill(signal);
      const code = await exited;
      expect(code, stderr).toBe(exitCode);
      expect(stderr.split("\n").filter((l) => l.startsWith("error:"))).toEqual([`error: interrupted (${signal})`]);
      expect(stderr).not.toContain("exit code");
      expect(await leftovers(cacheDir)).toEqual([]);
      expect(await mountsUnder(cacheDir)).toEqual([]);
      await expect(readdir(out)).rejects.toThrow();
    });
  }

  it("after SIGKILL, the next build removes what the killed one left", async () => {
    const cacheDir = await temps.make("kiln-kill-cache-");
    const out = join(await temps.make("kiln-kill-out-"), "layout");
    const { child, exited } = await startSleepingBuild(cacheDir, out);
    child.kill("SIGKILL");
    await exited;
    expect(await leftovers(cacheDir)).not.toEqual([]);
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", cacheDir, "-o", `type=oci,dest=${out}`, casePath("scratch-path")]);
    expectBuilt(r);
    expect(await leftovers(cacheDir)).toEqual([]);
    expect(await mountsUnder(cacheDir)).toEqual([]);
  });
});
