// Walks a directory tree (without following symlinks) into a map of relative path -> what an
// image layer records for it: type, permission bits, owner, size, content hash, link target.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";

export interface TreeEntry {
  type: "file" | "dir" | "symlink" | "other";
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (whole). */
  mtime: number;
  /** sha256 hex of a regular file's content. */
  sha256?: string;
  linkname?: string;
}

export type Tree = Map<string, TreeEntry>;

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  await pipeline(createReadStream(path), h);
  return h.digest("hex");
}

export function sha256Text(s: string | Buffer): string {
  return createHash("sha256").update(s).digest("hex");
}

/** Every entry below `root`, keyed by its path relative to root ("a/b.txt"); root itself is "". */
export async function walkTree(root: string): Promise<Tree> {
  const tree: Tree = new Map();
  const visit = async (rel: string): Promise<void> => {
    const abs = rel === "" ? root : join(root, rel);
    const st = await lstat(abs);
    const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size, mtime: Math.floor(st.mtimeMs / 1000) };
    if (st.isSymbolicLink()) {
      tree.set(rel, { ...base, type: "symlink", linkname: await readlink(abs) });
    } else if (st.isFile()) {
      tree.set(rel, { ...base, type: "file", sha256: await sha256File(abs) });
    } else if (st.isDirectory()) {
      tree.set(rel, { ...base, type: "dir" });
      const names = (await readdir(abs)).sort();
      for (const n of names) await visit(rel === "" ? n : `${rel}/${n}`);
    } else {
      tree.set(rel, { ...base, type: "other" });
    }
  };
  await visit("");
  return tree;
}

/** The entry at `path` or a thrown error naming what the tree does hold nearby. */
export function entry(tree: Tree, path: string): TreeEntry {
  const e = tree.get(path);
  if (!e) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    const near = [...tree.keys()].filter((k) => k.startsWith(dir)).slice(0, 20);
    throw new Error(`no "${path}" in tree (near: ${near.join(", ")})`);
  }
  return e;
}
