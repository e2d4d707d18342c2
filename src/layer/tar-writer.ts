// The deterministic layer tar writer: turns LayerEntry values into a tar stream whose bytes depend
// only on the entries (not their order). Owns entry sorting (whiteouts first in each directory),
// duplicate/hardlink checks, and USTAR/PAX header encoding. Content is streamed, never buffered
// whole: headers and file bytes go straight into 1 MiB output chunks (host files read directly).
import { closeSync, constants as fsConstants, openSync, readSync } from "node:fs";
import { Readable } from "node:stream";
import { KilnError } from "../errors.js";
import type { EntryType, LayerEntry } from "./entry.js";
import { hostPathOf } from "./file-content.js";
import { compareLayerPaths } from "./order.js";

export { compareLayerPaths };

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
const MAX_OCTAL_7 = 0o7777777; // fits an 8-byte numeric field (7 digits + NUL)
const MAX_OCTAL_11 = 0o77777777777; // fits a 12-byte numeric field (11 digits + NUL)

export interface TarOptions {
  /** Clamp every mtime to at most this (seconds since the epoch), e.g. SOURCE_DATE_EPOCH. */
  clampMtime?: number;
  /**
   * Where the 1 MiB output chunks come from (default: a fresh buffer each). A chunk, once
   * yielded, is never written again; a recycling consumer (writeLayer) may hand it back here.
   */
  allocChunk?: () => Buffer;
}

/** Deterministic tar of `entries` (sorted, checked), streamed. Errors surface on the stream. */
export function tarStream(
  entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>,
  options?: TarOptions,
): Readable {
  return Readable.from(generateTar(entries, options ?? {}), { objectMode: false });
}

async function* generateTar(
  entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>,
  options: TarOptions,
): AsyncGenerator<Buffer> {
  const ordered = await collectAndOrder(entries);
  // Headers and content are written straight into fixed 1 MiB chunks (a fresh buffer each, as
  // downstream keeps them): few pushes, big hash updates, blocks the parallel gzip can adopt.
  const out = new ChunkWriter(CHUNK_SIZE, options.allocChunk);
  for (const entry of ordered) {
    if (writeEntrySync(entry, options, out)) {
      if (out.hasFull()) yield* each(out.takeFull());
    } else {
      yield* writeEntry(entry, options, out);
    }
  }
  out.zeros(2 * BLOCK);
  yield* each(out.takeFull());
  const last = out.takeRest();
  if (last) yield last;
}

/** Output chunk size (when not given by allocChunk); the gzip block size, so chunks are adoptable as blocks. */
const CHUNK_SIZE = 1024 * 1024;

/** Fills fixed-size chunks; full ones are handed out and never touched again. */
class ChunkWriter {
  private readonly alloc: () => Buffer;
  private buf: Buffer;
  private pos = 0;
  private readonly full: Buffer[] = [];

  constructor(size: number, alloc?: () => Buffer) {
    this.alloc = alloc ?? (() => Buffer.allocUnsafeSlow(size));
    this.buf = this.alloc();
  }

  private rotate(): void {
    this.full.push(this.buf);
    this.buf = this.alloc();
    this.pos = 0;
  }

  /** Room left in the current chunk (rotating first when it is full). */
  space(): number {
    if (this.pos === this.buf.length) this.rotate();
    return this.buf.length - this.pos;
  }

  /** The writable tail of the current chunk (call `advance` with how much was filled). */
  target(): { buf: Buffer; offset: number; length: number } {
    const length = this.space();
    return { buf: this.buf, offset: this.pos, length };
  }

  advance(n: number): void {
    this.pos += n;
  }

  write(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(this.space(), data.length - off);
      data.copy(this.buf, this.pos, off, off + n);
      this.pos += n;
      off += n;
    }
  }

  zeros(count: number): void {
    let left = count;
    while (left > 0) {
      const n = Math.min(this.space(), left);
      this.buf.fill(0, this.pos, this.pos + n);
      this.pos += n;
      left -= n;
    }
  }

  /** True when a chunk is ready to be handed out. */
  hasFull(): boolean {
    return this.full.length > 0 || this.pos === this.buf.length;
  }

  /** Completed chunks (the current one too when it is exactly full). */
  takeFull(): Buffer[] {
    if (this.pos === this.buf.length) this.rotate();
    return this.full.splice(0, this.full.length);
  }

  /** Whatever is left of the current chunk, at the end. */
  takeRest(): Buffer | undefined {
    if (this.pos === 0) return undefined;
    const rest = this.buf.subarray(0, this.pos);
    this.pos = this.buf.length; // nothing more may be written
    return rest;
  }
}

