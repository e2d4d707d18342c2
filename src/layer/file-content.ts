// Host-file content for LayerEntry.open: an opener that still works as a plain `() => Readable`
// but also carries the file's path, so the tar writer can read it straight into its output
// chunks (one open/read/close on the main thread, no stream per file). The path travels with
// the opener itself: an entry whose `open` is replaced loses the fast path automatically.
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";

const HOST_PATH = Symbol("kiln.layer.hostPath");

type HostFileOpener = (() => Readable) & { readonly [HOST_PATH]: string };

/** `open` for a regular file on the host at absolute `path`. */
export function hostFileOpener(path: string): () => Readable {
  const open = (): Readable => createReadStream(path);
  return Object.assign(open, { [HOST_PATH]: path }) as HostFileOpener;
}

/** The host path behind an opener made by hostFileOpener, else undefined. */
export function hostPathOf(open: (() => Readable) | undefined): string | undefined {
  if (open === undefined) return undefined;
  const path = (open as Partial<HostFileOpener>)[HOST_PATH];
  return typeof path === "string" ? path : undefined;
}
