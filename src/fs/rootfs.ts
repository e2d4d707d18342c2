// Root filesystems for RUN steps, behind one interface so an overlayfs-backed implementation
// (layers extracted once per diffID as lowerdirs, one upperdir per step) can replace the plain
// directory one without changing callers. The plain one extracts layers into a single tree under
// a kiln-owned work directory and diffs it with the snapshot differ after each step.
import { spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Transform } from "node:stream";
import { createGunzip, type ZlibOptions } from "node:zlib";
import type { Digest } from "../image/oci.js";
import type { LayerEntry } from "../layer/entry.js";
import { decompressStream } from "../layer/compress.js";
import { diffSnapshot, takeBaseline } from "../layer/diff.js";
import { applyLayer } from "./apply-layer.js";
import { scanTarHeaders, type TarHeaderInfo } from "./tar-xattrs.js";
import { createWorkDir, mountsUnder, removeWorkDir } from "./workdir.js";

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
/** Decompressed bytes the gunzip may run ahead of extraction, so the two overlap. */
const GUNZIP_AHEAD = 8 * 1024 * 1024;

// (ZlibOptions does not declare the Transform options zlib streams pass on, such as readableHighWaterMark)
function decompressor(mediaType: string): Transform {
  return /[+.]gzip$/i.test(mediaType) ? createGunzip({ chunkSize: GUNZIP_CHUNK, readableHighWaterMark: GUNZIP_AHEAD } as ZlibOptions) : decompressStream(mediaType);
}

const TYPEFLAGS: Record<LayerEntry["type"], string> = { file: "0", hardlink: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" };

/** True when the tar headers are exactly `entries` (same order, paths, types, modes, owners, sizes, links). */
function sameEntries(headers: TarHeaderInfo[], entries: LayerEntry[]): boolean {
  if (headers.length !== entries.length) return false;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i] as TarHeaderInfo;
    const e = entries[i] as LayerEntry;
    const name = e.type === "dir" ? `${e.path}/` : e.path;
    const typeflag = h.typeflag === "7" ? "0" : h.typeflag;
    if (h.name !== name || typeflag !== TYPEFLAGS[e.type] || h.mode !== e.mode || h.uid !== e.uid || h.gid !== e.gid) return false;
    if (e.type === "file" && h.size !== e.size) return false;
    if ((e.type === "symlink" || e.type === "hardlink") && h.linkname !== e.linkname) return false;
  }
  return true;
}

class DirRootFS implements RootFS {
  /** The entries of the last step's snapshot: the tree already holds them. */
  private snapshot: LayerEntry[] | null = null;

  constructor(
    private readonly work: string,
    readonly dir: string,
    private readonly opts: DirRootFSOptions,
  ) {}

  /**
   * True when `layer` is the one written from the last snapshot (checked header by header,
   * content not read): the RUN that made the change already left the tree in that state, so
   * extracting it again (unlink and rewrite every file) would only cost time.
   */
  private async isOwnSnapshot(layer: RootFSLayer): Promise<boolean> {
    const expected = this.snapshot;
    this.snapshot = null;
    if (!expected) return false;
    const src = layer.open();
    const dec = decompressor(layer.mediaType);
    const feeding = pipeline(src, dec);
    feeding.catch(() => undefined);
    try {
      const headers = await scanTarHeaders(dec as AsyncIterable<Buffer>);
      if (headers === null) {
        src.destroy();
        return false;
      }
      await feeding;
      return sameEntries(headers, expected);
    } catch {
      src.destroy();
      return false; // the full apply reports what is wrong with the blob
    }
  }

  async applyLayer(layer: RootFSLayer): Promise<void> {
    if (await this.isOwnSnapshot(layer)) return;
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
    this.snapshot = null;
    const baseline = takeBaseline(this.dir, options.exclude ?? []);
    return {
      changes: async () => {
        const entries = await diffSnapshot(baseline);
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

/** `rm -rf` on one file system; failures are left to the fs.rm that follows. */
function removeTree(dir: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn("rm", ["-rf", "--one-file-system", "--", dir], { stdio: "ignore" });
    child.on("error", () => resolve());
    child.on("close", () => resolve());
  });
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