// ---------------------------------------------------------------------------------------------
// Collecting, validating and ordering

async function collectAndOrder(entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>): Promise<LayerEntry[]> {
  const byPath = new Map<string, LayerEntry>();
  const ordered: LayerEntry[] = [];
  let sorted = true;
  for await (const entry of entries as AsyncIterable<LayerEntry>) {
    checkPath(entry.path, "path");
    if (byPath.has(entry.path)) throw new KilnError(`layer: duplicate path "${entry.path}"`);
    byPath.set(entry.path, entry);
    // producers such as the snapshot differs already emit tar order: then there is nothing to sort
    if (sorted && ordered.length > 0 && compareLayerPaths((ordered[ordered.length - 1] as LayerEntry).path, entry.path) > 0) sorted = false;
    ordered.push(entry);
  }
  if (!sorted) ordered.sort((a, b) => compareLayerPaths(a.path, b.path));
  const position = new Map<string, number>();
  ordered.forEach((e, i) => position.set(e.path, i));
  return fixHardlinks(ordered, byPath, position);
}

function checkPath(path: string, what: string): void {
  if (path.length === 0 || path.startsWith("/") || path.endsWith("/") || path.includes("\0")) {
    throw new KilnError(`layer: invalid ${what} "${path}"`);
  }
  for (const part of path.split("/")) {
    if (part === "" || part === "." || part === "..") throw new KilnError(`layer: invalid ${what} "${path}"`);
  }
}

/**
 * Make every hardlink point at an entry earlier in the tar: each group of linked names is
 * carried by its first member in tar order (which gets the content), the others link to it.
 */
function fixHardlinks(ordered: LayerEntry[], byPath: Map<string, LayerEntry>, position: Map<string, number>): LayerEntry[] {
  const rootOf = (entry: LayerEntry): LayerEntry => {
    let cur = entry;
    const seen = new Set<string>();
    while (cur.type === "hardlink") {
      if (seen.has(cur.path)) throw new KilnError(`layer: hardlink cycle at "${entry.path}"`);
      seen.add(cur.path);
      const link = cur.linkname;
      if (link === undefined) throw new KilnError(`layer: hardlink "${cur.path}" has no target`);
      checkPath(link, "hardlink target");
      const next = byPath.get(link);
      if (!next) throw new KilnError(`layer: hardlink "${cur.path}" points to "${link}", which is not in the layer`);
      cur = next;
    }
    if (cur.type === "dir") throw new KilnError(`layer: hardlink "${entry.path}" points to a directory`);
    return cur;
  };
  const groups = new Map<LayerEntry, LayerEntry[]>();
  for (const entry of ordered) {
    if (entry.type !== "hardlink") continue;
    const root = rootOf(entry);
    const members = groups.get(root) ?? [root];
    members.push(entry);
    groups.set(root, members);
  }
  if (groups.size === 0) return ordered;
  const replaced = new Map<string, LayerEntry>();
  for (const [root, members] of groups) {
    members.sort((a, b) => position.get(a.path)! - position.get(b.path)!);
    const first = members[0]!;
    replaced.set(first.path, { ...root, path: first.path });
    for (const m of members.slice(1)) {
      replaced.set(m.path, { ...root, path: m.path, type: "hardlink", linkname: first.path, size: 0, open: undefined });
    }
  }
  return ordered.map((e) => replaced.get(e.path) ?? e);
}

// ---------------------------------------------------------------------------------------------
// Header encoding

const TYPEFLAG: Record<EntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

function isAscii(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x01-\x7f]*$/.test(s);
}

/** Split a USTAR name into prefix (<= 155 bytes) and name (<= 100 bytes), or null. */
function splitUstarName(name: string): { prefix: string; name: string } | null {
  if (!isAscii(name)) return null;
  if (name.length <= 100) return { prefix: "", name };
  // Directory names end in "/", so search for a separator before the last character.
  for (let i = name.length - 2; i >= 0; i--) {
    if (name[i] !== "/") continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (rest.length > 100) return null; // moving left only makes rest longer
    if (prefix.length <= 155 && prefix.length > 0) return { prefix, name: rest };
  }
  return null;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), "ascii"), body]);
}

