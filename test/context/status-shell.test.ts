// The process's status shell (src/context/status-shell.ts) against real checkouts: its answers
// are git status's (clean, dirty with an untracked file, failed outside a checkout), a question
// asked while it is busy and a directory it cannot pass are left to the caller, an abort ends it and the next question starts another,
// a changed HOME (the global excludes file git reads) gets a new shell, it never keeps a process
// alive, and a process's first question is left to the caller.
import { afterAll, describe, expect, it } from "vitest";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { shellStatus } from "../../src/context/status-shell.js";
import { REPO_ROOT, mustRun, run } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const GIT_ENV = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };

async function checkout(): Promise<string> {
  const dir = await temps.make("kiln-status-shell-");
  await mustRun("git", ["-C", dir, "init", "-q", "-b", "main"], { env: GIT_ENV });
  await writeFile(join(dir, "f.txt"), "one\n");
  await mustRun("git", ["-C", dir, "add", "-A"], { env: GIT_ENV });
  await mustRun("git", ["-C", dir, "commit", "-q", "-m", "one"], { env: GIT_ENV });
  return dir;
}

describe("the status shell", () => {
  it("leaves the process's first question to the caller (a process that builds once starts no shell)", async () => {
    const dir = await checkout();
    expect(await shellStatus(dir)).toBeUndefined();
    expect(await shellStatus(dir)).toBe("clean");
  });

  it("answers as git status does: clean, dirty (an untracked file, a changed one), failed outside a checkout", async () => {
    const dir = await checkout();
    expect(await shellStatus(dir)).toBe("clean");
    await writeFile(join(dir, "new.txt"), "x\n");
    expect(await shellStatus(dir)).toBe("dirty");
    await mustRun("git", ["-C", dir, "add", "-A"], { env: GIT_ENV });
    await mustRun("git", ["-C", dir, "commit", "-q", "-m", "two"], { env: GIT_ENV });
    expect(await shellStatus(dir)).toBe("clean");
    await writeFile(join(dir, "f.txt"), "changed\n");
    expect(await shellStatus(dir)).toBe("dirty");
    expect(await shellStatus(await temps.make("kiln-status-none-"))).toBe("failed");
  });

  it("answers one question at a time: one asked while it is busy is left to the caller", async () => {
    const dir = await checkout();
    const [a, b] = await Promise.all([shellStatus(dir), shellStatus(dir)]);
    expect([a, b]).toEqual(["clean", undefined]);
    expect(await shellStatus(dir)).toBe("clean");
  });

  it("leaves a directory with a newline in its name to the caller, and a stash is no change", async () => {
    const dir = await checkout();
    expect(await shellStatus(`${dir}\nx`)).toBeUndefined();
    await writeFile(join(dir, "f.txt"), "stashed\n");
    await mustRun("git", ["-C", dir, "stash", "-q"], { env: GIT_ENV });
    await mustRun("git", ["-C", dir, "config", "status.showStash", "true"]);
    expect(await shellStatus(dir)).toBe("clean");
  });

  it("is ended by an abort (the answer is undefined), and the next question starts another", async () => {
    const dir = await checkout();
    const ac = new AbortController();
    const asked = shellStatus(dir, ac.signal);
    ac.abort();
    expect(await asked).toBeUndefined();
    expect(await shellStatus(dir, AbortSignal.abort())).toBeUndefined();
    expect(await shellStatus(dir)).toBe("clean");
  });

  it("starts a new shell when HOME changes: git then reads that home's excludes", async () => {
    const dir = await checkout();
    await writeFile(join(dir, "local.log"), "x\n");
    expect(await shellStatus(dir)).toBe("dirty");
    const home = await temps.make("kiln-status-home-");
    await mkdir(join(home, ".config", "git"), { recursive: true });
    await writeFile(join(home, ".config", "git", "ignore"), "*.log\n");
    const saved = { HOME: process.env.HOME, XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME };
    process.env.HOME = home;
    delete process.env.XDG_CONFIG_HOME;
    try {
      expect(await shellStatus(dir)).toBe("clean");
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    expect(await shellStatus(dir)).toBe("dirty");
  });

  it("never keeps a process alive: a script that asked once exits by itself", async () => {
    const dir = await checkout();
    const script = `import { shellStatus } from ${JSON.stringify(join(REPO_ROOT, "dist", "context", "status-shell.js"))};\nawait shellStatus(${JSON.stringify(dir)});\nconsole.log(await shellStatus(${JSON.stringify(dir)}));\n`;
    const t0 = Date.now();
    const r = await run(process.execPath, ["--input-type=module", "-e", script]);
    expect(r.stdout.trim()).toBe("clean");
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
