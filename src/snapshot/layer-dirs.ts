// Extracted layers for the overlay snapshotter: each layer is unpacked once per diffID into
// `<cacheDir>/layers/<hex>/root` (overlayfs whiteouts and opaque xattrs, every write confined to that
// directory) and reused by every later build as a lower directory. Extraction goes to a work
// directory first and is renamed into place only once the layer's content hashed to its diffID
// (read in the same pass), so a layer claiming another's diffID never poisons the cache, a
// killed build never leaves a half layer, and
// two builds extracting the same layer at once both end up with one complete copy. `kiln prune`
// removes extracted layers unused for a while that no live build stacks.
import { spawn } from "node:child_process";
import { mkdir, readdir, readlink, rename, rm, stat, utimes } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Digest } from "../image/oci.js";
import type { RootFSLayer } from "./layer-source.js";
import { createWorkDir, ownerAlive, removeTree, removeWorkDir } from "./workdir.js";
import { KilnError } from "../errors.js";

/** The directory holding extracted layers under a cache directory. */
export const layerDirsRoot = (cacheDir: string): string => join(cacheDir, "layers");

const inFlight = new Map<string, Promise<string>>();

/**
 * The directory holding `layer` extracted for overlayfs (`<cacheDir>/layers/<hex>/root`),
 * extracting it first when missing. The modification time of `<hex>` records the last use.
 */
export function extractedLayer(cacheDir: string, layer: RootFSLayer, onWarning?: (msg: string) => void): Promise<string> {
  const hex = layer.diffID.replace(/^sha256:/, "");
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new KilnError("INTERNAL", `extractedLayer: unexpected diffID ${layer.diffID}`);
  const dest = join(layerDirsRoot(cacheDir), hex);
  let p = inFlight.get(dest);
  if (!p) {
    p = ensure(cacheDir, dest, layer, onWarning).finally(() => inFlight.delete(dest));
    inFlight.set(dest, p);
  }
  return p;
}

async function ensure(cacheDir: string, dest: string, layer: RootFSLayer, onWarning?: (msg: string) => void): Promise<string> {
  const now = new Date();
  const lower = join(dest, "root");
  try {
    if ((await stat(lower)).isDirectory()) {
      await utimes(dest, now, now).catch(() => undefined);
      return lower;
    }
  } catch {
    // not extracted yet
  }
  await mkdir(layerDirsRoot(cacheDir), { recursive: true });
  const work = await createWorkDir(join(cacheDir, "rootfs"), "layer-");
  try {
    const staged = join(work, "layer");
    const root = join(staged, "root");
    await mkdir(root, { recursive: true, mode: 0o755 });
    // loaded only to extract: a run whose layers are all extracted never needs the tar reader
    const [{ applyLayer }, { openVerified }] = await Promise.all([import("./apply-layer.js"), import("./layer-source.js")]);
    const { stream, done, abort } = openVerified(layer);
    try {
      await applyLayer(root, stream, { layerName: layer.digest ?? layer.diffID, privileged: true, whiteouts: "overlay", ...(onWarning ? { onWarning } : {}) });
    } catch (err) {
      abort();
      throw err;
    }
    await done; // the diffID check passed: only now may the extraction take the diffID's name
    try {
      await rename(staged, dest);
    } catch (err) {
      // another build finished the same layer first: keep its copy
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      await rm(staged, { recursive: true, force: true });
    }
    await utimes(dest, now, now).catch(() => undefined);
    return lower;
  } finally {
    await removeWorkDir(work);
  }
}

export interface ExtractedLayer {
  diffID: Digest;
  dir: string;
  /** Last use (ms since the epoch). */
  lastUsed: number;
}

/** The extracted layers under `cacheDir`. */
export async function listExtractedLayers(cacheDir: string): Promise<ExtractedLayer[]> {
  const root = layerDirsRoot(cacheDir);
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const out: ExtractedLayer[] = [];
  for (const n of names) {
    if (!/^[0-9a-f]{64}$/.test(n)) continue;
    const st = await stat(join(root, n)).catch(() => null);
    if (st?.isDirectory()) out.push({ diffID: `sha256:${n}` as Digest, dir: join(root, n), lastUsed: st.mtimeMs });
  }
  return out;
}

/** Extracted layers that a live build's root filesystem stacks (its `l/<n>` links). */
async function layersInUse(cacheDir: string): Promise<Set<string>> {
  const used = new Set<string>();
  const base = join(cacheDir, "rootfs");
  let works: string[];
  try {
    works = await readdir(base);
  } catch {
    return used;
  }
  for (const w of works) {
    const dir = join(base, w);
    if (!(await ownerAlive(dir))) continue;
    let links: string[];
    try {
      links = await readdir(join(dir, "l"));
    } catch {
      continue;
    }
    for (const l of links) {
      const target = await readlink(join(dir, "l", l)).catch(() => null);
      if (target !== null) used.add(dirname(target));
    }
  }
  return used;
}

/** Bytes under a directory (`du`), 0 when it cannot be measured. */
export function treeBytes(dir: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn("du", ["-sb", "--", dir], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.on("error", () => resolve(0));
    child.on("close", () => resolve(Number(out.split("\t")[0]) || 0));
  });
}

/**
 * Remove extracted layers last used before `before` (ms since the epoch) that no live build
 * stacks. Each is first renamed out of `layers/`, so a build starting meanwhile extracts afresh.
 */
export async function removeExtractedLayers(cacheDir: string, before: number): Promise<{ removed: number; freed: number }> {
  const inUse = await layersInUse(cacheDir);
  let removed = 0;
  let freed = 0;
  for (const l of await listExtractedLayers(cacheDir)) {
    if (l.lastUsed >= before || inUse.has(l.dir)) continue;
    const bytes = await treeBytes(l.dir);
    const work = await createWorkDir(join(cacheDir, "rootfs"), "prune-");
    try {
      await rename(l.dir, join(work, "layer"));
      await removeTree(join(work, "layer"));
      removed++;
      freed += bytes;
    } catch {
      // gone already, or renamed by another prune
    } finally {
      await removeWorkDir(work);
    }
  }
  return { removed, freed };
}
