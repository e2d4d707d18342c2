// Layer application: extracts one uncompressed layer tar onto a root directory the way
// containerd's apply does — whiteouts and opaque directories, hardlinks, symlinks, devices,
// ownership, modes (incl. setuid/setgid/sticky), xattrs and mtimes — devices only where mknod is
// allowed and wanted (otherwise they stay in the layer data only) — with every write confined
// to the root (entries that climb out are refused; symlinks planted earlier resolve inside).
// In overlay mode the root is one layer of an overlayfs stack: whiteouts and opaque markers are
// recorded the way overlayfs reads them instead of being applied.
import { spawn } from "node:child_process";
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { lstat, mkdir, readdir, rm } from "node:fs/promises";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { KilnError } from "../errors.js";
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from "../layer/entry.js";
import { cleanImagePath, resolveInRoot, resolveParentInRoot } from "./confine.js";
import { TarXattrTap } from "./tar-xattrs.js";
import { writeXattrs } from "./xattr.js";

export interface ApplyOptions {
  /** Names the layer in error messages. */
  layerName: string;
  /** Create device nodes and fifos (needs CAP_MKNOD); otherwise they are skipped with a warning. */
  privileged?: boolean;
  /**
   * Block and character devices from the layer: "create" (default, when privileged) makes them
   * on disk, "skip" never does (they stay in the layer data; a RUN sees only the /dev nodes its
   * isolation provides). Where mknod is refused (no CAP_MKNOD), "create" skips them with a warning.
   */
  deviceNodes?: "create" | "skip";
  onWarning?: (msg: string) => void;
  /**
   * How deletions are recorded. "apply" (default): whiteouts remove what they name and opaque
   * markers clear their directory, leaving the merged result. "overlay": the tree is one layer
   * of an overlayfs stack, so whiteouts become 0/0 character devices and opaque markers the
   * `trusted.overlay.opaque` xattr (needs root).
   */
  whiteouts?: "apply" | "overlay";
}

const isRoot = process.getuid?.() === 0;
/** New regular files: created exclusively (never through a planted symlink), owner-only until their mode is set. */
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | (fsConstants.O_NOFOLLOW ?? 0);

function writeAll(fd: number, chunk: Buffer): void {
  let off = 0;
  while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
}

function runMknod(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("mknod", args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(err.trim() || `mknod exited ${code}`))));
  });
}

/** True when mknod failed for want of the capability (a pod without CAP_MKNOD, a user namespace). */
function mknodRefused(err: unknown): boolean {
  return /Operation not permitted|EPERM/i.test((err as Error).message ?? "");
}

/** Remove whatever is at host path `p` (not following a final symlink); absent is fine. */
async function removeAny(p: string): Promise<void> {
  await rm(p, { recursive: true, force: true });
}

/** Remove everything under dir `hostDir` except paths (image-relative) that this layer added. */
async function opaqueClear(hostDir: string, imageDir: string, added: Set<string>): Promise<void> {
  let names: string[];
  try {
    names = await readdir(hostDir);
  } catch {
    return;
  }
  for (const n of names) {
    const img = imageDir === "" ? n : `${imageDir}/${n}`;
    const host = posix.join(hostDir, n);
    if (!added.has(img)) {
      await removeAny(host);
    } else {
      const st = await lstat(host);
      if (st.isDirectory()) await opaqueClear(host, img, added);
    }
  }
}

/** Create overlayfs whiteouts (0/0 character devices) at host paths, many per process. */
async function makeWhiteouts(paths: string[]): Promise<void> {
  for (let i = 0; i < paths.length; i += 2000) {
    const chunk = paths.slice(i, i + 2000);
    await new Promise<void>((resolve, reject) => {
      const child = spawn("sh", ["-c", 'for p do mknod -m 000 -- "$p" c 0 0 || exit 1; done', "sh", ...chunk], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.on("data", (b: Buffer) => (err += b.toString()));
      child.on("error", reject);
      child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`creating whiteouts: ${err.trim() || `exit ${code}`}`))));
    });
  }
}

function toSeconds(d: Date | undefined): number {
  return d ? d.getTime() / 1000 : 0;
}

/**
 * Apply an uncompressed layer tar to `rootDir`. Throws a one-line KilnError for entries that
 * escape the root or are malformed.
 */
