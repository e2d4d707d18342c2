// The root filesystem contract RUN steps use (RootFS, a step's snapshot, the options both
// snapshotters take); the implementations are src/snapshot/dir-rootfs.ts and src/snapshot/overlay-rootfs.ts,
// the factory src/snapshot/rootfs.ts.
import type { LayerEntry } from "../layer/entry.js";
import type { IdMap } from "./idmap.js";
import type { RootFSLayer } from "./layer-source.js";
import type { RecordedOwners } from "./recorded-owners.js";

export type { RootFSLayer } from "./layer-source.js";

export interface StepOptions {
  /** In-image paths mounted during the step (RUN --mount targets): never part of the layer. */
  exclude?: string[];
  /** The runner's id map: the step's entries get the owners the container saw (see Runner.idMap). */
  idMap?: IdMap;
}

export interface ChangeOptions {
  /** Owners the step's fake root recorded without setting them (RunResult.recordedOwners). */
  recorded?: RecordedOwners;
}

export interface StepSnapshot {
  /** Entries for the change since beginStep(), for writeLayer (tar order). */
  changes(options?: ChangeOptions): Promise<LayerEntry[]>;
}

export interface RootFS {
  /** The directory a runner uses as the container's root (valid after an apply or beginStep). */
  readonly dir: string;
  /** Apply layers in order (bottom first). */
  applyLayers(layers: RootFSLayer[]): Promise<void>;
  applyLayer(layer: RootFSLayer): Promise<void>;
  beginStep(options?: StepOptions): Promise<StepSnapshot>;
  dispose(options?: DisposeOptions): Promise<void>;
}

export interface DisposeOptions {
  /**
   * Leave the tree's removal to a detached process (see removeWorkDirLater): the build that
   * succeeded does not wait for 100,000s of unlinks. Mounts are still detached first.
   */
  background?: boolean;
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
