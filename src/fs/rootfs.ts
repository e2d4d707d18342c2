// Root filesystems for RUN steps, behind one interface with two implementations chosen by the
// snapshotter: "dir" extracts every layer into one plain tree under a kiln-owned work directory
// and diffs it with the lstat-baseline differ after each step; "overlay" (src/fs/overlay-rootfs.ts)
// stacks layers extracted once per diffID as overlayfs lower directories with an upper directory
// per step, and diffs only that upper. `createRootFS` picks one ("auto": overlay when it works).
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import type { LayerEntry } from "../layer/entry.js";
import { diffSnapshot, takeBaseline } from "../layer/diff.js";
import { toContainerOwners } from "../layer/owners.js";
import type { IdMap } from "../run/types.js";
import { applyLayer } from "./apply-layer.js";
import { isSnapshotLayer, openVerified, type RootFSLayer } from "./layer-source.js";
import { createOverlayRootFS } from "./overlay-rootfs.js";
import { overlayUnsupported } from "./overlay.js";
import { createWorkDir, mountsUnder, removeTree, removeWorkDir } from "./workdir.js";

export { cleanupStale } from "./workdir.js";
export type { RootFSLayer } from "./layer-source.js";

export interface StepOptions {
  /** In-image paths mounted during the step (RUN --mount targets): never part of the layer. */
  exclude?: string[];
  /** The runner's id map: the step's entries get the owners the container saw (see Runner.idMap). */
  idMap?: IdMap;
}

export interface StepSnapshot {
  /** Entries for the change since beginStep(), for writeLayer (tar order). */
  changes(): Promise<LayerEntry[]>;
}

export interface RootFS {
  /** The directory a runner uses as the container's root (valid after an apply or beginStep). */
  readonly dir: string;
  /** Apply layers in order (bottom first). */
  applyLayers(layers: RootFSLayer[]): Promise<void>;
  applyLayer(layer: RootFSLayer): Promise<void>;
  beginStep(options?: StepOptions): Promise<StepSnapshot>;
  dispose(): Promise<void>;
}

export interface DirRootFSOptions {
  /** Create device nodes from layers (default: when running as root). */
  privileged?: boolean;
  /**
   * "skip": never create block/char devices from layers on disk (dir snapshotter; they stay in
   * the layers). For isolation without a nodev mount, where a node would be usable by a RUN.
   */
  deviceNodes?: "create" | "skip";
  onWarning?: (msg: string) => void;
}

/** How RUN root filesystems are kept: "auto" is overlay where overlay mounts work, else dir. */
export type Snapshotter = "auto" | "overlay" | "dir";
export const SNAPSHOTTERS: readonly Snapshotter[] = ["auto", "overlay", "dir"];

class DirRootFS implements RootFS {
  /** The entries of the last step's snapshot: the tree already holds them. */
  private snapshot: LayerEntry[] | null = null;

  constructor(
    private readonly work: string,
    readonly dir: string,
    private readonly opts: DirRootFSOptions,
  ) {}

  /**
   * True when `layer` is the one written from the last snapshot: the RUN that made the change
   * already left the tree in that state, so extracting it again (unlink and rewrite every file)
   * would only cost time.
   */
  private async isOwnSnapshot(layer: RootFSLayer): Promise<boolean> {
    const expected = this.snapshot;
    this.snapshot = null;
    return isSnapshotLayer(layer, expected);
  }

  async applyLayers(layers: RootFSLayer[]): Promise<void> {
    for (const l of layers) await this.applyLayer(l);
  }

  async applyLayer(layer: RootFSLayer): Promise<void> {
    if (await this.isOwnSnapshot(layer)) return;
    const { stream, done, abort } = openVerified(layer);
    try {
      await applyLayer(this.dir, stream, {
        layerName: layer.digest ?? layer.diffID,
        privileged: this.opts.privileged ?? process.getuid?.() === 0,
        ...(this.opts.deviceNodes ? { deviceNodes: this.opts.deviceNodes } : {}),
        onWarning: this.opts.onWarning,
      });
    } catch (err) {
      abort();
      throw err;
    }
    await done;
  }

  async beginStep(options: StepOptions = {}): Promise<StepSnapshot> {
    this.snapshot = null;
    const baseline = takeBaseline(this.dir, options.exclude ?? []);
    return {
      changes: async () => {
        const entries = toContainerOwners(await diffSnapshot(baseline), options.idMap);
        this.snapshot = entries.length > 0 ? entries : null;
        return entries;
      },
    };
  }

  async dispose(): Promise<void> {
    // A rootfs can hold 100,000s of files: coreutils rm removes them about four times faster
    // than fs.rm. Only with nothing mounted below; removeWorkDir then detaches and finishes.
    if (mountsUnder(this.work).length === 0) await removeTree(this.dir);
    await removeWorkDir(this.work);
  }
}

/**
 * A root filesystem kept as a plain directory under `<cacheDir>/rootfs/<id>/root` (pass the
 * cache directory; an owner file lets `cleanupStale(cacheDir)` remove it after a SIGKILL).
 */
export async function createDirRootFS(cacheDir: string, options: DirRootFSOptions = {}): Promise<RootFS> {
  const work = await createWorkDir(join(cacheDir, "rootfs"));
  const dir = join(work, "root");
  await mkdir(dir, { mode: 0o755 });
  return new DirRootFS(work, dir, options);
}

/** Which snapshotter `auto` resolves to under `cacheDir` (the reason when overlay is not usable). */
export async function resolveSnapshotter(cacheDir: string, wanted: Snapshotter = "auto"): Promise<{ snapshotter: "overlay" | "dir"; reason?: string }> {
  if (wanted === "dir") return { snapshotter: "dir" };
  const why = await overlayUnsupported(join(cacheDir, "rootfs"));
  if (why === null) return { snapshotter: "overlay" };
  if (wanted === "overlay") throw new KilnError(`--snapshotter overlay: ${why}`);
  return { snapshotter: "dir", reason: why };
}

/** A root filesystem from the chosen snapshotter (see resolveSnapshotter). */
export async function createRootFS(cacheDir: string, options: DirRootFSOptions & { snapshotter?: Snapshotter } = {}): Promise<RootFS> {
  const { snapshotter } = await resolveSnapshotter(cacheDir, options.snapshotter);
  return snapshotter === "overlay" ? createOverlayRootFS(cacheDir, options) : createDirRootFS(cacheDir, options);
}
