// A private copy of a tree that never leaves it: every entry is read with lstat, symlinks are
// re-created verbatim (never followed, wherever they point), regular files are copied (reflinked
// when the file system can), directories recreated; mode, owner and times are kept. Sockets,
// fifos and device nodes are left out. Used for the writable copy behind `RUN --mount=type=bind,rw`.
import { constants, type Stats } from "node:fs";
import { chmod, copyFile, lchown, lstat, lutimes, mkdir, readdir, readlink, symlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";

/**
 * Copy `src` (a host path already resolved inside its root: a directory or a regular file) to
 * `dest` (which must not exist). Nothing below `src` is followed.
 */
export async function copyTreeNoFollow(src: string, dest: string): Promise<void> {
  const st = await lstat(src);
  if (st.isSymbolicLink()) throw new KilnError("INTERNAL", `internal: copy source ${src} is a symlink (resolve it first)`);
  await copyEntry(src, dest, st);
}

async function copyEntry(src: string, dest: string, st: Stats): Promise<void> {
  if (st.isDirectory()) {
    await mkdir(dest, { mode: 0o700 });
    for (const name of await readdir(src)) {
      const from = join(src, name);
      await copyEntry(from, join(dest, name), await lstat(from));
    }
    await keepMetadata(dest, st, false);
  } else if (st.isSymbolicLink()) {
    await symlink(await readlink(src), dest);
    await keepMetadata(dest, st, true);
  } else if (st.isFile()) {
    // lstat said "regular file", so copyFile's open cannot meet a symlink here (the trees copied
    // are finished stages, images and contexts: nothing runs in them while they are copied).
    await copyFile(src, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    await keepMetadata(dest, st, false);
  }
  // sockets, fifos and device nodes: not copied
}

async function keepMetadata(dest: string, st: Stats, isLink: boolean): Promise<void> {
  if (process.getuid?.() === 0) await lchown(dest, st.uid, st.gid).catch(() => undefined);
  if (!isLink) {
    await chmod(dest, st.mode & 0o7777);
    await utimes(dest, st.atime, st.mtime);
  } else {
    await lutimes(dest, st.atime, st.mtime).catch(() => undefined);
  }
}
