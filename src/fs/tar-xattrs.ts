// Raw PAX xattr capture: tar-stream decodes PAX records as UTF-8 strings, which corrupts binary
// xattr values such as security.capability. This pass-through Transform walks the same tar
// block structure and records, for every real entry in order, its SCHILY.xattr.* values as the
// exact bytes, so the extractor can pair them with the entries tar-stream emits.
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

function parsePaxXattrs(buf: Buffer, into: Map<string, Buffer>, sizeOut?: { size?: number }): void {
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) return;
    const len = parseInt(buf.subarray(off, sp).toString("latin1"), 10);
    if (!len || off + len > buf.length) return;
    const rec = buf.subarray(sp + 1, off + len - 1); // drop trailing "\n"
    const eq = rec.indexOf(0x3d);
    if (eq > 0) {
      const key = rec.subarray(0, eq).toString("utf8");
      if (key === "size" && sizeOut) sizeOut.size = parseInt(rec.subarray(eq + 1).toString("latin1"), 10);
      else if (key.startsWith("SCHILY.xattr.")) into.set(key.slice("SCHILY.xattr.".length), Buffer.from(rec.subarray(eq + 1)));
    }
    off += len;
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
