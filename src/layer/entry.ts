// LayerEntry: one file-system object destined for a layer tar. Producers (COPY/ADD sources,
// the RUN snapshot differ, heredocs) emit these; the tar writer turns them into a layer blob.
import type { Readable } from "node:stream";

export type EntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

export interface LayerEntry {
  /** Path inside the image, relative, POSIX, no leading "/" or "./", no trailing "/". */
  path: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (no file-type bits). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in seconds since the epoch (fractional allowed; PAX keeps precision). */
  mtime: number;
  /** Byte size for regular files; 0 otherwise. */
  size: number;
  /** Symlink target, or for hardlinks the path (same form as `path`) of the earlier entry. */
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes (e.g. security.capability); written as PAX SCHILY.xattr.* records. */
  xattrs?: Record<string, Buffer>;
  /** Opens the content of a regular file; must yield exactly `size` bytes. */
  open?: () => Readable;
}

/** The prefix of a whiteout file name, and the name of an opaque-directory marker. */
export const WHITEOUT_PREFIX = ".wh.";
export const OPAQUE_MARKER = ".wh..wh..opq";

/** tar-stream's header type names as LayerEntry types (undefined for what layers never hold). */
export function entryTypeFromTar(t: string | null | undefined): EntryType | undefined {
  switch (t) {
    case "file":
    case "contiguous-file":
      return "file";
    case "directory":
      return "dir";
    case "symlink":
      return "symlink";
    case "link":
      return "hardlink";
    case "character-device":
      return "char";
    case "block-device":
      return "block";
    case "fifo":
      return "fifo";
    default:
      return undefined;
  }
}
