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

/** A root file system's mount, left to a runner that makes it in a mount namespace of its own. */
export interface RootMount {
  /** The directory mount(8) runs in (the options name the lower directories relative to it). */
  cwd: string;
  /** mount(8) argument lists to try in order until one succeeds. */
  args: string[][];
  /** The mount point (`RootFS.dir`). */
  target: string;
}

export interface RootFS {
  /** The directory a runner uses as the container's root (valid after an apply or beginStep). */
  readonly dir: string;
  /**
   * With `lazyMount` (overlay): the root's mount, prepared but not made, for a runner that mounts it
   * in its own mount namespace (where it vanishes with the run: nothing to unmount here). After it,
   * `dir` is empty here and the root filesystem is only for that run.
   */
  takeMount?(): Promise<RootMount>;
  /** With `lazyMount`: mount the root here after all (a runner that cannot take the mount). */
  mount?(): Promise<void>;
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
