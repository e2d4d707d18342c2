// Raw tar block walking. PAX xattr capture: tar-stream decodes PAX records as UTF-8 strings, which
// corrupts binary xattr values such as security.capability. This pass-through Transform walks the
// same tar block structure and records, for every real entry in order, its SCHILY.xattr.* values
// as the exact bytes, so the extractor can pair them with the entries tar-stream emits. Also a
// header-only scan (bodies skipped) for checking what a layer holds without extracting it.
import { Transform, type TransformCallback } from "node:stream";

function parseSize(field: Buffer): number {
  if (field[0] & 0x80) {
    // base-256 (GNU) encoding
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    return n;
  }
  const s = field.toString("latin1").replace(/\0.*$/s, "").trim();
  return s === "" ? 0 : parseInt(s, 8);
}

/** The records of a PAX extended header ("LEN key=value\n"), values as raw bytes. */
function* paxRecords(buf: Buffer): Generator<[string, Buffer]> {
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) return;
    const len = parseInt(buf.subarray(off, sp).toString("latin1"), 10);
    if (!len || off + len > buf.length) return;
    const rec = buf.subarray(sp + 1, off + len - 1); // drop trailing "\n"
    const eq = rec.indexOf(0x3d);
    if (eq > 0) yield [rec.subarray(0, eq).toString("utf8"), rec.subarray(eq + 1)];
    off += len;
  }
}

function parsePaxXattrs(buf: Buffer, into: Map<string, Buffer>, sizeOut?: { size?: number }): void {
  for (const [key, value] of paxRecords(buf)) {
    if (key === "size" && sizeOut) sizeOut.size = parseInt(value.toString("latin1"), 10);
    else if (key.startsWith("SCHILY.xattr.")) into.set(key.slice("SCHILY.xattr.".length), Buffer.from(value));
  }
}

/** Pass-through tap; `next()` yields the xattrs of each real entry in tar order. */
export class TarXattrTap extends Transform {
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** bytes of entry body (incl. padding) still to skip or collect */
  private skip = 0;
  private collecting: { kind: "x" | "g"; size: number; parts: Buffer[]; got: number } | null = null;
  private local = new Map<string, Buffer>();
  private localSize: { size?: number } = {};
  private global = new Map<string, Buffer>();
  private readonly queue: Array<Record<string, Buffer> | null> = [];

  /** The xattrs of the next entry tar-stream will emit (null when none). */
  next(): Record<string, Buffer> | null {
    return this.queue.length > 0 ? (this.queue.shift() as Record<string, Buffer> | null) : null;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.consume(chunk);
    cb(null, chunk);
  }

  private consume(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - off);
        if (this.collecting) {
          const want = this.collecting.size - this.collecting.got;
          if (want > 0) {
            const take = Math.min(want, n);
            this.collecting.parts.push(chunk.subarray(off, off + take));
            this.collecting.got += take;
          }
        }
        this.skip -= n;
        off += n;
        if (this.skip === 0 && this.collecting) {
          const map = this.collecting.kind === "g" ? this.global : this.local;
          parsePaxXattrs(Buffer.concat(this.collecting.parts), map, this.collecting.kind === "x" ? this.localSize : undefined);
          this.collecting = null;
        }
        continue;
      }
      const need = 512 - this.pendingLen;
      const take = Math.min(need, chunk.length - off);
      this.pending.push(chunk.subarray(off, off + take));
      this.pendingLen += take;
      off += take;
      if (this.pendingLen < 512) continue;
      const header = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingLen = 0;
      this.onHeader(header);
    }
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) return;
    const type = String.fromCharCode(h[156] || 0x30);
    let size = parseSize(h.subarray(124, 136));
    if (type !== "x" && type !== "g" && this.localSize.size !== undefined) size = this.localSize.size;
    const padded = Math.ceil(size / 512) * 512;
    if (type === "x" || type === "g") {
      this.collecting = { kind: type, size, parts: [], got: 0 };
      this.skip = padded;
      if (padded === 0) this.collecting = null;
      return;
    }
    if (type === "L" || type === "K") {
      this.skip = padded;
      return;
    }
    const merged = new Map([...this.global, ...this.local]);
    this.local = new Map();
    this.localSize = {};
    this.queue.push(merged.size > 0 ? Object.fromEntries(merged) : null);
    // Directories, links, devices have no body even if size says otherwise (tar-stream agrees
    // for these types); regular files carry `size` bytes.
    this.skip = type === "0" || type === "\0" || type === "7" ? padded : 0;
  }
}

