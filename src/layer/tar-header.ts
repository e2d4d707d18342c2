// USTAR and PAX header encoding for the layer tar writer: an entry's fields (mode, ids, size,
// mtime clamped to SOURCE_DATE_EPOCH, link target, device numbers) in the 512-byte USTAR block,
// with PAX records (sorted, so bytes depend only on the entry) for what USTAR cannot hold:
// long or non-ASCII names, large numbers, xattrs.
import { KilnError } from "../errors.js";
import type { EntryType, LayerEntry } from "./entry.js";
import type { ChunkWriter } from "./tar-chunks.js";

export const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
const MAX_OCTAL_7 = 0o7777777; // fits an 8-byte numeric field (7 digits + NUL)
const MAX_OCTAL_11 = 0o77777777777; // fits a 12-byte numeric field (11 digits + NUL)

export interface HeaderOptions {
  /** Clamp every mtime to at most this (seconds since the epoch), e.g. SOURCE_DATE_EPOCH. */
  clampMtime?: number;
}

export const TYPEFLAG: Record<EntryType, string> = {
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
export function writeHeaders(entry: LayerEntry, options: HeaderOptions, out: ChunkWriter): void {
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
function headerFields(entry: LayerEntry, options: HeaderOptions): { pax: Map<string, Buffer>; fields: HeaderFields } {
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
      throw new KilnError("LAYER_ENTRY_INVALID", `layer: ${entry.type} "${entry.path}" has no target`);
    }
    linkname = entry.linkname;
    if (!isAscii(linkname) || Buffer.byteLength(linkname) > 100) {
      pax.set("linkpath", Buffer.from(linkname, "utf8"));
      linkname = truncateBytes(linkname, 100);
    }
  }
  const numeric = (key: string, value: number, max: number, what: string): number => {
    if (!Number.isInteger(value) || value < 0) throw new KilnError("LAYER_ENTRY_INVALID", `layer: "${entry.path}": invalid ${what} ${value}`);
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
  if (!Number.isFinite(mtime)) throw new KilnError("LAYER_ENTRY_INVALID", `layer: "${entry.path}": invalid mtime ${entry.mtime}`);
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
    throw new KilnError("LAYER_ENTRY_INVALID", `layer: "${entry.path}": device numbers out of range`);
  }
  if (entry.xattrs) {
    for (const [name, value] of Object.entries(entry.xattrs)) {
      if (name.length === 0 || name.includes("=") || name.includes("\0")) {
        throw new KilnError("LAYER_ENTRY_INVALID", `layer: "${entry.path}": invalid xattr name "${name}"`);
      }
      pax.set(`SCHILY.xattr.${name}`, Buffer.from(value));
    }
  }
  if (!Number.isInteger(entry.mode) || entry.mode < 0 || entry.mode > 0o7777) {
    throw new KilnError("LAYER_ENTRY_INVALID", `layer: "${entry.path}": invalid mode ${entry.mode}`);
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
