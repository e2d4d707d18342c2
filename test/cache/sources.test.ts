// Source digests for COPY/ADD cache keys and the persistent stat cache: content, mode, link
// targets and added files change the digest; an mtime-only touch does not (BuildKit's content
// keys ignore mtime); a warm stat cache answers without reading files; an old-format cache file
// is ignored, never misread.
import { describe, it, expect, afterAll } from "vitest";
import { mkdir, writeFile, chmod, symlink, utimes, unlink, stat, readFile } from "node:fs/promises";
import { join } from "node:path";
import { DirContext } from "../../src/context/build-context.js";
import { createIgnoreMatcher } from "../../src/context/dockerignore.js";
import { selectSources } from "../../src/context/select.js";
import { StatCache, hashSources, listForHash } from "../../src/cache/sources.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { AbortError } from "../../src/errors.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());
const temp = (prefix: string): Promise<string> => temps.make(prefix);
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 120)); // past the racy-timestamp window

async function makeContext(): Promise<{ root: string; store: BlobStore }> {
  const root = await temp("kiln-srcctx-");
  await mkdir(join(root, "app", "lib"), { recursive: true });
  await writeFile(join(root, "app", "main.js"), "console.log(1)\n");
  await writeFile(join(root, "app", "lib", "util.js"), "export const x = 1;\n");
  await writeFile(join(root, "app", "notes.md"), "# notes\n");
  await symlink("main.js", join(root, "app", "link"));
  await writeFile(join(root, "top.txt"), "top\n");
  const store = new BlobStore(await temp("kiln-srcstore-"));
  await settle();
  return { root, store };
}

async function digestOf(root: string, store: BlobStore, sources: string[], opts: { exclude?: string[]; ignore?: string[] } = {}): Promise<{ digest: string; cache: StatCache }> {
  const ctx = new DirContext(root, opts.ignore ? createIgnoreMatcher(opts.ignore) : undefined);
  const sel = await selectSources(ctx, sources, opts.exclude ? { exclude: opts.exclude } : {});
  const cache = await StatCache.load(store, root);
  const digest = await hashSources(sel, { statCache: cache });
  await cache.save();
  return { digest, cache };
}