/** What a header-only scan reports for each real entry (PAX path, linkpath, size, uid, gid applied). */
export interface TarHeaderInfo {
  name: string;
  /** The typeflag character ("0" regular, "5" directory, ...; "\0" is reported as "0"). */
  typeflag: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  linkname: string;
}

function octalField(h: Buffer, off: number, len: number): number | null {
  if ((h[off] as number) & 0x80) return null; // base-256: not produced by kiln's writer
  const s = h.subarray(off, off + len).toString("latin1").replace(/\0.*$/s, "").trim();
  return s === "" ? 0 : parseInt(s, 8);
}

function cString(h: Buffer, off: number, len: number): string {
  const end = h.indexOf(0, off);
  return h.subarray(off, end < 0 || end > off + len ? off + len : end).toString("utf8");
}

/**
 * The headers of an uncompressed tar stream, without touching content (bodies are skipped).
 * Returns null for what this scan does not follow (GNU long names, global PAX headers,
 * base-256 numbers, a bad checksum or a truncated stream).
 */
export async function scanTarHeaders(stream: AsyncIterable<Buffer>): Promise<TarHeaderInfo[] | null> {
  const out: TarHeaderInfo[] = [];
  const header = Buffer.alloc(512);
  let have = 0;
  let skip = 0;
  let paxParts: Buffer[] | null = null;
  let paxWant = 0;
  let pax: Map<string, string> | null = null;
  let ended = false;
  for await (const chunk of stream) {
    let off = 0;
    while (off < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - off);
        if (paxParts && paxWant > 0) {
          const take = Math.min(paxWant, n);
          paxParts.push(chunk.subarray(off, off + take));
          paxWant -= take;
        }
        skip -= n;
        off += n;
        if (skip === 0 && paxParts) {
          pax = new Map();
          parsePaxStrings(Buffer.concat(paxParts), pax);
          paxParts = null;
        }
        continue;
      }
      const take = Math.min(512 - have, chunk.length - off);
      chunk.copy(header, have, off, off + take);
      have += take;
      off += take;
      if (have < 512) continue;
      have = 0;
      if (ended) continue;
      if (header.every((b) => b === 0)) {
        ended = true;
        continue;
      }
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
      if (octalField(header, 148, 8) !== sum) return null;
      const type = String.fromCharCode(header[156] || 0x30);
      const rawSize = octalField(header, 124, 12);
      if (rawSize === null) return null;
      if (type === "x") {
        paxParts = [];
        paxWant = rawSize;
        skip = Math.ceil(rawSize / 512) * 512;
        if (skip === 0) paxParts = null;
        continue;
      }
      if (type === "g" || type === "L" || type === "K") return null;
      const mode = octalField(header, 100, 8);
      const uid = octalField(header, 108, 8);
      const gid = octalField(header, 116, 8);
      if (mode === null || uid === null || gid === null) return null;
      const prefix = header.subarray(257, 263).toString("latin1") === "ustar\0" ? cString(header, 345, 155) : "";
      const base = cString(header, 0, 100);
      const info: TarHeaderInfo = {
        name: pax?.get("path") ?? (prefix ? `${prefix}/${base}` : base),
        typeflag: type,
        size: pax?.has("size") ? Number(pax.get("size")) : rawSize,
        mode,
        uid: pax?.has("uid") ? Number(pax.get("uid")) : uid,
        gid: pax?.has("gid") ? Number(pax.get("gid")) : gid,
        linkname: pax?.get("linkpath") ?? cString(header, 157, 100),
      };
      pax = null;
      out.push(info);
      skip = type === "0" || type === "7" ? Math.ceil(info.size / 512) * 512 : 0;
    }
  }
  return ended && skip === 0 && have === 0 ? out : null;
}

/** PAX records as strings (keys other than xattrs), for the header scan. */
function parsePaxStrings(buf: Buffer, into: Map<string, string>): void {
  for (const [key, value] of paxRecords(buf)) into.set(key, value.toString("utf8"));
}
