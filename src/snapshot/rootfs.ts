// Root filesystems for RUN steps, chosen by the snapshotter: "dir" (src/snapshot/dir-rootfs.ts)
// extracts every layer into one plain tree and diffs it with the lstat-baseline differ after each
// step; "overlay" (src/snapshot/overlay-rootfs.ts) stacks layers extracted once per diffID as overlayfs
// lower directories with an upper directory per step, and diffs only that upper. This module is
// the factory (`createRootFS`; "auto": overlay when it works; each implementation is loaded when
// first used) and re-exports the contract (src/snapshot/rootfs-types.ts).
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { overlayUnsupported } from "./overlay.js";
import type { DirRootFSOptions, RootFS, Snapshotter } from "./rootfs-types.js";

export { cleanupStale } from "./workdir.js";
export type { DirRootFSOptions, DisposeOptions, RootFS, RootFSLayer, RootMount, Snapshotter, StepOptions, StepSnapshot } from "./rootfs-types.js";

/** Which snapshotter `auto` resolves to under `cacheDir` (the reason when overlay is not usable). */
export async function resolveSnapshotter(cacheDir: string, wanted: Snapshotter = "auto"): Promise<{ snapshotter: "overlay" | "dir"; reason?: string }> {
  if (wanted === "dir") return { snapshotter: "dir" };
  const why = await overlayUnsupported(join(cacheDir, "rootfs"));
  if (why === null) return { snapshotter: "overlay" };
  if (wanted === "overlay") throw new KilnError("SNAPSHOTTER_UNAVAILABLE", `--snapshotter overlay: ${why}`);
  return { snapshotter: "dir", reason: why };
}

/** The dir snapshotter's root filesystem (src/snapshot/dir-rootfs.ts; loaded on first use, as the overlay one). */
export async function createDirRootFS(cacheDir: string, options: DirRootFSOptions = {}): Promise<RootFS> {
  return (await import("./dir-rootfs.js")).createDirRootFS(cacheDir, options);
}

/** A root filesystem from the chosen snapshotter (see resolveSnapshotter). */
export async function createRootFS(cacheDir: string, options: DirRootFSOptions & { snapshotter?: Snapshotter; scratch?: boolean; lazyMount?: boolean } = {}): Promise<RootFS> {
  const { snapshotter } = await resolveSnapshotter(cacheDir, options.snapshotter);
  return snapshotter === "overlay" ? (await import("./overlay-rootfs.js")).createOverlayRootFS(cacheDir, options) : createDirRootFS(cacheDir, options);
}
