// Content digests of COPY/ADD sources for cache keys: every file a COPY/ADD selected (directory
// sources walked as copyEntries walks them, with the source's --exclude matcher), described by
// relative path, type, mode, link target, size and content sha256 — never by mtime (as BuildKit's
// content keys). File hashes come from a StatCache persisted in the store and keyed by
// (path, dev, inode, size, mtime ns, ctime ns), so an unchanged context costs stat calls, not reads.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, lstatSync, readFileSync, readdirSync, readlinkSync, type BigIntStats } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { KilnError, throwIfAborted } from "../errors.js";
import type { ContextEntry, DirContext, IgnoreFn } from "../context/build-context.js";
import type { SelectedSource } from "../context/select.js";
import type { Digest } from "../image/oci.js";
import type { BlobStore } from "../store/blob-store.js";
import { canonicalJSON } from "./key.js";

/** 2: `files` is a flat array [abs, row, abs, row, ...] (parses several times faster than an object). */
const STATCACHE_VERSION = 2;
/**
 * A file whose mtime/ctime is this close to the moment it was hashed may still be changing within
 * the file system's timestamp granularity ("racy clean", as git calls it): its hash is not cached.
 */
const RACY_NS = 50_000_000n;

const HEADER = "kiln-statcache";
/** Entries not looked up by a build that may stay in the file beyond twice the ones that were. */
const MAX_UNSEEN = 10_000;
/** Files up to this size are read in one call; larger ones are streamed (memory stays flat). */
const SMALL_FILE = 64 * 1024;

/** "dev ino size mtimeNs ctimeNs" — the identity a cached hash is valid for. */
function statId(st: BigIntStats): string {
  return `${st.dev} ${st.ino} ${st.size} ${st.mtimeNs} ${st.ctimeNs}`;
}

interface StatCacheFile {
  kind: string;
  v: number;
  root: string;
  /** Flat pairs: absolute path, then "hex dev ino size mtimeNs ctimeNs". */
  files: string[];
}

/** "hex dev ino size mtimeNs ctimeNs" exactly as stored (kept whole: no per-row objects to build or collect). */
type StatRow = string;

/** True when `row` ("hex " + id) was recorded for stat identity `id`. */
function rowMatches(row: StatRow | undefined, id: string): row is StatRow {
  return row !== undefined && row.length === 65 + id.length && row.endsWith(id);
}

function rowDigest(row: StatRow): Digest {
  return `sha256:${row.slice(0, 64)}`;
}

/**
 * Content hashes of context files keyed by (path, dev, inode, size, mtime ns, ctime ns). The
 * file is JSON (so `prune` can read its root) whose `files` is one flat array of strings, path
 * then "hex dev ino size mtimeNs ctimeNs": the cache is read on every build and must cost little
 * to parse (a 20,000-key object costs several times more than a 40,000-string array).
 */
