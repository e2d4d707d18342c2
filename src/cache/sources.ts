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
import { KilnError } from "../errors.js";
import type { ContextEntry, DirContext, IgnoreFn } from "../context/build-context.js";
import type { SelectedSource } from "../context/select.js";
import type { Digest } from "../image/oci.js";
import type { BlobStore } from "../store/blob-store.js";
import { canonicalJSON } from "./key.js";

const STATCACHE_VERSION = 1;
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
  /** absolute path -> "hex dev ino size mtimeNs ctimeNs" */
  files: Record<string, string>;
}

interface StatRow {
  id: string;
  digest: Digest;
}

/**
 * Content hashes of context files keyed by (path, dev, inode, size, mtime ns, ctime ns). Each
 * file is one string in the JSON ("hex dev ino size mtimeNs ctimeNs") because the cache is read
 * on every build and must cost little to parse.
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
    if (doc && doc.kind === HEADER && doc.v === STATCACHE_VERSION && doc.root === contextRoot && doc.files && typeof doc.files === "object") {
      for (const [abs, row] of Object.entries(doc.files)) {
        // "hex dev ino size mtimeNs ctimeNs"; no digest validation per row: a corrupt row can
        // only make the sources digest differ (a cache miss), never match another content
        if (typeof row !== "string" || row.length < 74 || row.charCodeAt(64) !== 32) continue;
        files.set(abs, { id: row.slice(65), digest: `sha256:${row.slice(0, 64)}` });
      }
    }
    return new StatCache(path, contextRoot, files);
  }

  /** The cached hash of `abs` when its stat still matches (no I/O), else undefined. */
  lookup(abs: string, st: BigIntStats): Digest | undefined {
    this.seen.add(abs);
    const row = this.files.get(abs);
    if (row && row.id === statId(st)) {
      this.hits++;
      return row.digest;
    }
    return undefined;
  }

  /** sha256 of the regular file `abs` whose lstat (bigint) is `st`; read only when its stat changed. */
  async hashFile(abs: string, st: BigIntStats): Promise<Digest> {
    this.seen.add(abs);
    const row = this.files.get(abs);
    const id = statId(st);
    if (row && row.id === id) {
      this.hits++;
      return row.digest;
    }
    const startedNs = BigInt(Date.now()) * 1_000_000n;
    const hash = createHash("sha256");
    try {
      if (st.size <= SMALL_FILE) hash.update(readFileSync(abs));
      else await pipeline(createReadStream(abs), hash);
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
    if (after !== undefined && statId(after) === id && newest < startedNs - RACY_NS) {
      this.files.set(abs, { id, digest });
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
    const files: Record<string, string> = {};
    for (const [abs, row] of this.files) if (!dropUnseen || this.seen.has(abs)) files[abs] = `${row.digest.slice(7)} ${row.id}`;
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

/**
 * The entries beneath directory `start` exactly as DirContext.walk reports them (same order,
 * .dockerignore and --exclude rules, re-included paths inside excluded directories), but with
 * synchronous bigint lstat calls: an unchanged 20,000-file context must cost about one stat per
 * file. Yields the event loop every few thousand entries.
 */
async function* walkForHash(ctx: DirContext, start: string, exclude: IgnoreFn | undefined): AsyncGenerator<WalkEntry> {
  let n = 0;
  const stack: Array<Iterator<WalkEntry>> = [walkDir(ctx, start, start, exclude)];
  while (stack.length > 0) {
    const r = stack[stack.length - 1]!.next();
    if (r.done) {
      stack.pop();
      continue;
    }
    yield r.value;
    if (++n % 4096 === 0) await new Promise((res) => setImmediate(res));
  }
}

function entryOf(ctx: DirContext, rel: string): WalkEntry | undefined {
  const abs = join(ctx.root, rel);
  let st: BigIntStats;
  try {
    st = lstatSync(abs, { bigint: true });
  } catch {
    return undefined;
  }
  const type = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : undefined;
  return type ? { rel, abs, type, st } : undefined; // sockets, devices, fifos: not context content
}

function* walkDir(ctx: DirContext, dir: string, start: string, exclude: IgnoreFn | undefined): Generator<WalkEntry> {
  let names: string[];
  try {
    names = readdirSync(join(ctx.root, dir));
  } catch (err) {
    throw new KilnError(`cannot read context directory "${dir || "."}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  names.sort(compareNames);
  for (const name of names) {
    const e = entryOf(ctx, dir === "" ? name : `${dir}/${name}`);
    if (e) yield* visit(ctx, e, start, exclude);
  }
}

function* visit(ctx: DirContext, e: WalkEntry, start: string, exclude: IgnoreFn | undefined): Generator<WalkEntry> {
  const relToStart = start === "" ? e.rel : e.rel.slice(start.length + 1);
  const excluded = exclude?.(relToStart) ?? false;
  const ignored = ctx.ignore(e.rel);
  if (!ignored && !excluded) {
    yield e;
    if (e.type === "dir") yield* walkDir(ctx, e.rel, start, exclude);
    return;
  }
  if (e.type !== "dir") return;
  const skipIgnored = ignored && (ctx.ignore.canSkipDir?.(e.rel) ?? true);
  const skipExcluded = excluded && (exclude?.canSkipDir?.(relToStart) ?? true);
  if (skipIgnored || skipExcluded) return;
  const inner = [...walkDir(ctx, e.rel, start, exclude)];
  if (inner.length > 0) {
    yield e;
    yield* inner;
  }
}

/** Entries DirContext.walk would report (exported for the equivalence test). */
export async function listForHash(ctx: DirContext, start: string, exclude?: IgnoreFn): Promise<string[]> {
  const out: string[] = [];
  for await (const e of walkForHash(ctx, start, exclude)) out.push(e.rel);
  return out;
}

/**
 * A digest over every file the selected sources name: per source its argument, destination name
 * and --parents path, then each entry (the source itself, then a directory's walk in order) by
 * relative path, type, mode, size, content hash, link target (and owner when the tree's owners
 * are kept, as for COPY --from). Modification times are left out, as in BuildKit's content keys.
 */
export async function hashSources(sources: SelectedSource[], options: { statCache: StatCache }): Promise<Digest> {
  const hash = createHash("sha256");
  hash.update(`kiln-sources/2\n`);
  const cache = options.statCache;
  for (const src of sources) {
    const head: Record<string, unknown> = { source: src.source, name: src.name, wildcard: src.wildcard };
    if (src.parentsPath !== undefined) head.parentsPath = src.parentsPath;
    if (src.pivot !== undefined) head.pivot = src.pivot;
    hash.update(`S${canonicalJSON(head)}\n`);
    const keepOwners = src.ctx.keepOwners;
    // One line per entry: JSON-quoted path, type, mode, then size+hash / link target / owner.
    const emit = async (rel: string, type: ContextEntry["type"], abs: string, st: BigIntStats, linkname: () => string): Promise<void> => {
      let line = `${JSON.stringify(rel)} ${type} ${(Number(st.mode) & 0o7777).toString(8)}`;
      if (type === "file") {
        const digest = cache.lookup(abs, st) ?? (await cache.hashFile(abs, st));
        line += ` ${st.size} ${digest}`;
      } else if (type === "symlink") {
        line += ` ${JSON.stringify(linkname())}`;
      }
      if (keepOwners) line += ` ${st.uid}:${st.gid}`;
      hash.update(`${line}\n`);
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
    const top = src.entry;
    let topSt: BigIntStats;
    try {
      topSt = lstatSync(top.abs, { bigint: true });
    } catch (err) {
      throw new KilnError(`cannot stat context path "${top.path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const topType = topSt.isDirectory() ? "dir" : topSt.isSymbolicLink() ? "symlink" : topSt.isFile() ? "file" : undefined;
    if (topType !== top.type) throw new KilnError(`context path "${top.path}" changed while the build read it`);
    await emit("", top.type, top.abs, topSt, () => top.linkname ?? "");
    if (top.type !== "dir") continue;
    const start = top.path;
    for await (const e of walkForHash(src.ctx, start, src.exclude)) {
      const rel = start === "" ? e.rel : e.rel.slice(start.length + 1);
      await emit(rel, e.type, e.abs, e.st, () => readlinkSync(e.abs));
    }
  }
  return `sha256:${hash.digest("hex")}`;
}
