// Content digests of COPY/ADD sources for cache keys: every file a COPY/ADD selected (directory
// sources walked as copyEntries walks them, with the source's --exclude matcher), described by
// relative path, type, mode, link target, size and content sha256 — never by mtime (as BuildKit's
// content keys). File hashes come from a StatCache persisted in the store and keyed by
// (path, dev, inode, size, mtime ns, ctime ns), so an unchanged context costs stat calls, not reads.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, lstatSync, type BigIntStats } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { KilnError } from "../errors.js";
import type { ContextEntry } from "../context/build-context.js";
import type { SelectedSource } from "../context/select.js";
import { isDigest, type Digest } from "../image/oci.js";
import type { BlobStore } from "../store/blob-store.js";
import { canonicalJSON } from "./key.js";

const STATCACHE_VERSION = 1;
/**
 * A file whose mtime/ctime is this close to the moment it was hashed may still be changing within
 * the file system's timestamp granularity ("racy clean", as git calls it): its hash is not cached.
 */
const RACY_NS = 50_000_000n;

/** [dev, ino, size, mtimeNs, ctimeNs, digest] */
type StatRow = [string, string, string, string, string, Digest];

interface StatCacheFile {
  v: number;
  root: string;
  files: Record<string, StatRow>;
}

export class StatCache {
  private readonly files: Map<string, StatRow>;
  private dirty = false;
  /** How many files were read (hashed) rather than answered from the cache. */
  reads = 0;
  hits = 0;

  private constructor(
    readonly path: string,
    readonly contextRoot: string,
    files: Map<string, StatRow>,
  ) {
    this.files = files;
  }

  /** The stat cache for `contextRoot`, from `<store.root>/statcache/<sha256(contextRoot)>.json` (empty when absent or unreadable). */
  static async load(store: BlobStore, contextRoot: string): Promise<StatCache> {
    const name = createHash("sha256").update(contextRoot).digest("hex");
    const path = join(store.root, "statcache", `${name}.json`);
    const files = new Map<string, StatRow>();
    try {
      const doc = JSON.parse(await readFile(path, "utf8")) as StatCacheFile;
      if (doc && doc.v === STATCACHE_VERSION && doc.root === contextRoot && doc.files && typeof doc.files === "object") {
        for (const [abs, row] of Object.entries(doc.files)) {
          if (Array.isArray(row) && row.length === 6 && isDigest(String(row[5]))) files.set(abs, row);
        }
      }
    } catch {
      // absent or corrupt: start empty (it is only a cache)
    }
    return new StatCache(path, contextRoot, files);
  }

  /** sha256 of the regular file `abs` whose lstat (bigint) is `st`; read only when its stat changed. */
  async hashFile(abs: string, st: BigIntStats): Promise<Digest> {
    const row = this.files.get(abs);
    const dev = st.dev.toString();
    const ino = st.ino.toString();
    const size = st.size.toString();
    const mtime = st.mtimeNs.toString();
    const ctime = st.ctimeNs.toString();
    if (row && row[0] === dev && row[1] === ino && row[2] === size && row[3] === mtime && row[4] === ctime) {
      this.hits++;
      return row[5];
    }
    const startedNs = BigInt(Date.now()) * 1_000_000n;
    const hash = createHash("sha256");
    try {
      await pipeline(createReadStream(abs), hash);
    } catch (err) {
      throw new KilnError(`cannot read context file ${abs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    this.reads++;
    const digest: Digest = `sha256:${hash.digest("hex")}`;
    const newest = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs;
    let after: BigIntStats | undefined;
    try {
      after = lstatSync(abs, { bigint: true });
    } catch {
      after = undefined;
    }
    const unchanged =
      after !== undefined && after.ino === st.ino && after.size === st.size && after.mtimeNs === st.mtimeNs && after.ctimeNs === st.ctimeNs;
    if (unchanged && newest < startedNs - RACY_NS) {
      this.files.set(abs, [dev, ino, size, mtime, ctime, digest]);
      this.dirty = true;
    } else if (row) {
      this.files.delete(abs);
      this.dirty = true;
    }
    return digest;
  }

  /** Persist (temp file + rename; concurrent savers each leave a whole file). No-op when unchanged. */
  async save(): Promise<void> {
    if (!this.dirty) return;
    const doc: StatCacheFile = { v: STATCACHE_VERSION, root: this.contextRoot, files: Object.fromEntries(this.files) };
    await mkdir(join(this.path, ".."), { recursive: true });
    const tmp = `${this.path}.${process.pid}-${randomBytes(6).toString("hex")}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(doc));
      await rename(tmp, this.path);
      this.dirty = false;
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

/** One line of the sources digest. */
interface SourceLine {
  p: string;
  t: ContextEntry["type"];
  m: number;
  s?: number;
  l?: string;
  h?: Digest;
  u?: number;
  g?: number;
}

/**
 * A digest over every file the selected sources name: per source its argument, destination name
 * and --parents path, then each entry (the source itself, then a directory's walk in order).
 */
export async function hashSources(sources: SelectedSource[], options: { statCache: StatCache }): Promise<Digest> {
  const hash = createHash("sha256");
  hash.update(`kiln-sources/1\n`);
  for (const src of sources) {
    const head: Record<string, unknown> = { source: src.source, name: src.name, wildcard: src.wildcard };
    if (src.parentsPath !== undefined) head.parentsPath = src.parentsPath;
    if (src.pivot !== undefined) head.pivot = src.pivot;
    hash.update(`S${canonicalJSON(head)}\n`);
    const keepOwners = src.ctx.keepOwners;
    const line = async (e: ContextEntry, rel: string): Promise<void> => {
      const l: SourceLine = { p: rel, t: e.type, m: e.mode };
      if (e.type === "file") {
        let st: BigIntStats;
        try {
          st = lstatSync(e.abs, { bigint: true });
        } catch (err) {
          throw new KilnError(`cannot stat context file "${e.path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        if (!st.isFile()) throw new KilnError(`context file "${e.path}" changed while the build read it`);
        l.s = Number(st.size);
        l.h = await options.statCache.hashFile(e.abs, st);
      }
      if (e.type === "symlink") l.l = e.linkname ?? "";
      if (keepOwners) {
        l.u = e.uid;
        l.g = e.gid;
      }
      hash.update(`${canonicalJSON(l)}\n`);
    };
    if (src.entry.type === "file" && src.exclude?.(src.name)) {
      hash.update("excluded\n");
      continue;
    }
    if (src.parentsPath !== undefined) {
      // --parents recreates the source's parent directories with their context metadata.
      const segs = src.parentsPath.split("/").filter((x) => x !== "");
      for (let i = 1; i < segs.length; i++) {
        const rel = segs.slice(0, i).join("/");
        const st = await src.ctx.stat(src.pivot ? `${src.pivot}/${rel}` : rel);
        hash.update(`P${canonicalJSON({ p: rel, t: st?.type ?? null, m: st?.mode ?? null, ...(keepOwners && st ? { u: st.uid, g: st.gid } : {}) })}\n`);
      }
    }
    await line(src.entry, "");
    if (src.entry.type !== "dir") continue;
    const start = src.entry.path;
    const walkOpts = src.exclude ? { exclude: src.exclude } : {};
    for await (const e of src.ctx.walk(start, walkOpts)) {
      await line(e, start === "" ? e.path : e.path.slice(start.length + 1));
    }
  }
  return `sha256:${hash.digest("hex")}`;
}
