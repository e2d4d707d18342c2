// The SBOM scan of a directory tree (the build context, for BUILDKIT_SBOM_SCAN_CONTEXT): the same
// files the layer scan keeps (scan-files.ts wantedFile, rpm's markers, Go binaries' build info),
// found by walking the tree instead of streaming layers, with the build's .dockerignore applied.
// Symbolic links are not followed; sizes are capped as in the layer scan; an executable is read for Go
// build info by positioned reads of what the scan needs, whatever its size.
import { lstat, open, opendir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { KilnError, throwIfAborted } from "../errors.js";
import { goRecord, readGoBuildInfoFile, type GoBuildInfo } from "./go-buildinfo.js";
import { isRpmMarker } from "./rpmdb.js";
import { MAX_TOTAL_BYTES, wantedFile } from "./scan-files.js";

export interface DirScanOptions {
  /** True for context-relative paths (posix) left out, as .dockerignore does. */
  ignore?: (relPath: string) => boolean;
  signal?: AbortSignal;
  maxTotalBytes?: number;
}

/** The Go build info of the executable at `path` (`size` bytes), read by positioned reads of only what the scan needs. */
async function goBuildInfoAt(path: string, size: number): Promise<GoBuildInfo | undefined> {
  const fh = await open(path, "r");
  try {
    return await readGoBuildInfoFile(fh, size);
  } finally {
    await fh.close();
  }
}

/** The scanner files under `root`, by path relative to it (as scanFiles keys an image's files). */
export async function scanDirectory(root: string, options: DirScanOptions = {}): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const max = options.maxTotalBytes ?? MAX_TOTAL_BYTES;
  const ignore = options.ignore ?? (() => false);
  let kept = 0;
  const keep = (rel: string, data: Buffer): void => {
    kept += data.length;
    if (kept > max) throw new KilnError("FEATURE_UNSUPPORTED", `SBOM scan: the build context's package databases exceed the scan's limit (${max} bytes)`);
    files.set(rel, data);
  };
  const walk = async (dir: string, relDir: string): Promise<void> => {
    throwIfAborted(options.signal);
    for await (const e of await opendir(dir)) {
      const rel = relDir === "" ? e.name : `${relDir}/${e.name}`;
      if (ignore(rel)) {
        if (!e.isDirectory()) continue;
        // an excluded directory may still hold re-included files ("!" patterns): walk it unless the matcher says none can be
        const canSkip = (ignore as { canSkipDir?: (d: string) => boolean }).canSkipDir;
        if (!canSkip || canSkip(rel)) continue;
      }
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        await walk(path, rel);
        continue;
      }
      if (!e.isFile() || ignore(rel)) continue;
      const st = await lstat(path);
      const cap = wantedFile(rel);
      if (isRpmMarker(rel)) {
        if (st.size > 0) files.set(rel, Buffer.alloc(0));
      } else if (cap !== undefined) {
        if (st.size <= cap) keep(rel, await readFile(path));
      } else if ((st.mode & 0o111) !== 0 && st.size >= 64) {
        const info = await goBuildInfoAt(path, st.size);
        if (info) keep(rel, goRecord(info));
      }
    }
  };
  try {
    await walk(root, "");
  } catch (err) {
    if (err instanceof KilnError || (err as Error).name === "AbortError") throw err;
    throw new KilnError("CONTEXT_READ", `SBOM scan of the build context ${root}: ${(err as Error).message}`, { cause: err });
  }
  return files;
}