export class StatCache {
  private readonly files: Map<string, StatRow>;
  private dirty = false;
  /** Paths looked up during this build (entries for files never seen again are dropped, see save). */
  private readonly seen = new Set<string>();
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
    let doc: StatCacheFile | undefined;
    try {
      doc = JSON.parse(await readFile(path, "utf8")) as StatCacheFile;
    } catch {
      doc = undefined; // absent or corrupt: start empty (it is only a cache)
    }
    if (doc && doc.kind === HEADER && doc.v === STATCACHE_VERSION && doc.root === contextRoot && Array.isArray(doc.files)) {
      const list = doc.files;
      for (let i = 0; i + 1 < list.length; i += 2) {
        const abs = list[i];
        const row = list[i + 1];
        // "hex dev ino size mtimeNs ctimeNs"; no digest validation per row: a corrupt row can
        // only make the sources digest differ (a cache miss), never match another content
        if (typeof abs !== "string" || typeof row !== "string" || row.length < 74 || row.charCodeAt(64) !== 32) continue;
        files.set(abs, row);
      }
    }
    return new StatCache(path, contextRoot, files);
  }

  /** The cached hash of `abs` when its stat still matches (no I/O), else undefined. */
  lookup(abs: string, st: BigIntStats): Digest | undefined {
    this.seen.add(abs);
    const row = this.files.get(abs);
    if (rowMatches(row, statId(st))) {
      this.hits++;
      return rowDigest(row);
    }
    return undefined;
  }

  /** sha256 of the regular file `abs` whose lstat (bigint) is `st`; read only when its stat changed. */
  async hashFile(abs: string, st: BigIntStats): Promise<Digest> {
    this.seen.add(abs);
    const row = this.files.get(abs);
    const id = statId(st);
    if (rowMatches(row, id)) {
      this.hits++;
      return rowDigest(row);
    }
    const startedNs = BigInt(Date.now()) * 1_000_000n;
    const hash = createHash("sha256");
    try {
      if (st.size <= SMALL_FILE) hash.update(readFileSync(abs));
      else await pipeline(createReadStream(abs), hash);
    } catch (err) {
      throw new KilnError("CONTEXT_READ", `cannot read context file ${abs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
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
    if (after !== undefined && statId(after) === id && newest < startedNs - RACY_NS) {
      this.files.set(abs, `${digest.slice(7)} ${id}`);
      this.dirty = true;
    } else if (row) {
      this.files.delete(abs);
      this.dirty = true;
    }
    return digest;
  }

  /** Persist (temp file + rename; concurrent savers each leave a whole file). No-op when unchanged. */
  async save(): Promise<void> {
    // Entries other COPYs (or deleted files) left behind are kept, but not without bound.
    const dropUnseen = this.files.size > 2 * this.seen.size + MAX_UNSEEN;
    if (!this.dirty && !dropUnseen) return;
    const files: string[] = [];
    for (const [abs, row] of this.files) if (!dropUnseen || this.seen.has(abs)) files.push(abs, row);
    const doc: StatCacheFile = { kind: HEADER, v: STATCACHE_VERSION, root: this.contextRoot, files };
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

/** What the walk reports per entry (a bigint lstat, so hashing needs no second stat call). */
interface WalkEntry {
  rel: string;
  abs: string;
  type: ContextEntry["type"];
  st: BigIntStats;
}

/** Byte-wise name order (Go's sort.Strings), the order DirContext.walk visits names in. */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A directory being walked: its sorted names and the next one to visit. */
interface Frame {
  dir: string;
  names: string[];
  next: number;
}

/**
 * How one walk reaches the file system: `prefix` is what path.join(root, rel) puts before a clean
 * relative path (so absolute paths are built by concatenation, as the stat cache keys them), and
 * `ignore` is undefined when the context ignores nothing (an empty matcher is never called).
 */
interface WalkScope {
  ctx: DirContext;
  prefix: string;
  ignore: IgnoreFn | undefined;
  exclude: IgnoreFn | undefined;
  start: string;
}

/** True for a matcher from createIgnoreMatcher built from no patterns (it excludes nothing). */
function isEmptyMatcher(fn: IgnoreFn): boolean {
  return (fn as IgnoreFn & { empty?: boolean }).empty === true;
}

function scopeOf(ctx: DirContext, start: string, exclude: IgnoreFn | undefined): WalkScope {
  return {
    ctx,
    prefix: join(ctx.root, "x").slice(0, -1),
    ignore: isEmptyMatcher(ctx.ignore) ? undefined : ctx.ignore,
    exclude: exclude === undefined || isEmptyMatcher(exclude) ? undefined : exclude,
    start,
  };
}

function namesOf(scope: WalkScope, dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir === "" ? join(scope.ctx.root) : scope.prefix + dir);
  } catch (err) {
    throw new KilnError("CONTEXT_READ", `cannot read context directory "${dir || "."}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return names.sort(compareNames);
}

function entryAt(scope: WalkScope, rel: string): WalkEntry | undefined {
  const abs = scope.prefix + rel;
  let st: BigIntStats;
  try {
    st = lstatSync(abs, { bigint: true });
  } catch {
    return undefined;
  }
  const type = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : undefined;
  return type ? { rel, abs, type, st } : undefined; // sockets, devices, fifos: not context content
}

/**
 * The entries beneath directory `dir` exactly as DirContext.walk reports them (same order,
 * .dockerignore and --exclude rules, re-included paths inside excluded directories), but with
 * synchronous bigint lstat calls and one explicit stack instead of nested generators: an
 * unchanged 20,000-file context must cost about one stat per file. Callers give the event loop
 * a turn every few thousand entries.
 */
function* walkEntries(scope: WalkScope, dir: string): Generator<WalkEntry> {
  const { ignore, exclude, start } = scope;
  const stack: Frame[] = [{ dir, names: namesOf(scope, dir), next: 0 }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.next >= frame.names.length) {
      stack.pop();
      continue;
    }
    const name = frame.names[frame.next++]!;
    const e = entryAt(scope, frame.dir === "" ? name : `${frame.dir}/${name}`);
    if (!e) continue;
    const relToStart = exclude === undefined || start === "" ? e.rel : e.rel.slice(start.length + 1);
    const excluded = exclude !== undefined && exclude(relToStart);
    const ignored = ignore !== undefined && ignore(e.rel);
    if (!ignored && !excluded) {
      yield e;
      if (e.type === "dir") stack.push({ dir: e.rel, names: namesOf(scope, e.rel), next: 0 });
      continue;
    }
    if (e.type !== "dir") continue;
    // An excluded directory may still hold re-included paths (`!` exceptions): then it appears
    // (with its own metadata) before them, as Docker sends it.
    const skipIgnored = ignored && (ignore.canSkipDir?.(e.rel) ?? true);
    const skipExcluded = excluded && (exclude.canSkipDir?.(relToStart) ?? true);
    if (skipIgnored || skipExcluded) continue;
    const inner = [...walkEntries(scope, e.rel)];
    if (inner.length > 0) {
      yield e;
      yield* inner;
    }
  }
}

/** Entries DirContext.walk would report (exported for the equivalence test). */
export async function listForHash(ctx: DirContext, start: string, exclude?: IgnoreFn): Promise<string[]> {
  const out: string[] = [];
  const scope = scopeOf(ctx, start, exclude);
  for (const e of walkEntries(scope, start)) out.push(e.rel);
  return out;
}

/** Lines are hashed in chunks of about this many characters (one native call per chunk, not per file). */
const HASH_CHUNK = 64 * 1024;
/** The event loop gets a turn after this many entries of a walk. */
const YIELD_EVERY = 4096;

/**
 * A digest over every file the selected sources name: per source its argument, destination name
 * and --parents path, then each entry (the source itself, then a directory's walk in order) by
 * relative path, type, mode, size, content hash, link target (and owner when the tree's owners
 * are kept, as for COPY --from). Modification times are left out, as in BuildKit's content keys.
 */
export async function hashSources(sources: SelectedSource[], options: { statCache: StatCache; signal?: AbortSignal }): Promise<Digest> {
  const hash = createHash("sha256");
  // Text waiting to be hashed: concatenating whole lines and hashing them later feeds sha256
  // exactly the bytes a call per line would.
  let pending = "kiln-sources/2\n";
  const add = (text: string): void => {
    pending += text;
    if (pending.length >= HASH_CHUNK) {
      hash.update(pending);
      pending = "";
    }
  };
  const cache = options.statCache;
  // Hard links among the selected files shape the layer (COPY keeps them): a file linked to one
  // seen before names it. Files with one link hash as they always have.
  const firstOfInode = new Map<string, string>();
  const linkNote = (st: BigIntStats, where: string): string => {
    if (st.nlink <= 1n) return "";
    const key = `${st.dev}:${st.ino}`;
    const first = firstOfInode.get(key);
    if (first === undefined) {
      firstOfInode.set(key, where);
      return "";
    }
    return ` =${JSON.stringify(first)}`;
  };
  for (const src of sources) {
    throwIfAborted(options.signal);
    const head: Record<string, unknown> = { source: src.source, name: src.name, wildcard: src.wildcard };
    if (src.parentsPath !== undefined) head.parentsPath = src.parentsPath;
    if (src.pivot !== undefined) head.pivot = src.pivot;
    add(`S${canonicalJSON(head)}\n`);
    const keepOwners = src.ctx.keepOwners;
    // One line per entry: JSON-quoted path, type, mode, then size+hash / link target / owner.
    // A file answered by the stat cache costs no promise (`await` only on a miss).
    const line = (rel: string, type: ContextEntry["type"], st: BigIntStats, detail: string): string => {
      let out = `${JSON.stringify(rel)} ${type} ${(Number(st.mode) & 0o7777).toString(8)}${detail}`;
      if (keepOwners) out += ` ${st.uid}:${st.gid}`;
      return `${out}\n`;
    };
    if (src.entry.type === "file" && src.exclude?.(src.name)) {
      add("excluded\n");
      continue;
    }
    if (src.parentsPath !== undefined) {
      // --parents recreates the source's parent directories with their context metadata.
      const segs = src.parentsPath.split("/").filter((x) => x !== "");
      for (let i = 1; i < segs.length; i++) {
        const rel = segs.slice(0, i).join("/");
        const st = await src.ctx.stat(src.pivot ? `${src.pivot}/${rel}` : rel);
        add(`P${canonicalJSON({ p: rel, t: st?.type ?? null, m: st?.mode ?? null, ...(keepOwners && st ? { u: st.uid, g: st.gid } : {}) })}\n`);
      }
    }
    const top = src.entry;
    let topSt: BigIntStats;
    try {
      topSt = lstatSync(top.abs, { bigint: true });
    } catch (err) {
      throw new KilnError("CONTEXT_READ", `cannot stat context path "${top.path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    const topType = topSt.isDirectory() ? "dir" : topSt.isSymbolicLink() ? "symlink" : topSt.isFile() ? "file" : undefined;
    if (topType !== top.type) throw new KilnError("CONTEXT_CHANGED", `context path "${top.path}" changed while the build read it`);
    if (top.type === "file") {
      const digest = cache.lookup(top.abs, topSt) ?? (await cache.hashFile(top.abs, topSt));
      add(line("", "file", topSt, ` ${topSt.size} ${digest}${linkNote(topSt, `${src.source}:`)}`));
    } else if (top.type === "symlink") {
      add(line("", "symlink", topSt, ` ${JSON.stringify(top.linkname ?? "")}`));
    } else {
      add(line("", top.type, topSt, ""));
    }
    if (top.type !== "dir") continue;
    const start = top.path;
    const cut = start === "" ? 0 : start.length + 1;
    let n = 0;
    for (const e of walkEntries(scopeOf(src.ctx, start, src.exclude), start)) {
      const rel = cut === 0 ? e.rel : e.rel.slice(cut);
      if (e.type === "file") {
        const digest = cache.lookup(e.abs, e.st) ?? (await cache.hashFile(e.abs, e.st));
        add(line(rel, "file", e.st, ` ${e.st.size} ${digest}${linkNote(e.st, `${src.source}:${rel}`)}`));
      } else if (e.type === "symlink") {
        add(line(rel, "symlink", e.st, ` ${JSON.stringify(readlinkSync(e.abs))}`));
      } else {
        add(line(rel, e.type, e.st, ""));
      }
      if (++n % YIELD_EVERY === 0) {
        await new Promise((res) => setImmediate(res));
        throwIfAborted(options.signal);
      }
    }
  }
  hash.update(pending);
  return `sha256:${hash.digest("hex")}`;
}
