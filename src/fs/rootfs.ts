// Root filesystems for RUN steps, behind one interface so an overlayfs-backed implementation
// (layers extracted once per diffID as lowerdirs, one upperdir per step) can replace the plain
// directory one without changing callers. The plain one extracts layers into a single tree under
// a kiln-owned work directory and diffs it with the snapshot differ after each step.
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Transform } from "node:stream";
import { createGunzip } from "node:zlib";
import type { Digest } from "../image/oci.js";
import type { LayerEntry } from "../layer/entry.js";
import { decompressStream } from "../layer/compress.js";
import { diffSnapshot, takeBaseline } from "../layer/diff.js";
import { applyLayer } from "./apply-layer.js";
import { createWorkDir, removeWorkDir } from "./workdir.js";

export { cleanupStale } from "./workdir.js";

export interface RootFSLayer {
  diffID: Digest;
  mediaType: string;
  /** Opens the compressed blob. */
  open(): Readable;
}

export interface StepOptions {
  /** In-image paths mounted during the step (RUN --mount targets): never part of the layer. */
  exclude?: string[];
}

export interface StepSnapshot {
  /** Entries for the change since beginStep(), for writeLayer (tar order). */
  changes(): Promise<LayerEntry[]> | AsyncIterable<LayerEntry>;
}

export interface RootFS {
  /** The directory a runner uses as the container's root. */
  readonly dir: string;
  applyLayer(layer: RootFSLayer): Promise<void>;
  beginStep(options?: StepOptions): Promise<StepSnapshot>;
  dispose(): Promise<void>;
}

export interface DirRootFSOptions {
  /** Create device nodes from layers (default: when running as root). */
  privileged?: boolean;
  onWarning?: (msg: string) => void;
}

/** Output chunk of the gunzip feeding extraction: big chunks halve its per-chunk overhead. */
const GUNZIP_CHUNK = 1024 * 1024;

function decompressor(mediaType: string): Transform {
  return /[+.]gzip$/i.test(mediaType) ? createGunzip({ chunkSize: GUNZIP_CHUNK }) : decompressStream(mediaType);
}

class DirRootFS implements RootFS {
  constructor(
    private readonly work: string,
    readonly dir: string,
    private readonly opts: DirRootFSOptions,
  ) {}

  async applyLayer(layer: RootFSLayer): Promise<void> {
    const src = layer.open();
    const dec = decompressor(layer.mediaType);
    const feeding = pipeline(src, dec);
    feeding.catch(() => undefined); // its error also surfaces through applyLayer reading `dec`
    try {
      await applyLayer(this.dir, dec, {
        layerName: layer.diffID,
        privileged: this.opts.privileged ?? process.getuid?.() === 0,
        onWarning: this.opts.onWarning,
      });
    } catch (err) {
      src.destroy();
      throw err;
    }
    await feeding;
  }

  async beginStep(options: StepOptions = {}): Promise<StepSnapshot> {
    const baseline = takeBaseline(this.dir, options.exclude ?? []);
    return { changes: () => diffSnapshot(baseline) };
  }

  async dispose(): Promise<void> {
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
