// A minimal read-only reader of one table of an SQLite 3 database file held in memory (the file
// format of https://www.sqlite.org/fileformat.html): the schema table on page 1 names the table's
// root page, its table b-tree is walked (interior and leaf pages, payloads spilled to overflow
// pages) and each row's record decoded. Enough for rpm's rpmdb.sqlite without an SQLite library;
// no write-ahead log, no index use. Malformed files end in a SqliteFormatError.

export class SqliteFormatError extends Error {
  constructor(message: string) {
    super(`SQLite file: ${message}`);
    this.name = "SqliteFormatError";
  }
}

export type SqliteValue = null | number | bigint | string | Buffer;

export interface SqliteRow {
  rowid: number;
  values: SqliteValue[];
}

const MAGIC = Buffer.from("SQLite format 3\0", "latin1");

/** An SQLite varint at `at`: [value, next offset] (values past 2^53 lose precision; rowids and lengths never get there). */
function varint(b: Buffer, at: number): [number, number] {
  let v = 0;
  for (let i = 0; i < 8; i++) {
    const c = b[at + i];
    if (c === undefined) throw new SqliteFormatError("truncated varint");
    v = v * 128 + (c & 0x7f);
    if ((c & 0x80) === 0) return [v, at + i + 1];
  }
  const c = b[at + 8];
  if (c === undefined) throw new SqliteFormatError("truncated varint");
  return [v * 256 + c, at + 9];
}

class Db {
  readonly pageSize: number;
  readonly usable: number;
  readonly pages: number;
  constructor(readonly data: Buffer) {
    if (data.length < 100 || !data.subarray(0, 16).equals(MAGIC)) throw new SqliteFormatError("not an SQLite 3 database");
    const ps = data.readUInt16BE(16);
    this.pageSize = ps === 1 ? 65536 : ps;
    if (this.pageSize < 512 || (this.pageSize & (this.pageSize - 1)) !== 0) throw new SqliteFormatError(`bad page size ${this.pageSize}`);
    this.usable = this.pageSize - data[20]!;
    this.pages = Math.floor(data.length / this.pageSize);
    if (data.readUInt32BE(56) > 1) throw new SqliteFormatError("text encoding is not UTF-8");
  }
  page(n: number): Buffer {
    if (n < 1 || n > this.pages) throw new SqliteFormatError(`page ${n} is outside the file`);
    return this.data.subarray((n - 1) * this.pageSize, n * this.pageSize);
  }
  /** A leaf cell's payload, following its overflow chain. */
  payload(page: Buffer, at: number, length: number): Buffer {
    const u = this.usable;
    const x = u - 35;
    if (length <= x) return page.subarray(at, at + length);
    const m = Math.floor(((u - 12) * 32) / 255) - 23;
    const k = m + ((length - m) % (u - 4));
    const local = k <= x ? k : m;
    const parts = [page.subarray(at, at + local)];
    let left = length - local;
    let next = page.readUInt32BE(at + local);
    const seen = new Set<number>();
    while (left > 0) {
      if (next === 0 || seen.has(next)) throw new SqliteFormatError("broken overflow chain");
      seen.add(next);
      const o = this.page(next);
      const n = Math.min(left, u - 4);
      parts.push(o.subarray(4, 4 + n));
      left -= n;
      next = o.readUInt32BE(0);
    }
    return Buffer.concat(parts);
  }
  /** Every row of the table b-tree rooted at `root`, in rowid order. */
  rows(root: number): SqliteRow[] {
    const out: SqliteRow[] = [];
    const seen = new Set<number>();
    const walk = (n: number): void => {
      if (seen.has(n)) throw new SqliteFormatError("b-tree page loop");
      seen.add(n);
      const page = this.page(n);
      const h = n === 1 ? 100 : 0;
      const type = page[h];
      const cells = page.readUInt16BE(h + 3);
      if (type === 0x05) {
        for (let i = 0; i < cells; i++) walk(page.readUInt32BE(page.readUInt16BE(h + 12 + 2 * i)));
        walk(page.readUInt32BE(h + 8));
      } else if (type === 0x0d) {
        for (let i = 0; i < cells; i++) {
          let at = page.readUInt16BE(h + 8 + 2 * i);
          let length: number;
          let rowid: number;
          [length, at] = varint(page, at);
          [rowid, at] = varint(page, at);
          out.push({ rowid, values: record(this.payload(page, at, length)) });
        }
      } else throw new SqliteFormatError(`page ${n} is not a table b-tree page (type ${type})`);
    };
    walk(root);
    return out;
  }
}

/** A record's column values. */
function record(p: Buffer): SqliteValue[] {
  let [hsize, at] = varint(p, 0);
  const types: number[] = [];
  while (at < hsize) {
    let t: number;
    [t, at] = varint(p, at);
    types.push(t);
  }
  let pos = hsize;
  const out: SqliteValue[] = [];
  for (const t of types) {
    if (t === 0) out.push(null);
    else if (t >= 1 && t <= 6) {
      const n = [0, 1, 2, 3, 4, 6, 8][t]!;
      if (pos + n > p.length) throw new SqliteFormatError("truncated record");
      out.push(n === 8 ? p.readBigInt64BE(pos) : p.readIntBE(pos, n));
      pos += n;
    } else if (t === 7) {
      out.push(p.readDoubleBE(pos));
      pos += 8;
    } else if (t === 8 || t === 9) out.push(t - 8);
    else if (t >= 12) {
      const n = Math.floor((t - 12) / 2);
      if (pos + n > p.length) throw new SqliteFormatError("truncated record");
      const v = p.subarray(pos, pos + n);
      out.push(t % 2 === 0 ? v : v.toString("utf8"));
      pos += n;
    } else throw new SqliteFormatError(`reserved serial type ${t}`);
  }
  return out;
}

/** The rows of table `name` (undefined when the database has no such table). */
export function readSqliteTable(file: Buffer, name: string): SqliteRow[] | undefined {
  const db = new Db(file);
  // sqlite_schema: type, name, tbl_name, rootpage, sql
  const entry = db.rows(1).find((r) => r.values[0] === "table" && typeof r.values[1] === "string" && r.values[1].toLowerCase() === name.toLowerCase());
  if (!entry) return undefined;
  const root = entry.values[3];
  if (typeof root !== "number") throw new SqliteFormatError(`table ${name} has no root page`);
  return db.rows(root);
}
