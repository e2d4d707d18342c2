// ADD of a local archive: detecting tar / gzip / bzip2 / xz by magic bytes (a compressed file is
// an archive only when its decompressed content is a tar, as Docker checks), and streaming the
// archive's members as LayerEntry values re-rooted under the destination. Member contents are
// spooled to a caller-owned temp dir (a tar can only be read in order; the layer writer sorts).
import { spawn } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import * as tar from "tar-stream";
import { KilnError } from "../errors.js";
import { entryTypeFromTar, type LayerEntry } from "../layer/entry.js";

export type ArchiveKind = "tar" | "gzip" | "bzip2" | "xz";

const TAR_BLOCK = 512;

/** Which kind of archive `open()` yields, or null when it is not a (compressed) tar. */
export async function detectArchive(open: () => Readable): Promise<ArchiveKind | null> {
  const head = await readHead(open(), TAR_BLOCK);
  let kind: ArchiveKind;
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) kind = "gzip";
  else if (head.length >= 3 && head.subarray(0, 3).toString("latin1") === "BZh") kind = "bzip2";
  else if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) kind = "xz";
  else return isTarHeader(head) ? "tar" : null;
  let inner: Buffer;
  try {
    inner = await readHead(decompress(kind, open()), TAR_BLOCK);
  } catch {
    return null; // corrupt compressed data: not an archive, copied as a file (as Docker does)
  }
  return isTarHeader(inner) ? kind : null;
}

/** A valid first tar header: ustar magic, or an old-style header whose checksum matches. */
export function isTarHeader(block: Buffer): boolean {
  if (block.length < TAR_BLOCK) return false;
  if (block.subarray(257, 262).toString("latin1") === "ustar") return true;
  if (block.every((b) => b === 0)) return false;
  const field = block.subarray(148, 156).toString("latin1").replace(/[\0 ]+/g, " ").trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum === parseInt(field, 8);
}

/** The decompressed bytes of `input` (gzip via zlib, bzip2/xz via the Debian `bzip2`/`xz` commands). */
export function decompress(kind: ArchiveKind, input: Readable): Readable {
  if (kind === "tar") return input;
  if (kind === "gzip") {
    const gunzip = createGunzip();
    input.on("error", (e) => gunzip.destroy(e));
    return input.pipe(gunzip);
  }
  const cmd = kind === "bzip2" ? "bzip2" : "xz";
  const out = new PassThrough();
  const child = spawn(cmd, ["-dc"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    if (stderr.length < 2000) stderr += d.toString("utf8");
  });
  child.on("error", (err: NodeJS.ErrnoException) => {
    out.destroy(new KilnError("HOST_TOOL_MISSING", err.code === "ENOENT" ? `the "${cmd}" command is needed to unpack ${kind} archives (Debian package ${kind === "xz" ? "xz-utils" : "bzip2"})` : `${cmd}: ${err.message}`));
  });
  child.stdin.on("error", () => undefined); // EPIPE when the reader stops early
  input.on("error", (e) => out.destroy(e));
  input.pipe(child.stdin);
  child.stdout.pipe(out, { end: false });
  child.on("close", (code, signal) => {
    if (code === 0) out.end();
    else if (!out.destroyed && signal === null) out.destroy(new KilnError("ADD_ARCHIVE_INVALID", `${cmd} -dc failed: ${stderr.trim().split("\n")[0] ?? `exit ${code}`}`));
    else out.end();
  });
  out.on("close", () => {
    if (child.exitCode === null) child.kill();
    input.destroy();
  });
  return out;
}

export interface ArchiveOptions {
  /** Directory (owned by the caller, removed after the layer is written) for member contents. */
  spoolDir: string;
  /** Overrides the owners recorded in the archive (`ADD --chown`). */
  chown?: { uid: number; gid: number };
}

/**
 * The archive's members as layer entries under `dest` (relative, no leading "/"; "" = root).
 * Absolute member names are made relative to dest; `..` beyond dest, and members written
 * through a symlink of the same archive, are refused.
 */
export async function* archiveEntries(
  open: () => Readable,
  kind: ArchiveKind,
  dest: string,
  options: ArchiveOptions,
): AsyncIterable<LayerEntry> {
  await mkdir(options.spoolDir, { recursive: true });
  const extract = tar.extract();
  const done = pipeline(decompress(kind, open()), extract);
  done.catch(() => undefined); // awaited below
  const symlinks = new Set<string>();
  let n = 0;
  try {
    for await (const member of extract) {
      const h = member.header;
      const rel = memberPath(h.name);
      const type = entryTypeFromTar(h.type);
      if (rel === "" || type === undefined) {
        // the archive's own root, or PAX/GNU bookkeeping
        member.resume();
        continue;
      }
      const parts = rel.split("/");
      for (let i = 1; i < parts.length; i++) {
        if (symlinks.has(parts.slice(0, i).join("/"))) {
          throw new KilnError("ADD_ARCHIVE_INVALID", `archive member "${h.name}" is written through a symlink`);
        }
      }
      const path = dest === "" ? rel : `${dest}/${rel}`;
      const entry: LayerEntry = {
        path,
        type,
        mode: (h.mode ?? 0o644) & 0o7777,
        uid: options.chown?.uid ?? h.uid ?? 0,
        gid: options.chown?.gid ?? h.gid ?? 0,
        mtime: h.mtime ? h.mtime.getTime() / 1000 : 0,
        size: 0,
      };
      if (!options.chown) {
        if (h.uname) entry.uname = h.uname;
        if (h.gname) entry.gname = h.gname;
      }
      const xattrs = paxXattrs(h.pax as Record<string, string> | null | undefined);
      if (xattrs) entry.xattrs = xattrs;
      if (type === "symlink") {
        entry.linkname = h.linkname ?? "";
        symlinks.add(rel);
      } else symlinks.delete(rel);
      if (type === "hardlink") {
        const target = memberPath(h.linkname ?? "");
        entry.linkname = dest === "" ? target : `${dest}/${target}`;
      }
      if (type === "char" || type === "block") {
        entry.devmajor = h.devmajor ?? 0;
        entry.devminor = h.devminor ?? 0;
      }
      if (type === "file") {
        const spooled = join(options.spoolDir, String(n++));
        await pipeline(member, createWriteStream(spooled, { mode: 0o600 }));
        entry.size = h.size ?? 0;
        entry.open = () => createReadStream(spooled);
      } else {
        member.resume();
      }
      yield entry;
    }
    await done;
  } catch (err) {
    extract.destroy();
    await done.catch(() => undefined);
    if (err instanceof KilnError) throw err;
    throw new KilnError("ADD_ARCHIVE_INVALID", `cannot unpack ${kind} archive: ${(err as Error).message}`, { cause: err });
  }
}

function memberPath(name: string): string {
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (parts.length === 0) throw new KilnError("ADD_ARCHIVE_INVALID", `archive member "${name}" would be written outside the destination`);
      parts.pop();
      continue;
    }
    parts.push(p);
  }
  return parts.join("/");
}


function paxXattrs(pax: Record<string, string> | null | undefined): Record<string, Buffer> | undefined {
  if (!pax) return undefined;
  let out: Record<string, Buffer> | undefined;
  for (const [k, v] of Object.entries(pax)) {
    if (!k.startsWith("SCHILY.xattr.")) continue;
    out ??= {};
    out[k.slice("SCHILY.xattr.".length)] = Buffer.from(v, "utf8");
  }
  return out;
}

/** Reads up to `n` bytes from the start of a stream, then stops and destroys it. */
async function readHead(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      chunks.push(b);
      got += b.length;
      if (got >= n) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, n);
}
