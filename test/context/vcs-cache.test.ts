// The commit and remote kept between builds (src/context/vcs-cache.ts) through readVcsInfo: kept
// once the files they rest on are older than two seconds, used while those files are unchanged
// (shown by an entry edited in place), and read again when HEAD's branch moves, the remote
// changes, or a GIT_* variable redirects git; never kept for a fresh (racy) file.
import { afterAll, describe, expect, it } from "vitest";
import { readFile, readdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readVcsInfo } from "../../src/context/vcs.js";
import { staleVcsEntries } from "../../src/context/vcs-cache.js";
import { prune } from "../../src/cache/prune.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { mustRun } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const GIT_ENV = { GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" };

async function checkout(): Promise<{ dir: string; git: (...a: string[]) => Promise<string> }> {
  const dir = await temps.make("kiln-vcs-cache-");
  const git = async (...args: string[]): Promise<string> => (await mustRun("git", ["-C", dir, ...args], { env: GIT_ENV })).stdout.trim();
  await git("init", "-q", "-b", "main");
  await writeFile(join(dir, "Dockerfile"), "FROM scratch\n");
  await git("add", "-A");
  await git("commit", "-q", "-m", "one");
  await git("remote", "add", "origin", "https://u:tok@git.example.com/app.git");
  return { dir, git };
}

/** Every file and directory under `dir` (its .git included) dated ten seconds back. */
async function age(dir: string): Promise<void> {
  const past = (Date.now() - 10_000) / 1000;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      await utimes(join(d, e.name), past, past);
    }
  };
  await walk(dir);
  await utimes(dir, past, past);
}

const entries = async (cache: string): Promise<string[]> => (await readdir(join(cache, "vcs")).catch(() => [])).map((n) => join(cache, "vcs", n));

describe("the kept commit and remote", () => {
  it("keeps the answer once its files are settled, uses it while they are unchanged, and reads again when HEAD moves or the remote changes", async () => {
    const { dir, git } = await checkout();
    const cache = await temps.make("kiln-vcs-cache-dir-");
    const opts = { checkDirty: false, cacheDir: cache };
    const commit = await git("rev-parse", "HEAD");
    // fresh files (modified just now): answered, not kept
    expect(await readVcsInfo(dir, undefined, opts)).toEqual({ commit, remote: "https://git.example.com/app.git" });
    expect(await entries(cache)).toEqual([]);
    await age(dir);
    expect(await readVcsInfo(dir, undefined, opts)).toEqual({ commit, remote: "https://git.example.com/app.git" });
    const [entry] = await entries(cache);
    expect(entry).toBeDefined();
    expect(await readFile(entry!, "utf8")).not.toContain("tok"); // (the remote is kept without its credentials)
    // the entry answers while the files it rests on are unchanged
    const kept = JSON.parse(await readFile(entry!, "utf8")) as { commit: string };
    await writeFile(entry!, JSON.stringify({ ...kept, commit: "e".repeat(40) }));
    expect((await readVcsInfo(dir, undefined, opts))?.commit).toBe("e".repeat(40));
    // a new commit moves the branch's ref: read again
    await writeFile(join(dir, "a.txt"), "a\n");
    await git("add", "-A");
    await git("commit", "-q", "-m", "two");
    const two = await git("rev-parse", "HEAD");
    expect(await readVcsInfo(dir, undefined, opts)).toEqual({ commit: two, remote: "https://git.example.com/app.git" });
    await age(dir);
    await readVcsInfo(dir, undefined, opts);
    // another remote URL (the repository's config): read again
    await git("remote", "set-url", "origin", "https://git.example.com/other.git");
    expect(await readVcsInfo(dir, undefined, opts)).toEqual({ commit: two, remote: "https://git.example.com/other.git" });
    // a GIT_* variable that redirects git: git answers (here: GIT_DIR of another checkout), never the entry
    await age(dir);
    await readVcsInfo(dir, undefined, opts);
    const other = await checkout();
    const saved = process.env.GIT_DIR;
    process.env.GIT_DIR = join(other.dir, ".git");
    try {
      expect((await readVcsInfo(dir, undefined, opts))?.commit).toBe(await other.git("rev-parse", "HEAD"));
    } finally {
      if (saved === undefined) delete process.env.GIT_DIR;
      else process.env.GIT_DIR = saved;
    }
  });

  it("kiln prune removes an entry whose checkout changed and keeps a current one", async () => {
    const a = await checkout();
    const b = await checkout();
    const cache = await temps.make("kiln-vcs-cache-dir-");
    await age(a.dir);
    await age(b.dir);
    const opts = { checkDirty: false, cacheDir: cache };
    await readVcsInfo(a.dir, undefined, opts);
    await readVcsInfo(b.dir, undefined, opts);
    expect(await entries(cache)).toHaveLength(2);
    expect(await staleVcsEntries(cache)).toEqual([]);
    await writeFile(join(b.dir, "b.txt"), "b\n");
    await b.git("add", "-A");
    await b.git("commit", "-q", "-m", "two"); // b's branch ref moved
    const stale = await staleVcsEntries(cache);
    expect(stale).toHaveLength(1);
    await prune(new BlobStore(cache));
    expect(await entries(cache)).not.toContain(stale[0]);
    expect(await entries(cache)).toHaveLength(1);
    expect((await readVcsInfo(a.dir, undefined, opts))?.commit).toBe(await a.git("rev-parse", "HEAD"));
  });

  it("keeps nothing for a directory in no checkout, nor without a cache directory", async () => {
    const cache = await temps.make("kiln-vcs-cache-dir-");
    const plain = await temps.make("kiln-vcs-none-");
    await age(plain);
    expect(await readVcsInfo(plain, undefined, { checkDirty: false, cacheDir: cache })).toBeUndefined();
    expect(await entries(cache)).toEqual([]);
  });
});