interface HeaderFields {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

/** The constant part of every USTAR header: magic and version. */
const USTAR_TEMPLATE = (() => {
  const b = Buffer.alloc(BLOCK);
  b.write("ustar\0", 257, "ascii");
  b.write("00", 263, "ascii");
  return b;
})();

/** A string field: ASCII copied byte by byte (the common case), anything else encoded. */
function putString(buf: Buffer, off: number, max: number, s: string): void {
  if (s.length <= max) {
    let ascii = true;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        ascii = false;
        break;
      }
      buf[off + i] = c;
    }
    if (ascii) return;
  }
  buf.fill(0, off, off + max);
  buf.write(s, off, max, "utf8");
}

/** A numeric field of `width` bytes: zero-padded octal digits and a NUL. */
function putOctal(buf: Buffer, off: number, width: number, value: number): void {
  let v = value;
  buf[off + width - 1] = 0;
  for (let i = off + width - 2; i >= off; i--) {
    buf[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
}

/** Write the USTAR header for `h` into `buf` at `off` (512 bytes). */
function ustarHeaderInto(h: HeaderFields, buf: Buffer, off: number): void {
  USTAR_TEMPLATE.copy(buf, off);
  putString(buf, off, 100, h.name);
  putOctal(buf, off + 100, 8, h.mode);
  putOctal(buf, off + 108, 8, h.uid);
  putOctal(buf, off + 116, 8, h.gid);
  putOctal(buf, off + 124, 12, h.size);
  putOctal(buf, off + 136, 12, h.mtime);
  buf.fill(0x20, off + 148, off + 156); // the checksum counts as spaces
  buf[off + 156] = h.typeflag.charCodeAt(0);
  putString(buf, off + 157, 100, h.linkname);
  putString(buf, off + 265, 32, h.uname);
  putString(buf, off + 297, 32, h.gname);
  putOctal(buf, off + 329, 8, h.devmajor);
  putOctal(buf, off + 337, 8, h.devminor);
  putString(buf, off + 345, 155, h.prefix);
  let sum = 0;
  for (let i = off; i < off + BLOCK; i++) sum += buf[i] as number;
  putOctal(buf, off + 148, 7, sum); // six digits and a NUL, then the space that is already there
}

function ustarHeader(h: HeaderFields): Buffer {
  const buf = Buffer.allocUnsafe(BLOCK);
  ustarHeaderInto(h, buf, 0);
  return buf;
}

/** Truncate a string to at most `max` UTF-8 bytes (for placeholder USTAR fields under PAX). */
function truncateBytes(s: string, max: number): string {
  const b = Buffer.from(s, "utf8");
  if (b.length <= max) return s;
  return b.subarray(0, max).toString("latin1").replace(/[^\x20-\x7e]/g, "_");
}

function paddingFor(size: number): Buffer | null {
  const rem = size % BLOCK;
  return rem === 0 ? null : ZERO_BLOCK.subarray(0, BLOCK - rem);
}

/** Write an entry's header block(s) into the output (the USTAR one straight into the chunk). */
function writeHeaders(entry: LayerEntry, options: TarOptions, out: ChunkWriter): void {
  const { pax, fields } = headerFields(entry, options);
  for (const b of paxBlocks(entry, pax, fields.mtime)) out.write(b);
  const t = out.target(); // chunks are whole blocks and so is every entry: a header fits
  if (t.length < BLOCK) {
    out.write(ustarHeader(fields));
    return;
  }
  ustarHeaderInto(fields, t.buf, t.offset);
  out.advance(BLOCK);
}

/** The USTAR fields of an entry and the PAX records it needs beyond them. */
function headerFields(entry: LayerEntry, options: TarOptions): { pax: Map<string, Buffer>; fields: HeaderFields } {
  const pax = new Map<string, Buffer>();
  const tarName = entry.type === "dir" ? `${entry.path}/` : entry.path;
  let split = splitUstarName(tarName);
  if (!split) {
    pax.set("path", Buffer.from(tarName, "utf8"));
    split = { prefix: "", name: truncateBytes(tarName, 100) };
  }
  let linkname = "";
  if (entry.type === "symlink" || entry.type === "hardlink") {
    if (entry.linkname === undefined || entry.linkname === "") {
      throw new KilnError(`layer: ${entry.type} "${entry.path}" has no target`);
    }
    linkname = entry.linkname;
    if (!isAscii(linkname) || Buffer.byteLength(linkname) > 100) {
      pax.set("linkpath", Buffer.from(linkname, "utf8"));
      linkname = truncateBytes(linkname, 100);
    }
  }
  const numeric = (key: string, value: number, max: number, what: string): number => {
    if (!Number.isInteger(value) || value < 0) throw new KilnError(`layer: "${entry.path}": invalid ${what} ${value}`);
    if (value > max) {
      pax.set(key, Buffer.from(String(value), "ascii"));
      return 0;
    }
    return value;
  };
  const uid = numeric("uid", entry.uid, MAX_OCTAL_7, "uid");
  const gid = numeric("gid", entry.gid, MAX_OCTAL_7, "gid");
  const size = entry.type === "file" ? entry.size : 0;
  const sizeField = numeric("size", size, MAX_OCTAL_11, "size");
  let mtime = Math.floor(entry.mtime);
  if (!Number.isFinite(mtime)) throw new KilnError(`layer: "${entry.path}": invalid mtime ${entry.mtime}`);
  if (options.clampMtime !== undefined) mtime = Math.min(mtime, Math.floor(options.clampMtime));
  let mtimeField = mtime;
  if (mtime < 0 || mtime > MAX_OCTAL_11) {
    pax.set("mtime", Buffer.from(String(mtime), "ascii"));
    mtimeField = mtime < 0 ? 0 : MAX_OCTAL_11;
  }
  const names = (key: string, value: string | undefined): string => {
    const v = value ?? "";
    if (!isAscii(v) || v.length > 32) {
      pax.set(key, Buffer.from(v, "utf8"));
      return truncateBytes(v, 32);
    }
    return v;
  };
  const uname = names("uname", entry.uname);
  const gname = names("gname", entry.gname);
  const isDevice = entry.type === "char" || entry.type === "block";
  const devmajor = isDevice ? entry.devmajor ?? 0 : 0;
  const devminor = isDevice ? entry.devminor ?? 0 : 0;
  if (devmajor > MAX_OCTAL_7 || devminor > MAX_OCTAL_7 || devmajor < 0 || devminor < 0) {
    throw new KilnError(`layer: "${entry.path}": device numbers out of range`);
  }
  if (entry.xattrs) {
    for (const [name, value] of Object.entries(entry.xattrs)) {
      if (name.length === 0 || name.includes("=") || name.includes("\0")) {
        throw new KilnError(`layer: "${entry.path}": invalid xattr name "${name}"`);
      }
      pax.set(`SCHILY.xattr.${name}`, Buffer.from(value));
    }
  }
  if (!Number.isInteger(entry.mode) || entry.mode < 0 || entry.mode > 0o7777) {
    throw new KilnError(`layer: "${entry.path}": invalid mode ${entry.mode}`);
  }
  return {
    pax,
    fields: {
      name: split.name,
      prefix: split.prefix,
      mode: entry.mode,
      uid,
      gid,
      size: sizeField,
      mtime: mtimeField,
      typeflag: TYPEFLAG[entry.type],
      linkname,
      uname,
      gname,
      devmajor,
      devminor,
    },
  };
}

/** The PAX extended header (header block, records, padding) for `pax`; none when it is empty. */
function paxBlocks(entry: LayerEntry, pax: Map<string, Buffer>, mtimeField: number): Buffer[] {
  if (pax.size === 0) return [];
  const records = [...pax.keys()].sort().map((k) => paxRecord(k, pax.get(k)!));
  const body = Buffer.concat(records);
  const base = entry.path.slice(entry.path.lastIndexOf("/") + 1);
  const paxName = truncateBytes(`PaxHeaders.0/${base}`, 100);
  const blocks = [
    ustarHeader({
      name: isAscii(paxName) ? paxName : truncateBytes(paxName.replace(/[^\x20-\x7e]/g, "_"), 100),
      prefix: "",
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: body.length,
      mtime: mtimeField,
      typeflag: "x",
      linkname: "",
      uname: "",
      gname: "",
      devmajor: 0,
      devminor: 0,
    }),
    body,
  ];
  const pad = paddingFor(body.length);
  if (pad) blocks.push(pad);
  return blocks;
}

/**
 * Write an entry that needs no streaming (no content, or a host file of at most one chunk) in
 * one synchronous call, sparing a generator per entry; false when writeEntry must do it.
 */
function writeEntrySync(entry: LayerEntry, options: TarOptions, out: ChunkWriter): boolean {
  if (!(entry.type in TYPEFLAG)) return false;
  let hostPath: string | undefined;
  if (entry.type === "file") {
    if (entry.open === undefined) {
      if (entry.size !== 0) return false;
    } else {
      hostPath = hostPathOf(entry.open);
      if (hostPath === undefined || entry.size > CHUNK_SIZE) return false;
    }
  }
  writeHeaders(entry, options, out);
  if (hostPath !== undefined) readHostFile(entry, hostPath, out);
  const rem = entry.type === "file" ? entry.size % BLOCK : 0;
  if (rem !== 0) out.zeros(BLOCK - rem);
  return true;
}

async function* writeEntry(entry: LayerEntry, options: TarOptions, out: ChunkWriter): AsyncGenerator<Buffer> {
  if (!(entry.type in TYPEFLAG)) throw new KilnError(`layer: "${entry.path}": unknown entry type "${String(entry.type)}"`);
  writeHeaders(entry, options, out);
  if (entry.type !== "file" || entry.size === 0) {
    if (entry.type === "file" && entry.open) {
      // A zero-size file must really be empty.
      const hostPath = hostPathOf(entry.open);
      if (hostPath !== undefined) readHostFile(entry, hostPath, out);
      else {
        for await (const chunk of entry.open() as AsyncIterable<Buffer>) {
          if (chunk.length > 0) throw new KilnError(`layer: "${entry.path}": content is longer than its size 0`);
        }
      }
    }
    yield* each(out.takeFull());
    return;
  }
  if (!entry.open) throw new KilnError(`layer: "${entry.path}": file of ${entry.size} bytes has no content`);
  const hostPath = hostPathOf(entry.open);
  if (hostPath !== undefined) {
    // Read in slices so a large file never holds more than a few chunks before they are handed on.
    let done = 0;
    for (;;) {
      done = readHostFile(entry, hostPath, out, done, 4 * CHUNK_SIZE);
      yield* each(out.takeFull());
      if (done >= entry.size) break;
    }
  } else {
    let written = 0;
    try {
      for await (const chunk of entry.open() as AsyncIterable<Buffer | string>) {
        const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
        written += buf.length;
        if (written > entry.size) {
          throw new KilnError(`layer: "${entry.path}": content is longer than its size ${entry.size}`);
        }
        if (buf.length > 0) {
          out.write(buf);
          yield* each(out.takeFull());
        }
      }
    } catch (err) {
      throw contentError(entry, err);
    }
    if (written !== entry.size) {
      throw new KilnError(`layer: "${entry.path}": content is ${written} bytes, expected ${entry.size}`);
    }
  }
  const rem = entry.size % BLOCK;
  if (rem !== 0) out.zeros(BLOCK - rem);
  yield* each(out.takeFull());
}

/**
 * The chunks one by one. Not `yield* array`: when the stream reading the tar is destroyed, Node 24's
 * Readable.from calls the generator's throw(), and delegation to an array iterator (which has no
 * throw method) would replace the stream's error (an AbortError, say) with a TypeError.
 */
function* each(chunks: Buffer[]): Generator<Buffer> {
  for (const c of chunks) yield c;
}

function contentError(entry: LayerEntry, err: unknown): Error {
  if (err instanceof KilnError) return err;
  // a cancelled read stays a cancellation, whatever entry it interrupted
  if (err instanceof Error && err.name === "AbortError") return err;
  return new KilnError(`layer: "${entry.path}": cannot read content: ${(err as Error).message}`, { cause: err });
}

const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0);
const probe = Buffer.alloc(1);

/**
 * Reads a host file's content from byte `from` straight into the output chunks, at most `limit`
 * bytes this call (the whole file when no limit); returns the offset reached. Synchronous on
 * purpose: the files are mostly small and cached, and this keeps per-file reads off the libuv
 * thread pool, where they would queue behind the gzip blocks. The size must match exactly.
 */
function readHostFile(entry: LayerEntry, path: string, out: ChunkWriter, from = 0, limit = Infinity): number {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw contentError(entry, err);
  }
  try {
    let pos = from;
    const end = Math.min(entry.size, from + limit);
    let atEof = false;
    while (pos < end) {
      const t = out.target();
      const want = Math.min(t.length, end - pos);
      // The last read of a file asks for one byte more when the chunk has room: a short answer
      // proves the end (a regular file), sparing the extra read that would otherwise check it.
      const ask = pos + want === entry.size && t.length > want ? want + 1 : want;
      const n = readSync(fd, t.buf, t.offset, ask, pos);
      if (n === 0) throw new KilnError(`layer: "${entry.path}": content is ${pos} bytes, expected ${entry.size}`);
      if (n > want) throw new KilnError(`layer: "${entry.path}": content is longer than its size ${entry.size}`);
      out.advance(n);
      pos += n;
      if (ask > want && n === want) atEof = true;
    }
    if (pos >= entry.size && !atEof && readSync(fd, probe, 0, 1, pos) > 0) {
      throw new KilnError(`layer: "${entry.path}": content is longer than its size ${entry.size}`);
    }
    return pos;
  } catch (err) {
    throw contentError(entry, err);
  } finally {
    closeSync(fd);
  }
}
