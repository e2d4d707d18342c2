// The build context: a directory (or an extracted `kiln build -` tar, or a stage's root file
// system for `COPY --from`) seen through .dockerignore. Paths are context-relative POSIX;
// symlinks are resolved only inside the root, never followed onto the host.
import { createReadStream, lstatSync, readdirSync, readlinkSync, type Stats } from "node:fs";
import { lstat, mkdir, mkdtemp, readlink, symlink, link, utimes, chmod, rm } from "node:fs/promises";
import { createWriteStream } from "node:fs";
import { join, posix } from "node:path";
import { PassThrough, addAbortSignal, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import * as tar from "tar-stream";
import { KilnError, abortError, throwIfAborted } from "../errors.js";
import { hostFileOpener } from "../layer/file-content.js";

export interface ContextEntry {
  /** Relative POSIX path inside the context ("" for the root). */
  path: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  size: number;
  mtime: number;
  uid: number;
  gid: number;
  linkname?: string;
  /** Absolute path on disk. */
  abs: string;
  /** `dev:ino` of a regular file with more than one link (COPY keeps such files linked). */
  inode?: string;
}

export type IgnoreFn = ((relPath: string) => boolean) & { canSkipDir?: (dirRel: string) => boolean };

export interface DirContextOptions {
  /**
   * How symlinks pointing outside the root are treated. "error" (build contexts): a KilnError
   * naming the link target. "scope" (a stage's root file system): absolute targets are taken
   * relative to the root and `..` stops at the root, as inside a container.
   */
  symlinks?: "error" | "scope";
  /**
   * Whether COPY keeps the owners files have here. "root" (build contexts: BuildKit's file
   * transfer resets them, so files land as 0:0); "keep" (a stage's or image's root file system:
   * `COPY --from` keeps uid/gid). Default: "keep" when symlinks is "scope", else "root".
   */
  owners?: "root" | "keep";
}

const MAX_LINK_HOPS = 40;

export class DirContext {
  readonly root: string;
  readonly ignore: IgnoreFn;
  private readonly scopeLinks: boolean;
  /** True when COPY should keep the uid/gid files have in this tree (see DirContextOptions.owners). */
  readonly keepOwners: boolean;

  /** What path.join(root, x) puts before a clean relative x (e.g. "/ctx/"), for walk paths. */
  private readonly joinPrefix: string;

  constructor(root: string, ignore: IgnoreFn = () => false, options: DirContextOptions = {}) {
    this.root = root;
    this.joinPrefix = join(root, "x").slice(0, -1);
    this.ignore = ignore;
    this.scopeLinks = options.symlinks === "scope";
    this.keepOwners = (options.owners ?? (this.scopeLinks ? "keep" : "root")) === "keep";
  }

  /** lstat of a context path (intermediate symlinks resolved inside the root); ignored => undefined. */
  async stat(rel: string): Promise<ContextEntry | undefined> {
    const clean = cleanRel(rel);
    const parent = clean.includes("/") ? clean.slice(0, clean.lastIndexOf("/")) : "";
    const name = clean.slice(parent.length === 0 ? 0 : parent.length + 1);
    const realParent = parent === "" ? "" : await this.resolve(parent, clean);
    if (realParent === undefined) return undefined;
    const real = clean === "" ? "" : realParent === "" ? name : `${realParent}/${name}`;
    if (real !== "" && this.ignore(real)) {
      if (!(await this.hasVisibleDescendant(real))) return undefined;
    }
    return this.lstatRel(real);
  }

  /**
   * The context path with every symlink (including the last component) resolved inside the root.
   * Undefined when some component does not exist (or is ignored). `source` names the path in errors.
   */
  async resolve(rel: string, source: string = rel): Promise<string | undefined> {
    let pending = cleanRel(rel).split("/").filter((s) => s !== "");
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === "." ) continue;
      if (part === "..") {
        if (done.length === 0) {
          if (this.scopeLinks) continue;
          throw new KilnError("CONTEXT_SOURCE_OUTSIDE", `source "${source}" is outside the build context`);
        }
        done.pop();
        continue;
      }
      const cur = [...done, part].join("/");
      let st;
      try {
        st = await lstat(join(this.root, cur));
      } catch {
        return undefined;
      }
      if (st.isSymbolicLink()) {
        if (++hops > MAX_LINK_HOPS) throw new KilnError("PATH_UNRESOLVABLE", `source "${source}": too many levels of symbolic links`);
        const target = await readlink(join(this.root, cur));
        if (target.startsWith("/")) {
          if (!this.scopeLinks) {
            throw new KilnError("CONTEXT_SOURCE_OUTSIDE", `source "${source}" is outside the build context (symlink to ${target})`);
          }
          done.length = 0;
        }
        const targetParts = target.split("/").filter((s) => s !== "" && s !== ".");
        // A relative target that climbs above the root escapes the context.
        if (!this.scopeLinks && !target.startsWith("/")) {
          let depth = done.length;
          for (const t of targetParts) {
            depth += t === ".." ? -1 : 1;
            if (depth < 0) {
              throw new KilnError("CONTEXT_SOURCE_OUTSIDE", `source "${source}" is outside the build context (symlink to ${target})`);
            }
          }
        }
        pending = [...targetParts, ...pending];
        continue;
      }
      if (pending.length > 0 && !st.isDirectory()) return undefined;
      done.push(part);
    }
    const out = done.join("/");
    if (out !== "" && this.ignore(out) && !(await this.hasVisibleDescendant(out))) return undefined;
    return out;
  }

  /**
   * Entries beneath directory `rel` (not `rel` itself), depth first, sorted by name within each
   * directory; ignored paths skipped; symlinks reported, never followed. `rel` must be a real
   * (already resolved) directory path.
   */
  async *walk(rel: string, options: { exclude?: (relToStart: string) => boolean } = {}): AsyncIterable<ContextEntry> {
    const start = cleanRel(rel);
    // The walk itself is synchronous (readdir/lstat of cached inodes cost microseconds, a thread
    // pool round trip per name far more); the event loop gets a turn every few thousand entries.
    let n = 0;
    for (const entry of this.walkDir(start, start, options.exclude)) {
      yield entry;
      if (++n % 4096 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Opens a regular file of the context (a real path, as `stat`/`walk` report it). */
  open(rel: string): Readable {
    return createReadStream(join(this.root, cleanRel(rel)));
  }

  /** `open` bound to `rel`, in a form the layer tar writer can read directly (layer/file-content). */
  opener(rel: string): () => Readable {
    return hostFileOpener(join(this.root, cleanRel(rel)));
  }

  private *walkDir(
    dir: string,
    start: string,
    exclude: ((relToStart: string) => boolean) | undefined,
  ): Generator<ContextEntry> {
    let names: string[];
    try {
      names = readdirSync(join(this.root, dir));
    } catch (err) {
      throw new KilnError("CONTEXT_READ", `cannot read context directory "${dir || "."}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    names.sort(compareNames);
    for (const name of names) {
      const entry = this.lstatRelSync(dir === "" ? name : `${dir}/${name}`);
      if (!entry) continue;
      yield* this.visit(entry, start, exclude);
    }
  }

  private *visit(
    entry: ContextEntry,
    start: string,
    exclude: ((relToStart: string) => boolean) | undefined,
  ): Generator<ContextEntry> {
    const rel = entry.path;
    const relToStart = start === "" ? rel : rel.slice(start.length + 1);
    const excluded = exclude?.(relToStart) ?? false;
    const ignored = this.ignore(rel);
    if (!ignored && !excluded) {
      yield entry;
      if (entry.type === "dir") yield* this.walkDir(rel, start, exclude);
      return;
    }
    if (entry.type !== "dir") return;
    // An excluded directory may still hold re-included paths (`!` exceptions): then it appears
    // (with its own metadata) before them, as Docker sends it.
    const skipIgnored = ignored && (this.ignore.canSkipDir?.(rel) ?? true);
    const skipExcluded = excluded && ((exclude as IgnoreFn | undefined)?.canSkipDir?.(relToStart) ?? true);
    if (skipIgnored || skipExcluded) return;
    const inner = [...this.walkDir(rel, start, exclude)];
    if (inner.length > 0) {
      yield entry;
      yield* inner;
    }
  }

  private async hasVisibleDescendant(rel: string): Promise<boolean> {
    if (this.ignore.canSkipDir?.(rel) ?? true) return false;
    for (const _ of this.walkDir(rel, rel, undefined)) return true;
    return false;
  }

  private async lstatRel(rel: string): Promise<ContextEntry | undefined> {
    const abs = join(this.root, rel);
    let st;
    try {
      st = await lstat(abs);
    } catch {
      return undefined;
    }
    return contextEntry(rel, abs, st, st.isSymbolicLink() ? await readlink(abs) : undefined);
  }

  private lstatRelSync(rel: string): ContextEntry | undefined {
    // `rel` is built from directory listings (clean), so plain concatenation is join's result.
    const abs = rel === "" ? join(this.root, rel) : this.joinPrefix + rel;
    let st;
    try {
      st = lstatSync(abs);
    } catch {
      return undefined;
    }
    return contextEntry(rel, abs, st, st.isSymbolicLink() ? readlinkSync(abs) : undefined);
  }
}

function contextEntry(rel: string, abs: string, st: Stats, linkname: string | undefined): ContextEntry | undefined {
  const type = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : undefined;
  if (type === undefined) return undefined; // sockets, devices and fifos are not part of a build context
  const entry: ContextEntry = {
    path: rel,
    type,
    mode: st.mode & 0o7777,
    size: type === "file" ? st.size : 0,
    mtime: st.mtimeMs / 1000,
    uid: st.uid,
    gid: st.gid,
    abs,
  };
  if (type === "symlink") entry.linkname = linkname ?? "";
  if (type === "file" && st.nlink > 1) entry.inode = `${st.dev}:${st.ino}`;
  return entry;
}

/** Byte-wise name order (Go's sort.Strings), so walks are deterministic across locales. */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cleanRel(rel: string): string {
  let n = posix.normalize(`/${rel}`).slice(1);
  if (n.endsWith("/")) n = n.slice(0, -1);
  return n === "." ? "" : n;
}

/**
 * Extracts a context tar (plain or gzip) read from `stream` into a fresh directory under
 * `workDir`, refusing entries that would land outside it, and returns it as a DirContext.
 */
export async function contextFromTar(
  stream: Readable,
  workDir: string,
  ignore?: IgnoreFn,
  signal?: AbortSignal,
): Promise<DirContext> {
  throwIfAborted(signal);
  await mkdir(workDir, { recursive: true });
  const root = await mkdtemp(join(workDir, "context-"));
  try {
    await extractContextTar(signal ? addAbortSignal(signal, stream) : stream, root);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    if (signal?.aborted) throw abortError(signal);
    if (err instanceof KilnError) throw err;
    throw new KilnError("CONTEXT_TAR_INVALID", `cannot read the build context tar: ${(err as Error).message}`, { cause: err });
  }
  return new DirContext(root, ignore);
}

async function extractContextTar(stream: Readable, root: string): Promise<void> {
  const input = await maybeGunzip(stream);
  const extract = tar.extract();
  const dirTimes: Array<{ abs: string; mtime: Date; mode: number }> = [];
  const done = pipeline(input, extract);
  done.catch(() => undefined); // awaited below
  for await (const entry of extract) {
    const h = entry.header;
    const rel = safeTarPath(h.name);
    if (rel === "") {
      entry.resume();
      continue;
    }
    await ensureRealParents(root, rel);
    const abs = join(root, rel);
    const mtime = h.mtime ?? new Date(0);
    const mode = (h.mode ?? 0o644) & 0o7777;
    switch (h.type) {
      case "directory":
        await mkdir(abs, { recursive: true });
        dirTimes.push({ abs, mtime, mode });
        entry.resume();
        break;
      case "file":
      case "contiguous-file": {
        await rm(abs, { recursive: true, force: true });
        await pipeline(entry, createWriteStream(abs, { mode: 0o600 }));
        await chmod(abs, mode);
        await utimes(abs, mtime, mtime);
        break;
      }
      case "symlink":
        await rm(abs, { recursive: true, force: true });
        await symlink(h.linkname ?? "", abs);
        entry.resume();
        break;
      case "link": {
        const target = safeTarPath(h.linkname ?? "");
        await ensureRealParents(root, target);
        const tst = await lstat(join(root, target)).catch(() => undefined);
        if (!tst || !tst.isFile()) throw new KilnError("CONTEXT_TAR_INVALID", `context tar: hard link "${h.name}" points to a missing file "${h.linkname}"`);
        await rm(abs, { recursive: true, force: true });
        await link(join(root, target), abs);
        entry.resume();
        break;
      }
      default:
        // Devices, fifos and PAX/GNU metadata entries are not context content.
        entry.resume();
    }
  }
  await done;
  for (const d of dirTimes.reverse()) {
    await chmod(d.abs, d.mode).catch(() => undefined);
    await utimes(d.abs, d.mtime, d.mtime).catch(() => undefined);
  }
}

/** A tar member name made relative; `..` that climbs out is refused. */
function safeTarPath(name: string): string {
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (parts.length === 0) throw new KilnError("CONTEXT_TAR_INVALID", `context tar: entry "${name}" points outside the context`);
      parts.pop();
      continue;
    }
    parts.push(p);
  }
  return parts.join("/");
}

/** Creates missing parents of `rel` and refuses to write through a symlink. */
async function ensureRealParents(root: string, rel: string): Promise<void> {
  const parts = rel.split("/");
  let cur = root;
  for (let i = 0; i < parts.length - 1; i++) {
    cur = join(cur, parts[i]!);
    const st = await lstat(cur).catch(() => undefined);
    if (!st) {
      await mkdir(cur);
      continue;
    }
    if (st.isSymbolicLink()) throw new KilnError("CONTEXT_TAR_INVALID", `context tar: entry "${rel}" is written through a symlink`);
    if (!st.isDirectory()) throw new KilnError("CONTEXT_TAR_INVALID", `context tar: entry "${rel}" is below a non-directory`);
  }
}

/** Returns a stream of tar bytes, gunzipping when the input starts with the gzip magic. */
async function maybeGunzip(stream: Readable): Promise<Readable> {
  const head = await peek(stream, 2);
  const out = new PassThrough();
  stream.unshift(head);
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = createGunzip();
    stream.pipe(gunzip).pipe(out);
    stream.on("error", (e) => out.destroy(e));
    gunzip.on("error", (e) => out.destroy(e));
    return out;
  }
  return stream;
}

/** Reads at least `n` bytes (or all that there is) without losing them. */
async function peek(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  for (;;) {
    const chunk = stream.read() as Buffer | null;
    if (chunk !== null) {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= n) break;
      continue;
    }
    if (stream.readableEnded) break;
    const ended = await new Promise<boolean>((resolve, reject) => {
      const onReadable = () => { cleanup(); resolve(false); };
      const onEnd = () => { cleanup(); resolve(true); };
      const onError = (e: Error) => { cleanup(); reject(e); };
      const cleanup = () => {
        stream.off("readable", onReadable);
        stream.off("end", onEnd);
        stream.off("error", onError);
      };
      stream.on("readable", onReadable);
      stream.on("end", onEnd);
      stream.on("error", onError);
    });
    if (ended) break;
  }
  return Buffer.concat(chunks);
}
