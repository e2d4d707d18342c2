// An image's file system outside an image (buildx's local exporters): `--output type=local,dest=DIR`
// applies every layer (whiteouts applied, each layer checked against its diff_id) into a new
// directory next to DIR and swaps it in, so DIR is the old tree or the whole new one, never a
// part; `type=tar,dest=FILE` writes the same tree as one deterministic tar (sorted entries,
// hardlinks kept, owners as in the image; xattrs are not carried) through a temp file renamed
// over FILE. Owners and device nodes are set where the process may (root); otherwise files are
// the caller's and device nodes are skipped with a warning, as Docker's local export does.
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, rename, rm } from "node:fs/promises";
import { lstatSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { KilnError } from "../errors.js";
import { applyLayer } from "../snapshot/apply-layer.js";
import { entryFromStat } from "../snapshot/diff-lstat.js";
import { openVerified, type RootFSLayer } from "../snapshot/layer-source.js";
import type { ImageSource } from "../image/source.js";
import type { LayerEntry } from "../layer/entry.js";
import { compareLayerPaths } from "../layer/order.js";
import { tarStream } from "../layer/tar-writer.js";

export interface ExportOptions {
  onWarning?: (msg: string) => void;
  signal?: AbortSignal;
}

function sibling(path: string, what: string): string {
  return join(dirname(path), `.${basename(path)}.${what}-${process.pid}-${randomBytes(4).toString("hex")}`);
}

/** Apply the image's layers, bottom first, into the empty directory `dir`. */
async function applyAll(img: ImageSource, dir: string, options: ExportOptions): Promise<void> {
  const root = process.getuid?.() === 0;
  for (const l of img.layers) {
    options.signal?.throwIfAborted();
    if (!l.diffID) throw new KilnError("MANIFEST_INVALID", `layer ${l.digest}: no diff_id in the image config`);
    const layer: RootFSLayer = { diffID: l.diffID, digest: l.digest, mediaType: l.mediaType, open: () => img.open(l.digest) };
    const { stream, done, abort } = openVerified(layer);
    try {
      await applyLayer(dir, stream, { layerName: l.digest, privileged: root, ...(options.onWarning ? { onWarning: options.onWarning } : {}) });
    } catch (err) {
      abort();
      throw err;
    }
    await done;
  }
}

/** `type=local,dest=DIR`: DIR becomes the image's file system (replacing what it held). */
export async function exportToDirectory(img: ImageSource, dest: string, options: ExportOptions = {}): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = sibling(dest, "new");
  await mkdir(tmp, { mode: 0o755 });
  try {
    await applyAll(img, tmp, options);
    const old = await lstat(dest).then((st) => st, () => null);
    if (old && !old.isDirectory()) throw new KilnError("OUTPUT_DEST_INVALID", `--output type=local,dest=${dest}: ${dest} exists and is not a directory`);
    if (old) {
      const trash = sibling(dest, "old");
      await rename(dest, trash);
      await rename(tmp, dest);
      await rm(trash, { recursive: true, force: true });
    } else {
      await rename(tmp, dest);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Every object under `root` as layer entries, in tar order (the first path of an inode carries its data). */
async function treeEntries(root: string): Promise<LayerEntry[]> {
  const paths: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(rel === "" ? root : join(root, rel))) {
      const child = rel === "" ? name : `${rel}/${name}`;
      paths.push(child);
      if ((await lstat(join(root, child))).isDirectory()) await walk(child);
    }
  };
  await walk("");
  paths.sort(compareLayerPaths);
  const firstOfInode = new Map<string, string>();
  const out: LayerEntry[] = [];
  for (const rel of paths) {
    const host = join(root, rel);
    const e = entryFromStat(firstOfInode, rel, host, lstatSync(host, { bigint: true }));
    if (e) out.push(e);
  }
  return out;
}

/** `type=tar,dest=FILE`: the image's file system as one tar ("-" is not supported: FILE is renamed into place). */
export async function exportToTar(img: ImageSource, dest: string, workDir: string, options: ExportOptions = {}): Promise<void> {
  await mkdir(workDir, { recursive: true });
  const tree = join(workDir, `export-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(tree, { mode: 0o755 });
  await mkdir(dirname(dest), { recursive: true });
  const tmp = sibling(dest, "tmp");
  try {
    await applyAll(img, tree, options);
    const entries = await treeEntries(tree);
    const out = createWriteStream(tmp, { mode: 0o644 });
    await (options.signal ? pipeline(tarStream(entries), out, { signal: options.signal }) : pipeline(tarStream(entries), out));
    await rename(tmp, dest);
  } finally {
    await rm(tmp, { force: true });
    await rm(tree, { recursive: true, force: true });
  }
}