export async function applyLayer(rootDir: string, tarStream: Readable, options: ApplyOptions): Promise<void> {
  const root = posix.resolve(rootDir);
  const warn = options.onWarning ?? (() => undefined);
  const added = new Set<string>();
  const dirTimes: Array<{ host: string; mtime: number; depth: number }> = [];
  const xattrItems: Array<{ path: string; xattrs: Record<string, Buffer> }> = [];
  const overlay = options.whiteouts === "overlay";
  /** Overlay mode: host paths of whiteouts to create once the tar is read (unless re-added). */
  const whiteouts = new Set<string>();
  const fail = (msg: string): never => {
    throw new KilnError("LAYER_APPLY_FAILED", `layer ${options.layerName}: ${msg}`);
  };

  const extract = tar.extract();
  const tap = new TarXattrTap();
  let firstError: unknown = null;
  const consumer = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const xattrs = tap.next();
      try {
        // tar-stream entries are streamx Readables: async-iterable byte streams.
        await applyEntry(h, entry as unknown as AsyncIterable<Buffer>, xattrs);
      } finally {
        entry.resume();
      }
    }
  })().catch((err: unknown) => {
    firstError ??= err;
    tarStream.destroy();
    extract.destroy();
  });

  // Resolved, existing parent directories (image path -> host path). Only symlinks, whiteouts
  // and replaced directories can change a resolution, so those clear the cache.
  const dirCache = new Map<string, string>();
  async function parentDir(dirPart: string): Promise<string> {
    if (dirPart === "") return root;
    const hit = dirCache.get(dirPart);
    if (hit !== undefined) return hit;
    const host = await resolveInRoot(root, dirPart, { followFinal: true });
    await mkdir(host, { recursive: true, mode: 0o755 });
    dirCache.set(dirPart, host);
    return host;
  }

  async function applyEntry(h: tar.Header, body: AsyncIterable<Buffer>, xattrs: Record<string, Buffer> | null): Promise<void> {
    const clean = cleanImagePath(h.name);
    if (clean === null) fail(`entry "${h.name}" escapes the root`);
    if (clean === "" ) {
      // The root directory itself ("./"): only metadata.
      if (h.type === "directory") await setMeta(root, h, "dir", 0, xattrs);
      return;
    }
    const c = clean as string;
    const base = posix.basename(c);
    const dirPart = posix.dirname(c) === "." ? "" : posix.dirname(c);

    if (base === OPAQUE_MARKER) {
      dirCache.clear();
      const hostDir = await resolveInRoot(root, dirPart, { followFinal: true });
      if (overlay) {
        await mkdir(hostDir, { recursive: true, mode: 0o755 });
        xattrItems.push({ path: hostDir, xattrs: { "trusted.overlay.opaque": Buffer.from("y") } });
      } else {
        await opaqueClear(hostDir, dirPart, added);
      }
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const victim = base.slice(WHITEOUT_PREFIX.length);
      if (victim === "" || victim === "." || victim === "..") fail(`entry "${h.name}" is not a valid whiteout`);
      dirCache.clear();
      const { host } = await resolveParentInRoot(root, dirPart === "" ? victim : `${dirPart}/${victim}`);
      await removeAny(host);
      if (overlay) {
        await mkdir(posix.dirname(host), { recursive: true, mode: 0o755 });
        whiteouts.add(host);
      }
      return;
    }

    const host = posix.join(await parentDir(dirPart), base);
    if (overlay) whiteouts.delete(host);
    const depth = c.split("/").length;
    // (no exception for the common "not there yet": building one costs more than the lstat)
    const existing = lstatSync(host, { throwIfNoEntry: false }) ?? null;
    const isDirEntry = h.type === "directory";
    // Cached resolutions are real directories, so a new object where nothing (or a plain file)
    // was cannot change them; replacing a directory or a symlink can.
    if (existing && !(isDirEntry && existing.isDirectory())) {
      if (!existing.isFile()) dirCache.clear();
      if (existing.isDirectory()) await removeAny(host);
      else unlinkSync(host);
    }

    switch (h.type) {
      case "directory": {
        if (!existing || !existing.isDirectory()) mkdirSync(host, { mode: 0o700 });
        // a real directory right under a resolved one: its children need no resolution walk
        dirCache.set(c, host);
        await setMeta(host, h, "dir", depth, xattrs);
        break;
      }
      case "file":
      case "contiguous-file": {
        // Content goes straight from the tar chunks to the file with synchronous writes (page
        // cache; no thread-pool round trips, nothing buffered), metadata through the same fd.
        const fd = openSync(host, CREATE_FLAGS, 0o600);
        try {
          for await (const chunk of body) writeAll(fd, chunk);
          setFileMeta(fd, host, h, xattrs);
        } finally {
          closeSync(fd);
        }
        break;
      }
      case "symlink": {
        symlinkSync(h.linkname ?? "", host);
        await setMeta(host, h, "symlink", depth, xattrs);
        break;
      }
      case "link": {
        const target = cleanImagePath(h.linkname ?? "");
        if (target === null || target === "") fail(`hardlink "${h.name}" -> "${h.linkname}" escapes the root`);
        const { host: src } = await resolveParentInRoot(root, target as string);
        let st;
        try {
          st = await lstat(src);
        } catch {
          fail(`hardlink "${h.name}" -> "${h.linkname}": target not found in the layer or below it`);
        }
        if (st && st.isDirectory()) fail(`hardlink "${h.name}" -> "${h.linkname}": target is a directory`);
        linkSync(src, host);
        break;
      }
      case "character-device":
      case "block-device":
      case "fifo": {
        if (!options.privileged) {
          warn(`layer ${options.layerName}: skipped ${h.type} "${c}" (not privileged)`);
          return;
        }
        const device = h.type !== "fifo";
        if (device && options.deviceNodes === "skip") return; // kept in the layer, never on disk
        const kind = device ? [h.type === "character-device" ? "c" : "b", String(h.devmajor ?? 0), String(h.devminor ?? 0)] : ["p"];
        try {
          await runMknod([host, ...kind]);
        } catch (err) {
          if (!device || !mknodRefused(err)) throw err;
          warn(`layer ${options.layerName}: skipped ${h.type} "${c}" (mknod refused: no CAP_MKNOD); it stays in the layer`);
          return;
        }
        await setMeta(host, h, "file", depth, xattrs);
        break;
      }
      default:
        warn(`layer ${options.layerName}: skipped "${c}" of unsupported tar type ${h.type}`);
        return;
    }
    added.add(c);
  }

  function entryMtime(h: tar.Header): number {
    const pax = (h.pax ?? {}) as Record<string, string>;
    return pax.mtime !== undefined ? Number(pax.mtime) : toSeconds(h.mtime);
  }

  /** setMeta for a regular file open as `fd`. */
  function setFileMeta(fd: number, host: string, h: tar.Header, xattrs: Record<string, Buffer> | null): void {
    try {
      fchownSync(fd, h.uid ?? 0, h.gid ?? 0);
    } catch (err) {
      if (isRoot) throw err;
    }
    fchmodSync(fd, (h.mode ?? 0o644) & 0o7777); // after chown: chown clears setuid
    if (xattrs) xattrItems.push({ path: host, xattrs });
    const mtime = entryMtime(h);
    futimesSync(fd, mtime, mtime);
  }

  async function setMeta(host: string, h: tar.Header, kind: "dir" | "file" | "symlink", depth: number, xattrs: Record<string, Buffer> | null): Promise<void> {
    const uid = h.uid ?? 0;
    const gid = h.gid ?? 0;
    try {
      lchownSync(host, uid, gid);
    } catch (err) {
      if (isRoot) throw err;
      // Unprivileged extraction cannot give files away; ownership is left as the current user.
    }
    if (kind !== "symlink") chmodSync(host, (h.mode ?? 0o644) & 0o7777); // after chown: chown clears setuid
    if (xattrs && kind !== "symlink") xattrItems.push({ path: host, xattrs });
    const mtime = entryMtime(h);
    if (kind === "dir") dirTimes.push({ host, mtime, depth });
    else lutimesSync(host, mtime, mtime);
  }

  const feeding = pipeline(tarStream, tap, extract).catch((err: unknown) => {
    firstError ??= err;
    extract.destroy();
  });
  await Promise.all([consumer, feeding]);
  if (firstError !== null) {
    if (firstError instanceof KilnError) throw firstError;
    const e = firstError as Error;
    throw new KilnError("LAYER_APPLY_FAILED", `layer ${options.layerName}: ${String(e.message).split("\n")[0]}`, { cause: firstError });
  }
  await writeXattrs(xattrItems).catch((err: unknown) => {
    throw new KilnError("LAYER_APPLY_FAILED", `layer ${options.layerName}: ${(err as Error).message}`, { cause: err });
  });
  if (whiteouts.size > 0) {
    await makeWhiteouts([...whiteouts]).catch((err: unknown) => {
      throw new KilnError("LAYER_APPLY_FAILED", `layer ${options.layerName}: ${(err as Error).message}`, { cause: err });
    });
  }
  dirTimes.sort((a, b) => b.depth - a.depth);
  for (const d of dirTimes) {
    try {
      utimesSync(d.host, d.mtime, d.mtime);
    } catch {
      // a directory a later whiteout removed
    }
  }
}
