// The commit and remote read from a checkout's `.git` files (git-dir.ts), kept between builds in
// the cache directory (vcs/<key>.json) with what the answer rests on: every path the reader looked
// at, each with its signature (kind, inode, size and modification time in nanoseconds, or
// "missing"), taken before the file was read. A later build re-signs those paths (a few stat
// calls) and uses the answer while all match, instead of reading and parsing the files again
// (their code runs cold in every new kiln process). Not kept: an answer that needed git itself
// (ASK_GIT), one with a path modified in the last two seconds (a change within the file system's
// timestamp granularity could keep its signature), nor one while GIT_* variables redirect git
// (to another repository or other config files: gitEnvironmentMatters).
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { writeFileAtomic } from "../store/atomic-file.js";
import { consulted, gitEnvironmentMatters } from "./git-dir.js";

/** What is kept of a checkout: its HEAD commit and `origin` remote (already without credentials). */
export interface CommitAndRemote {
  commit: string;
  remote?: string;
}

interface Entry {
  v: 1;
  inputs: Array<[string, string]>;
  commit: string;
  remote?: string;
}

/** The signature of `path` as it is now: kind, inode, size, mtime (ns); "missing" when there is nothing. */
function signature(path: string): string {
  try {
    const st = statSync(path, { bigint: true, throwIfNoEntry: false });
    if (!st) return "missing";
    const kind = st.isFile() ? "f" : st.isDirectory() ? "d" : "o";
    return `${kind}:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return "unreadable";
  }
}

/** Whether a kept entry (parsed, of unknown shape) still answers: every path it rests on signs as it did. */
function current(e: Partial<Entry> | undefined): e is Entry {
  return e?.v === 1 && typeof e.commit === "string" && Array.isArray(e.inputs) && e.inputs.every(([p, sig]) => typeof p === "string" && signature(p) === sig);
}

/** The entry's file for the checkout that `dir` is in, as this environment finds its files (PATH, HOME, XDG_CONFIG_HOME). */
function entryFile(cacheDir: string, dir: string, env: NodeJS.ProcessEnv): string {
  const key = createHash("sha256").update(JSON.stringify([resolve(dir), env.PATH ?? "", env.HOME ?? "", env.XDG_CONFIG_HOME ?? ""])).digest("hex");
  return join(cacheDir, "vcs", `${key.slice(0, 40)}.json`);
}

/**
 * The commit and remote of the checkout `dir` is in: the kept answer while every path it rests on
 * is unchanged, else `read()` (git-dir.ts's reader, run here so that the paths it looks at are
 * recorded) and the answer kept when it may be. `read` answers null when `dir` is in no checkout
 * and undefined when only git can tell (the caller then asks git); neither is kept.
 */
export async function cachedCommitAndRemote(cacheDir: string, dir: string, read: () => CommitAndRemote | null | undefined, env: NodeJS.ProcessEnv = process.env): Promise<CommitAndRemote | null | undefined> {
  if (gitEnvironmentMatters(env)) return read();
  const file = entryFile(cacheDir, dir, env);
  try {
    const e = JSON.parse(readFileSync(file, "utf8")) as Partial<Entry>;
    if (current(e)) return { commit: e.commit, ...(typeof e.remote === "string" ? { remote: e.remote } : {}) };
  } catch {
    // none kept, or unreadable: read the checkout
  }
  const inputs = new Map<string, string>();
  const answer = consulted((p) => {
    if (!inputs.has(p)) inputs.set(p, signature(p));
  }, read);
  if (!answer) return answer;
  // a path changed within the last two seconds: its next change could keep the signature
  const recent = BigInt(Date.now() - 2000) * 1_000_000n;
  const racy = [...inputs.values()].some((sig) => {
    const ns = sig.split(":")[4];
    return ns !== undefined && BigInt(ns) > recent;
  });
  if (!racy) {
    const entry: Entry = { v: 1, inputs: [...inputs], commit: answer.commit, ...(answer.remote !== undefined ? { remote: answer.remote } : {}) };
    await writeFileAtomic(file, JSON.stringify(entry), { mkdirMode: 0o755 }).catch(() => undefined); // a cache: failing to keep it is no error
  }
  return answer;
}

/**
 * Entries of `cacheDir/vcs` that can no longer answer (a path they rest on has changed, or they do
 * not parse): what `kiln prune` removes (the next build of such a checkout writes its entry again).
 */
export async function staleVcsEntries(cacheDir: string): Promise<string[]> {
  const dir = join(cacheDir, "vcs");
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const name of names.filter((n) => n.endsWith(".json") && !n.startsWith("."))) {
    const file = join(dir, name);
    // unreadable or no JSON: stale
    const e = await readFile(file, "utf8").then((t) => JSON.parse(t) as Partial<Entry>).catch(() => undefined);
    if (!current(e)) out.push(file);
  }
  return out;
}
