// The overlay snapshotter's root filesystem: layers extracted once per diffID (src/snapshot/layer-dirs.ts)
// are stacked as overlayfs lower directories under one upper directory per step, mounted at
// `<work>/merged`. A step's change is read from its upper alone (src/snapshot/diff-upper.ts) against
// a read-only view of the layers below; afterwards that upper is frozen into the stack as the
// step's layer, so a RUN's own layer is never extracted. Lower directories are named through short
// `l/<n>` symlinks in the work directory so that deep stacks fit in the mount options.
// Uppers live on a scratch file system when one can be made (src/snapshot/scratch.ts), from the first
// step on (a tree only read, such as COPY --from=<image>, needs none): a sparse ext4 image,
// loop-mounted, private to this root filesystem — new files are created at the speed of a fresh
// file system however aged the host's is, and disposal is an unmount instead of deleting every
// file a step wrote. With `lazyMount` (kiln run) applyLayers mounts nothing: the mount is handed
// to a runner that makes it in its own mount namespace (takeMount), or made here later (mount).
import { readdirSync } from "node:fs";
import { chmod, chown, lstat, mkdir, readdir, rm, symlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import type { LayerEntry } from "../layer/entry.js";
import { extractedLayer } from "./layer-dirs.js";
import type { RootFSLayer } from "./layer-source.js";
import { KilnError } from "../errors.js";
import { mountOverlay, overlayMountArgs, unmount, type OverlayMount } from "./overlay.js";
import type { DirRootFSOptions, DisposeOptions, RootFS, RootMount, StepOptions, StepSnapshot } from "./rootfs-types.js";
import { createWorkDir, mountsUnder, removeTree, removeWorkDir, removeWorkDirLater } from "./workdir.js";

class OverlayRootFS implements RootFS {
  readonly dir: string;
  /** Lower directories, bottom first (absolute); `l/<i>` links to lowers[i]. */
  private readonly lowers: string[] = [];
  /** Uppers made so far; the last one is the current upper. */
  private uppers = 0;
  private mounted = false;
  /** The stack changed since the mount. */
  private dirty = true;
  /** The current upper may hold changes (a step ran on it). */
  private upperUsed = false;
  /** The entries of the last step's snapshot: the current upper holds them. */
  private snapshot: LayerEntry[] | null = null;
  /** Where uppers and the overlay work directory live, relative to the work directory. */
  private scratch = ".";
  /** A scratch file system is wanted but not made yet (only a step needs one). */
  private scratchPending = false;
  /** The overlay work directory made empty by init() and not mounted with yet (no clearing needed). */
  private freshWork: string | undefined;
  /** The mount was handed to a runner (takeMount): this root filesystem is that run's alone. */
  private given = false;

  constructor(
    private readonly cacheDir: string,
    private readonly work: string,
    private readonly opts: OverlayRootFSOptions,
  ) {
    this.dir = join(work, "merged");
  }

  private get upper(): string {
    return join(this.scratch, `u${this.uppers - 1}`);
  }

  private get overlayWork(): string {
    return join(this.scratch, "work");
  }

  async init(useScratch: boolean): Promise<void> {
    this.scratchPending = useScratch;
    this.freshWork = join(this.work, this.overlayWork);
    await Promise.all([...["merged", "lower", "l", "empty", "s"].map((d) => mkdir(join(this.work, d))), mkdir(this.freshWork), this.newUpper()]);
  }

  /** Move the (still unused) upper onto a scratch file system, the first time a step runs. */
  private async useScratch(): Promise<void> {
    if (!this.scratchPending) return;
    this.scratchPending = false;
    const { mountScratch } = await import("./scratch.js");
    if (!(await mountScratch(join(this.work, "scratch.img"), join(this.work, "s")))) return;
    this.scratch = "s";
    await this.newUpper();
    this.dirty = true;
  }

  private async newUpper(): Promise<void> {
    this.uppers++;
    await mkdir(join(this.work, this.upper), { mode: 0o755 });
    this.upperUsed = false;
  }

  async applyLayers(layers: RootFSLayer[]): Promise<void> {
    for (const layer of layers) {
      // the upper already is this layer: it stays as it is, frozen when the next step begins
      // (the snapshot code loads only after a step: `kiln run` and a build's first root need none)
      const snapshot = this.takeSnapshot();
      if (snapshot && (await (await import("./layer-source.js")).isSnapshotLayer(layer, snapshot))) continue;
      await this.freezeUpper();
      const dir = await extractedLayer(this.cacheDir, layer, this.opts.onWarning);
      await this.pushLower(dir);
    }
    if (!this.opts.lazyMount) await this.ensureMounted();
  }

  applyLayer(layer: RootFSLayer): Promise<void> {
    return this.applyLayers([layer]);
  }

  async beginStep(options: StepOptions = {}): Promise<StepSnapshot> {
    this.snapshot = null;
    await this.freezeUpper(); // whatever an earlier step left stays, below this step's upper
    await this.useScratch();
    await this.ensureMounted();
    this.upperUsed = true;
    const upper = join(this.work, this.upper);
    const exclude = options.exclude ?? [];
    return {
      changes: async (change = {}) => {
        const [{ diffUpper }, { applyRecordedByPath }, { toContainerOwners }] = await Promise.all([import("./diff-upper.js"), import("./recorded-owners.js"), import("./owners.js")]);
        const view = await this.mountLowerView();
        try {
          const diffed = await diffUpper({ upper, lower: view, excludes: exclude });
          const applied = new Set<LayerEntry>();
          const withOwners = change.recorded && change.recorded.size > 0 ? applyRecordedByPath(diffed, this.dir, change.recorded, applied) : diffed;
          const entries = toContainerOwners(withOwners, options.idMap, "RUN", applied);
          this.snapshot = entries.length > 0 ? entries : null;
          return entries;
        } finally {
          if (view !== null && this.lowers.length > 1) await unmount(view);
        }
      },
    };
  }

  async dispose(options: DisposeOptions = {}): Promise<void> {
    // Deepest first: the merged and lower views, then the scratch file system (the kernel writes
    // its dirty inodes back to the image first, however soon the image is deleted).
    for (const mp of mountsUnder(this.work)) await unmount(mp).catch(() => undefined);
    if (options.background && (await removeWorkDirLater(this.work))) return;
    // a big tree goes faster through rm(1); a small one (a container's few writes) not worth a process
    const small = mountsUnder(this.work).length === 0 && smallTree(this.work);
    if (!small) await removeTree(this.work);
    await removeWorkDir(this.work, { small });
  }

  private takeSnapshot(): LayerEntry[] | null {
    const s = this.snapshot;
    this.snapshot = null;
    return s;
  }

  private async pushLower(dir: string): Promise<void> {
    await symlink(dir, join(this.work, "l", String(this.lowers.length)));
    this.lowers.push(dir);
    this.dirty = true;
  }

  /** Make the current upper (when a step used it and left something) the top lower. */
  private async freezeUpper(): Promise<void> {
    if (!this.upperUsed) return;
    const upper = join(this.work, this.upper);
    if ((await readdir(upper)).length === 0) return; // nothing to keep: reuse it
    if (this.mounted) {
      await unmount(this.dir);
      this.mounted = false;
    }
    await this.pushLower(upper);
    await this.newUpper();
  }

  async takeMount(): Promise<RootMount> {
    if (this.mounted) throw new KilnError("INTERNAL", "takeMount: the root is mounted already");
    await this.prepareMount();
    this.given = true;
    this.dirty = false;
    return { cwd: this.work, args: overlayMountArgs(this.currentMount()), target: this.dir };
  }

  mount(): Promise<void> {
    return this.ensureMounted();
  }

  private currentMount(): OverlayMount {
    return { cwd: this.work, lowers: this.lowerNames(), upper: this.upper, work: this.overlayWork, target: this.dir };
  }

  private async ensureMounted(): Promise<void> {
    if (this.given) throw new KilnError("INTERNAL", "the root's mount was given to a runner");
    if (this.mounted && !this.dirty) return;
    if (this.mounted) {
      await unmount(this.dir);
      this.mounted = false;
    }
    await this.prepareMount();
    await mountOverlay(this.currentMount());
    this.mounted = true;
    this.dirty = false;
  }

  /** The upper's root metadata and an empty overlay work directory, for the next mount. */
  private async prepareMount(): Promise<void> {
    const upper = join(this.work, this.upper);
    const workDir = join(this.work, this.overlayWork);
    await Promise.all([
      // The merged root shows the upper's root directory: give it the metadata of the one below.
      this.upperUsed ? undefined : copyRootMeta(this.lowers[this.lowers.length - 1] ?? null, upper),
      // a volatile mount leaves work/incompat/volatile behind, which refuses the next mount
      this.freshWork === workDir ? undefined : rm(workDir, { recursive: true, force: true }).then(() => mkdir(workDir)),
    ]);
    this.freshWork = undefined;
  }

  /** `l/<top>` … `l/0`, or the empty directory when there is no layer yet. */
  private lowerNames(): string[] {
    if (this.lowers.length === 0) return ["empty"];
    return this.lowers.map((_, i) => `l/${i}`).reverse();
  }

  /** A read-only view of the lowers (null when there are none; the only lower itself when one). */
  private async mountLowerView(): Promise<string | null> {
    if (this.lowers.length === 0) return null;
    if (this.lowers.length === 1) return this.lowers[0] as string;
    const target = join(this.work, "lower");
    await mountOverlay({ cwd: this.work, lowers: this.lowerNames(), target });
    return target;
  }
}

async function copyRootMeta(from: string | null, to: string): Promise<void> {
  if (from === null) {
    await chmod(to, 0o755);
    return;
  }
  const st = await lstat(from);
  // chown first: it clears set-id bits the mode may carry
  await Promise.all([chown(to, st.uid, st.gid).then(() => chmod(to, st.mode & 0o7777)), utimes(to, st.atime, st.mtime)]);
}

export interface OverlayRootFSOptions extends DirRootFSOptions {
  /** Keep uppers on a private scratch file system when one can be made (default true). */
  scratch?: boolean;
  /** applyLayers does not mount: the caller takes the mount (takeMount) or mounts (mount). */
  lazyMount?: boolean;
}

/**
 * A root filesystem on overlayfs under `<cacheDir>/rootfs/<id>` (layers shared under
 * `<cacheDir>/layers`). Needs root and a file system that can hold an upper directory; see
 * `overlayUnsupported`.
 */
export async function createOverlayRootFS(cacheDir: string, options: OverlayRootFSOptions = {}): Promise<RootFS> {
  const work = await createWorkDir(join(cacheDir, "rootfs"), "ovl-");
  const fs = new OverlayRootFS(cacheDir, work, options);
  try {
    await fs.init(options.scratch ?? true);
  } catch (err) {
    await removeWorkDir(work);
    throw err;
  }
  return fs;
}

/** Whether `dir` holds at most `limit` entries (walked until the limit is passed; symlinks not followed; synchronous: a few directory reads). */
function smallTree(dir: string, limit = 64): boolean {
  let count = 0;
  const walk = (d: string): boolean => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return true;
    }
    count += entries.length;
    if (count > limit) return false;
    for (const e of entries) if (e.isDirectory() && !walk(join(d, e.name))) return false;
    return true;
  };
  return walk(dir);
}
