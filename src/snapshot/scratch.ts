// Scratch file systems for step uppers: a sparse ext4 image (no journal, small files inline, inode
// tables initialised lazily, nothing reserved) loop-mounted inside a kiln work directory. It costs a few megabytes
// until written to, may grow to the free space of the host file system, and goes away with an
// unmount and one unlink. Needs root, loop devices and e2fsprogs' mkfs.ext4; when any is missing
// the caller keeps its uppers on the host file system instead.
import { spawn } from "node:child_process";
import { open, rm, statfs } from "node:fs/promises";
import { dirname } from "node:path";

const GiB = 1024 ** 3;
/** Bounds on the image's (sparse) size. */
const MIN_SIZE = 4 * GiB;
const MAX_SIZE = 1024 * GiB;

function run(cmd: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: "ignore", env: { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` } });
    child.on("error", () => resolve(false));
    child.on("close", (code) => resolve(code === 0));
  });
}

/** Make and mount a scratch file system at `mountPoint` backed by `image`; false when it cannot be. */
export async function mountScratch(image: string, mountPoint: string): Promise<boolean> {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return false;
  try {
    const st = await statfs(dirname(image));
    const free = st.bavail * st.bsize;
    const size = Math.min(MAX_SIZE, Math.max(MIN_SIZE, Math.floor(free / GiB) * GiB));
    const fh = await open(image, "wx", 0o600);
    await fh.truncate(size);
    await fh.close();
    // Small files live inside their inodes (inline_data): less to write and, above all, less for
    // the kernel to write back when the file system is unmounted (a third of the time for
    // 100,000 small files). Older e2fsprogs without the feature get a plain one.
    const mkfs = (features: string) => run("mkfs.ext4", ["-q", "-F", "-O", features, "-E", "lazy_itable_init=1,nodiscard", "-m", "0", image]);
    const made =
      ((await mkfs("^has_journal,inline_data")) || (await mkfs("^has_journal"))) &&
      (await run("mount", ["-o", "loop,noatime,noinit_itable", image, mountPoint]));
    if (!made) await rm(image, { force: true });
    return made;
  } catch {
    await rm(image, { force: true }).catch(() => undefined);
    return false;
  }
}