describe("hashSources", () => {
  it("is stable and changes on content, mode, symlink target and added or removed files", async () => {
    const { root, store } = await makeContext();
    const h = async (): Promise<string> => (await digestOf(root, store, ["app"])).digest;
    const first = await h();
    expect(first).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await h()).toBe(first);

    await writeFile(join(root, "app", "lib", "util.js"), "export const x = 2;\n"); // same size, new content
    const content = await h();
    expect(content).not.toBe(first);

    await chmod(join(root, "app", "main.js"), 0o755);
    const mode = await h();
    expect(mode).not.toBe(content);

    await unlink(join(root, "app", "link"));
    await symlink("notes.md", join(root, "app", "link"));
    const link = await h();
    expect(link).not.toBe(mode);

    await writeFile(join(root, "app", "lib", "new.js"), "");
    const added = await h();
    expect(added).not.toBe(link);

    await unlink(join(root, "app", "lib", "new.js"));
    expect(await h()).toBe(link);

    await mkdir(join(root, "app", "emptydir"));
    expect(await h()).not.toBe(link);
  });

  it("ignores an mtime-only touch of unchanged content (and re-reads only that file)", async () => {
    const { root, store } = await makeContext();
    const first = await digestOf(root, store, ["app"]);
    expect(first.cache.reads).toBe(3);
    const later = new Date(Date.now() + 3_600_000);
    await utimes(join(root, "app", "main.js"), later, later);
    await utimes(join(root, "app", "lib"), later, later);
    await settle();
    const second = await digestOf(root, store, ["app"]);
    expect(second.digest).toBe(first.digest);
    expect(second.cache.reads).toBe(1); // its stat changed, so it was hashed again
  });

  it("covers --exclude, .dockerignore, the source names and files outside the selection", async () => {
    const { root, store } = await makeContext();
    const all = (await digestOf(root, store, ["app"])).digest;
    const excl = (await digestOf(root, store, ["app"], { exclude: ["*.md"] })).digest;
    expect(excl).not.toBe(all);
    // changing an excluded file does not change the digest
    await writeFile(join(root, "app", "notes.md"), "# other notes, longer\n");
    expect((await digestOf(root, store, ["app"], { exclude: ["*.md"] })).digest).toBe(excl);
    expect((await digestOf(root, store, ["app"])).digest).not.toBe(all);
    // an ignored file is invisible
    const ign = (await digestOf(root, store, ["app"], { ignore: ["app/lib"] })).digest;
    await writeFile(join(root, "app", "lib", "util.js"), "changed but ignored\n");
    expect((await digestOf(root, store, ["app"], { ignore: ["app/lib"] })).digest).toBe(ign);
    // files not selected never matter
    const top = (await digestOf(root, store, ["top.txt"])).digest;
    await writeFile(join(root, "app", "main.js"), "changed\n");
    expect((await digestOf(root, store, ["top.txt"])).digest).toBe(top);
    // the same content under another source name differs (it lands under another name)
    await writeFile(join(root, "top2.txt"), "top\n");
    await settle();
    expect((await digestOf(root, store, ["top2.txt"])).digest).not.toBe(top);
    // wildcard vs literal selection of the same file differ only if names differ
    expect((await digestOf(root, store, ["top.tx?"])).digest).not.toBe(top);
  });

  it("a warm stat cache (persisted in the store) reads no file", async () => {
    const { root, store } = await makeContext();
    const cold = await digestOf(root, store, ["app", "top.txt"]);
    expect(cold.cache.reads).toBe(4);
    // JSON with the context root (prune reads it) and flat [path, row, path, row, ...] pairs
    const file = JSON.parse(await readFile(cold.cache.path, "utf8")) as { v: number; root: string; files: string[] };
    expect(file.v).toBe(2);
    expect(file.root).toBe(root);
    expect(file.files).toHaveLength(8);
    expect(file.files.filter((_, i) => i % 2 === 0).sort()).toEqual(
      ["app/lib/util.js", "app/main.js", "app/notes.md", "top.txt"].map((f) => join(root, f)).sort(),
    );
    expect(cold.cache.path.startsWith(join(store.root, "statcache"))).toBe(true);
    const warm = await digestOf(root, store, ["app", "top.txt"]);
    expect(warm.digest).toBe(cold.digest);
    expect(warm.cache.reads).toBe(0);
    expect(warm.cache.hits).toBe(4);
  });

  it("an old-format (v1) stat cache file is ignored, not misread", async () => {
    const { root, store } = await makeContext();
    const cold = await digestOf(root, store, ["app"]);
    const file = JSON.parse(await readFile(cold.cache.path, "utf8")) as { root: string; files: string[] };
    // v1 kept an object path -> "hex dev ino size mtimeNs ctimeNs": give every file a wrong hash
    const v1: Record<string, string> = {};
    for (let i = 0; i < file.files.length; i += 2) v1[file.files[i]!] = `${"0".repeat(64)}${file.files[i + 1]!.slice(64)}`;
    await writeFile(cold.cache.path, JSON.stringify({ kind: "kiln-statcache", v: 1, root: file.root, files: v1 }));
    const again = await digestOf(root, store, ["app"]);
    expect(again.cache.reads).toBe(3);
    expect(again.digest).toBe(cold.digest);
  });

  it("file names with spaces, quotes and newlines round-trip through the stat cache", async () => {
    const { root, store } = await makeContext();
    await writeFile(join(root, "app", 'we ird "name"\nline'), "odd\n");
    await settle();
    const cold = await digestOf(root, store, ["app"]);
    expect(cold.cache.reads).toBe(4);
    const warm = await digestOf(root, store, ["app"]);
    expect(warm.cache.reads).toBe(0);
    expect(warm.digest).toBe(cold.digest);
    await writeFile(join(root, "app", 'we ird "name"\nline'), "ODD\n");
    await settle();
    const changed = await digestOf(root, store, ["app"]);
    expect(changed.cache.reads).toBe(1);
    expect(changed.digest).not.toBe(cold.digest);
  });

  it("a file rewritten with the same size and mtime is still re-read (ctime/inode change)", async () => {
    const { root, store } = await makeContext();
    const p = join(root, "top.txt");
    const before = await stat(p);
    const cold = await digestOf(root, store, ["top.txt"]);
    await writeFile(p, "TOP\n");
    await utimes(p, before.atime, before.mtime);
    await settle();
    const warm = await digestOf(root, store, ["top.txt"]);
    expect(warm.cache.reads).toBe(1);
    expect(warm.digest).not.toBe(cold.digest);
  });

  it("a corrupt stat cache file is ignored", async () => {
    const { root, store } = await makeContext();
    const cold = await digestOf(root, store, ["app"]);
    await writeFile(cold.cache.path, "{not json");
    const again = await digestOf(root, store, ["app"]);
    expect(again.digest).toBe(cold.digest);
    expect(again.cache.reads).toBe(3);
  });

  it("re-hashes a 20,000-file context with a warm stat cache in well under a second", async () => {
    const root = await temp("kiln-srcbig-");
    const store = new BlobStore(await temp("kiln-srcbigstore-"));
    for (let d = 0; d < 100; d++) {
      const dir = join(root, "src", `d${d}`);
      await mkdir(dir, { recursive: true });
      await Promise.all(Array.from({ length: 200 }, (_, f) => writeFile(join(dir, `f${f}.txt`), `file ${d}/${f}\n`)));
    }
    await settle();
    const cold = await digestOf(root, store, ["src"]);
    expect(cold.cache.reads).toBe(20_000);
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const warm = await digestOf(root, store, ["src"]);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(c0);
    console.log(`warm re-hash of 20,000 files: ${seconds.toFixed(3)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(3)} s CPU`);
    expect(warm.digest).toBe(cold.digest);
    expect(warm.cache.reads).toBe(0);
    // 0.3 s is the target on a quiet machine; allow headroom for a loaded one running tests in parallel
    expect(seconds).toBeLessThan(2);
  });

  it("walks exactly what DirContext.walk walks (ignore, re-include, --exclude)", async () => {
    const root = await temp("kiln-srcwalk-");
    for (const f of ["a/x.txt", "a/y.log", "a/keep/z.log", "a/b/c/d.txt", "b/e.md", "b/f.txt", "c/g", "c/h/i.log", "top.log", "t/u v/w"]) {
      await mkdir(join(root, f, ".."), { recursive: true });
      await writeFile(join(root, f), f);
    }
    await symlink("../a", join(root, "b", "up"));
    await mkdir(join(root, "empty"));
    const cases: Array<{ ignore?: string[]; exclude?: string[] }> = [
      {},
      { ignore: [], exclude: [] },
      { ignore: ["**/*.log", "!a/keep/*.log"] },
      { ignore: ["a", "!a/b/c"] },
      { ignore: ["c/*"] },
      { exclude: ["*.md", "c"] },
      { ignore: ["b"], exclude: ["**/*.txt", "!a/b/c/d.txt"] },
    ];
    for (const c of cases) {
      const ctx = new DirContext(root, c.ignore ? createIgnoreMatcher(c.ignore) : undefined);
      const ex = c.exclude ? createIgnoreMatcher(c.exclude) : undefined;
      for (const start of ["", "a", "b"]) {
        const want: string[] = [];
        for await (const e of ctx.walk(start, ex ? { exclude: ex } : {})) want.push(e.path);
        expect(await listForHash(ctx, start, ex)).toEqual(want);
      }
    }
  });
});

