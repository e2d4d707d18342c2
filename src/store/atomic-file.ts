// Writing a small file so that readers see either the old content or the new, never a part:
// write a temp name in the same directory, then rename over the target. Also the write stream
// for such temp files (created before the stream exists, so a clean-up never races its open).
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, renameSync, rmSync, writeFileSync, type WriteStream } from "node:fs";
import { chmod, mkdir, open, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export interface AtomicWriteOptions {
  /** File mode (applied after writing, so the umask cannot widen or narrow it). */
  mode?: number;
  /** Create missing parent directories with this mode. */
  mkdirMode?: number;
}

/** A temp path next to `path` (same file system, so the rename is atomic). */
export function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
}

export async function writeFileAtomic(path: string, data: string | Buffer, options: AtomicWriteOptions = {}): Promise<void> {
  if (options.mkdirMode !== undefined) await mkdir(dirname(path), { recursive: true, mode: options.mkdirMode });
  const tmp = tempNameFor(path);
  try {
    await writeFile(tmp, data, options.mode !== undefined ? { mode: options.mode } : undefined);
    if (options.mode !== undefined) await chmod(tmp, options.mode);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }); // renamed: nothing left to remove
    throw err;
  }
}

/**
 * writeFileAtomic with synchronous calls, for a small file written where a few system calls take
 * less than their promise forms' thread-pool round trips (a layout's index.json and oci-layout).
 */
export function writeFileAtomicSync(path: string, data: string | Buffer, options: AtomicWriteOptions = {}): void {
  if (options.mkdirMode !== undefined) mkdirSync(dirname(path), { recursive: true, mode: options.mkdirMode });
  const tmp = tempNameFor(path);
  try {
    writeFileSync(tmp, data, options.mode !== undefined ? { mode: options.mode } : undefined);
    if (options.mode !== undefined) chmodSync(tmp, options.mode);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true }); // renamed: nothing left to remove
    throw err;
  }
}

/**
 * A write stream on `path`, created (exclusively) before it is returned. A stream from
 * fs.createWriteStream opens its file later: when the pipeline feeding it fails at once, a
 * `finally { rm(tmp) }` could run before that open and leave an empty temp file behind.
 */
export async function createdWriteStream(path: string, mode = 0o644): Promise<WriteStream> {
  const fh = await open(path, "wx", mode);
  return fh.createWriteStream();
}
