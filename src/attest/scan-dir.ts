// The SBOM scan of a directory tree (the build context, for BUILDKIT_SBOM_SCAN_CONTEXT): the same
// files the layer scan keeps (scan-files.ts wantedFile, rpm's markers, Go binaries' build info),
// found by walking the tree instead of streaming layers, with the build's .dockerignore applied.
// Symbolic links are not followed, even one swapped in while the scan runs: every file and directory
// is opened with O_NOFOLLOW relative to its parent's open descriptor (/proc/self/fd/N/name, openat's
// equivalent on Linux), and what it is (a regular file, its size) is taken from the open descriptor,
// never from an earlier lstat. Reads are bounded by the caps of the layer scan whatever the file
// grows to; an executable is read for Go build info by positioned reads of what the scan needs.
import { constants as fsConstants, existsSync } from "node:fs";
import { open, opendir, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { KilnError, throwIfAborted } from "../errors.js";
import { goRecord, readAt, readGoBuildInfoFile } from "./go-buildinfo.js";
import { isRpmMarker } from "./rpmdb.js";
import { MAX_TOTAL_BYTES, wantedFile } from "./scan-files.js";

export interface DirScanOptions {
  /** True for context-relative paths (posix) left out, as .dockerignore does. */
  ignore?: (relPath: string) => boolean;
  signal?: AbortSignal;
  maxTotalBytes?: number;
}

const NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
/** O_NONBLOCK: a fifo or device swapped in for a file must not block the open (it is refused after fstat). */
const FILE_FLAGS = fsConstants.O_RDONLY | NOFOLLOW | (fsConstants.O_NONBLOCK ?? 0);
const DIR_FLAGS = fsConstants.O_RDONLY | NOFOLLOW | (fsConstants.O_DIRECTORY ?? 0);
/** Linux's per-descriptor paths: a child named through its parent's descriptor, not the parent's (swappable) path. */
const FD_PATHS = existsSync("/proc/self/fd");

/** Errors that mean "not what the walk saw": a symlink (ELOOP), a non-directory (ENOTDIR), gone (ENOENT). */
function swappedAway(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ELOOP" || code === "ENOTDIR" || code === "ENOENT" || code === "EMLINK";
}

/** An open regular file: its descriptor and the size fstat gave for it. */
export interface OpenedFile {
  fh: FileHandle;
  size: number;
  mode: number;
}

/**
 * Opens `path` for the scan without following a symlink at its last component (O_NOFOLLOW) and
 * without blocking on a fifo (O_NONBLOCK); undefined when it is not (any longer) a regular file.
 * The caller closes the handle.
 */
export async function openRegularFile(path: string): Promise<OpenedFile | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(path, FILE_FLAGS);
  } catch (err) {
    if (swappedAway(err) || (err as NodeJS.ErrnoException).code === "ENXIO") return undefined;
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      return undefined;
    }
    return { fh, size: st.size, mode: st.mode };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/**
 * At most `cap` bytes of the open file (`size` bytes when fstat sized it), or undefined when it holds
 * more: the read is bounded by the cap, never by what the file has grown to since.
 */
export async function readCapped(fh: FileHandle, size: number, cap: number): Promise<Buffer | undefined> {
  if (size > cap) return undefined;
  const parts: Buffer[] = [];
  let total = 0;
  // one byte past the size first (a short answer proves the end), then on to one past the cap if it grew
  for (let want = size + 1; total <= cap; want = cap + 1 - total) {
    const chunk = await readAt(fh, total, want);
    parts.push(chunk);
    total += chunk.length;
    if (chunk.length < want) break;
  }
  return total > cap ? undefined : Buffer.concat(parts, total);
}

/** The scanner files under `root`, by path relative to it (as scanFiles keys an image's files). */
export async function scanDirectory(root: string, options: DirScanOptions = {}): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const max = options.maxTotalBytes ?? MAX_TOTAL_BYTES;
  const ignore = options.ignore ?? (() => false);
  let kept = 0;
  const keep = (rel: string, data: Buffer): void => {
    kept += data.length;
    if (kept > max) throw new KilnError("FEATURE_UNSUPPORTED", `SBOM scan: the build context's package databases exceed the scan's limit (${max} bytes)`);
    files.set(rel, data);
  };
  const scanFile = async (path: string, rel: string): Promise<void> => {
    const cap = wantedFile(rel);
    const marker = isRpmMarker(rel);
    const opened = await openRegularFile(path);
    if (!opened) return;
    const { fh, size, mode } = opened;
    try {
      if (marker) {
        if (size > 0) files.set(rel, Buffer.alloc(0));
      } else if (cap !== undefined) {
        const data = await readCapped(fh, size, cap);
        if (data) keep(rel, data);
      } else if ((mode & 0o111) !== 0 && size >= 64) {
        const info = await readGoBuildInfoFile(fh, size);
        if (info) keep(rel, goRecord(info));
      }
    } finally {
      await fh.close();
    }
  };
  /** A failure reading `rel`, named by its place in the context (never by a /proc/self/fd path). */
  const failed = (rel: string, err: unknown): unknown => {
    if (err instanceof KilnError || (err as Error).name === "AbortError") return err;
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return new KilnError("CONTEXT_READ", `SBOM scan of the build context ${root}: ${rel === "" ? "." : rel}: ${reason}`, { cause: err });
  };
  /** Walks the directory open as `dirFh` (named `dirPath`, context-relative `relDir`). */
  const walk = async (dirFh: FileHandle, dirPath: string, relDir: string): Promise<void> => {
    throwIfAborted(options.signal);
    const base = FD_PATHS ? `/proc/self/fd/${dirFh.fd}` : dirPath;
    let dir;
    try {
      dir = await opendir(base);
    } catch (err) {
      throw failed(relDir, err);
    }
    try {
      for await (const e of dir) {
        const rel = relDir === "" ? e.name : `${relDir}/${e.name}`;
        if (ignore(rel)) {
          if (!e.isDirectory()) continue;
          // an excluded directory may still hold re-included files ("!" patterns): walk it unless the matcher says none can be
          const canSkip = (ignore as { canSkipDir?: (d: string) => boolean }).canSkipDir;
          if (!canSkip || canSkip(rel)) continue;
        }
        const path = join(base, e.name);
        if (e.isDirectory()) {
          let child: FileHandle;
          try {
            child = await open(path, DIR_FLAGS);
          } catch (err) {
            if (swappedAway(err)) continue; // replaced by a symlink or a file since it was listed: not followed
            throw failed(rel, err);
          }
          try {
            await walk(child, join(dirPath, e.name), rel);
          } finally {
            await child.close();
          }
          continue;
        }
        if (!e.isFile() || ignore(rel)) continue;
        try {
          await scanFile(path, rel);
        } catch (err) {
          throw failed(rel, err);
        }
      }
    } catch (err) {
      throw failed(relDir, err); // a failing listing (what an entry met is named already)
    }
  };
  let rootFh: FileHandle;
  try {
    rootFh = await open(root, fsConstants.O_RDONLY | (fsConstants.O_DIRECTORY ?? 0));
  } catch (err) {
    throw failed("", err);
  }
  try {
    await walk(rootFh, root, "");
  } finally {
    await rootFh.close();
  }
  return files;
}