describe("hashSources and hard links", () => {
  it("two linked files and two equal copies give different digests (the layers differ)", async () => {
    const { link } = await import("node:fs/promises");
    const linkedRoot = await temp("kiln-srclink-");
    await writeFile(join(linkedRoot, "a"), "same\n");
    await link(join(linkedRoot, "a"), join(linkedRoot, "b"));
    const copiedRoot = await temp("kiln-srccopy-");
    await writeFile(join(copiedRoot, "a"), "same\n");
    await writeFile(join(copiedRoot, "b"), "same\n");
    const store = new BlobStore(await temp("kiln-srcstore-"));
    await settle();
    const linked = (await digestOf(linkedRoot, store, ["."])).digest;
    const copied = (await digestOf(copiedRoot, store, ["."])).digest;
    expect(linked).not.toBe(copied);
    expect((await digestOf(linkedRoot, store, ["."])).digest).toBe(linked);
  });
});

describe("hashSources cancellation", () => {
  it("an AbortSignal stops a walk in the middle with an AbortError", async () => {
    const root = await temp("kiln-srcabort-");
    await mkdir(join(root, "many"));
    await Promise.all(Array.from({ length: 5000 }, (_, i) => writeFile(join(root, "many", `f${i}`), `${i}\n`)));
    const store = new BlobStore(await temp("kiln-srcstore-"));
    const sel = await selectSources(new DirContext(root), ["many"]);
    const cache = await StatCache.load(store, root);
    const ac = new AbortController();
    const reason = new Error("stop");
    const hashing = hashSources(sel, { statCache: cache, signal: ac.signal });
    setImmediate(() => ac.abort(reason));
    const err = await hashing.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect((err as AbortError).cause).toBe(reason);
    // not aborted: the same walk completes
    expect(await hashSources(sel, { statCache: cache })).toMatch(/^sha256:/);
  });
});
