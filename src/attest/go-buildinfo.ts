// Go binaries' embedded build information (what `go version -m` prints): finds the
// `\xff Go buildinf:` header in an ELF executable's data (the .go.buildinfo section, else the first
// writable non-executable PT_LOAD segment, searched 16-byte aligned as the Go toolchain does), reads
// the Go version and the module info in both layouts — Go 1.18+ inline varint-prefixed strings, and
// before that pointers to Go string headers, 32/64-bit, little/big endian, resolved through the
// program headers — and turns the module lines (path, mod, dep, => replacements) into packages.
// The scan is a pure function of the file's bytes, written as the reads it asks for (a generator):
// answered from bytes in memory (readGoBuildInfo) or by positioned reads of an open file
// (readGoBuildInfoFile, a few 64 KiB blocks whatever the file's size). Anything malformed is "not a Go binary".
import { enc, type FoundPackage } from "./found.js";

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const BUILDINFO_MAGIC = Buffer.from("\xff Go buildinf:", "latin1");
const BUILDINFO_ALIGN = 16;
const BUILDINFO_HEADER = 32;
const SEARCH_BYTES = 64 * 1024;
/** The longest inline version or module info string read (Go's module info is a few KiB to a few hundred). */
const MAX_INLINE_BYTES = 16 * 1024 * 1024;
const PT_LOAD = 1;
const PF_X = 1;
const PF_W = 2;

/** Whether the first bytes of a file are an ELF header. */
export function isElf(head: Buffer): boolean {
  return head.length >= 4 && head.subarray(0, 4).equals(ELF_MAGIC);
}

/** A 32- or 64-bit word (a pointer or an offset); beyond 2^53 it is not a usable number (-1). */
function readWord(b: Buffer, at: number, is64: boolean, le: boolean): number {
  if (!is64) return le ? b.readUInt32LE(at) : b.readUInt32BE(at);
  const v = le ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v); // -1: in no segment, past every buffer
}

interface Segment { vaddr: number; offset: number; filesz: number; flags: number }

/** Whether the bytes start with an ELF identification kiln reads (32/64-bit, little/big endian). */
function elfIdent(data: Buffer | undefined): data is Buffer {
  return data !== undefined && isElf(data) && data.length >= 64 && (data[4] === 1 || data[4] === 2) && (data[5] === 1 || data[5] === 2);
}

/**
 * A file's bytes as the chunks it streamed in, never joined whole (a large executable costs no
 * copy): a range is a view into one chunk, or a copy when it spans several.
 */
export class FileBytes {
  readonly length: number;
  private readonly starts: number[] = [];
  constructor(private readonly chunks: readonly Buffer[]) {
    let n = 0;
    for (const c of chunks) {
      this.starts.push(n);
      n += c.length;
    }
    this.length = n;
  }
  /** `len` bytes at `from`, or undefined when the file does not hold them all. */
  range(from: number, len: number): Buffer | undefined {
    if (!inFile(from, len, this.length)) return undefined;
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= from) lo = mid;
      else hi = mid - 1;
    }
    const first = this.chunks[lo]!;
    const at = from - this.starts[lo]!;
    if (at + len <= first.length) return first.subarray(at, at + len);
    const out = Buffer.allocUnsafe(len);
    let done = 0;
    for (let i = lo; done < len; i++) {
      const c = this.chunks[i]!;
      const off = i === lo ? at : 0;
      done += c.copy(out, done, off, Math.min(c.length, off + len - done));
    }
    return out;
  }
}

function inFile(from: number, len: number, size: number): boolean {
  return Number.isSafeInteger(from) && Number.isSafeInteger(len) && from >= 0 && len >= 0 && from + len <= size;
}

/** One read the scan asks for: `len` bytes at file offset `at`, all inside the file (answered undefined when they cannot be read). */
interface Want { at: number; len: number }
/** The scan of one file: it yields the reads it needs, one at a time, and returns what it found. */
type Reads<T> = Generator<Want, T, Buffer | undefined>;

/** The largest single read the scan asks for (the longest inline string, plus its header and length). */
const MAX_READ_BYTES = MAX_INLINE_BYTES + BUILDINFO_HEADER + 16;

/** `len` bytes at file offset `at` of a file of `size` bytes, or undefined (out of the file, or over the read bound). */
function* range(size: number, at: number, len: number): Reads<Buffer | undefined> {
  if (!inFile(at, len, size) || len > MAX_READ_BYTES) return undefined;
  const b = yield { at, len };
  return b && b.length === len ? b : undefined;
}

class Elf {
  readonly is64: boolean;
  readonly le: boolean;
  readonly segments: Segment[] = [];
  /** An ELF file's header (`head`: its first 64 bytes, accepted by elfIdent) of a file of `size` bytes; `load()` reads its PT_LOAD segments. */
  constructor(readonly size: number, readonly head: Buffer) {
    this.is64 = head[4] === 2;
    this.le = head[5] === 1;
  }
  *load(): Reads<void> {
    const head = this.head;
    const phoff = this.word(head, this.is64 ? 32 : 28);
    const phentsize = this.u16(head, this.is64 ? 54 : 42);
    const phnum = this.u16(head, this.is64 ? 56 : 44);
    const entry = this.is64 ? 56 : 32;
    // the whole table must be in the file; each entry is read on its own (the table's size is the file's to choose)
    if (phentsize < entry || !inFile(phoff, phnum * phentsize, this.size)) return;
    for (let i = 0; i < phnum; i++) {
      const ph = yield* range(this.size, phoff + i * phentsize, entry);
      if (!ph) return;
      if (this.u32(ph, 0) !== PT_LOAD) continue;
      this.segments.push(this.is64
        ? { flags: this.u32(ph, 4), offset: this.word(ph, 8), vaddr: this.word(ph, 16), filesz: this.word(ph, 32) }
        : { offset: this.u32(ph, 4), vaddr: this.u32(ph, 8), filesz: this.u32(ph, 16), flags: this.u32(ph, 24) });
    }
  }
  u16(b: Buffer, at: number): number {
    return this.le ? b.readUInt16LE(at) : b.readUInt16BE(at);
  }
  u32(b: Buffer, at: number): number {
    return this.le ? b.readUInt32LE(at) : b.readUInt32BE(at);
  }
  word(b: Buffer, at: number): number {
    return readWord(b, at, this.is64, this.le);
  }
  /** The section named `name`: its address, or undefined (no section headers, or no such section). */
  *sectionAddr(name: string): Reads<number | undefined> {
    const h = this.head;
    const shoff = this.word(h, this.is64 ? 40 : 32);
    const shentsize = this.u16(h, this.is64 ? 58 : 46);
    const shnum = this.u16(h, this.is64 ? 60 : 48);
    const shstrndx = this.u16(h, this.is64 ? 62 : 50);
    const entry = this.is64 ? 40 : 24;
    if (shoff <= 0 || shnum === 0 || shstrndx >= shnum || shentsize < entry) return undefined;
    if (!inFile(shoff, shnum * shentsize, this.size)) return undefined;
    const self = this;
    function* sh(i: number): Reads<{ name: number; addr: number; offset: number }> {
      const b = yield* range(self.size, shoff + i * shentsize, entry);
      if (!b) throw new RangeError("section header out of the file"); // cannot happen: the table is in the file
      return self.is64
        ? { name: self.u32(b, 0), addr: self.word(b, 16), offset: self.word(b, 24) }
        : { name: self.u32(b, 0), addr: self.u32(b, 12), offset: self.u32(b, 16) };
    }
    const strtab = yield* sh(shstrndx);
    const want = Buffer.from(`${name}\0`, "latin1");
    for (let i = 0; i < shnum; i++) {
      const s = yield* sh(i);
      if ((yield* range(this.size, strtab.offset + s.name, want.length))?.equals(want)) return s.addr;
    }
    return undefined;
  }
  /** Up to `size` bytes at virtual address `addr`, from the PT_LOAD segment holding it. */
  *read(addr: number, size: number): Reads<Buffer | undefined> {
    for (const s of this.segments) {
      if (addr < s.vaddr || addr >= s.vaddr + s.filesz) continue;
      const n = Math.min(size, s.vaddr + s.filesz - addr, this.size - (s.offset + (addr - s.vaddr)));
      return yield* range(this.size, s.offset + (addr - s.vaddr), n);
    }
    return undefined;
  }
}

/** The build info of a Go binary, as found (module info text still unparsed). */
export interface GoBuildInfo {
  goVersion: string;
  modinfo: string;
}

function uvarint(b: Buffer, at: number): [number, number] | undefined {
  let v = 0;
  let shift = 0;
  for (let i = at; i < b.length && i < at + 8; i++) {
    v += (b[i]! & 0x7f) * 2 ** shift;
    if ((b[i]! & 0x80) === 0) return [v, i + 1];
    shift += 7;
  }
  return undefined;
}

/** The module info string between its 16-byte sentinels ("" when they are missing, as Go reads it). */
function stripSentinels(mod: Buffer): string {
  return mod.length >= 33 && mod[mod.length - 17] === 0x0a ? mod.subarray(16, mod.length - 16).toString("utf8") : "";
}

/**
 * The scan of a file of `size` bytes: the ELF header, the program headers, the section headers and
 * their names, then at most SEARCH_BYTES of the .go.buildinfo section (or the first writable
 * non-executable PT_LOAD) and the strings the header leads to. Every read is bounded (MAX_READ_BYTES).
 */
function* scanGo(size: number): Reads<GoBuildInfo | undefined> {
  const head = yield* range(size, 0, 64);
  if (!elfIdent(head)) return undefined;
  const elf = new Elf(size, head);
  yield* elf.load();
  let start = yield* elf.sectionAddr(".go.buildinfo");
  if (start === undefined) start = elf.segments.find((s) => (s.flags & (PF_X | PF_W)) === PF_W)?.vaddr;
  if (start === undefined) return undefined;
  const window = yield* elf.read(start, SEARCH_BYTES);
  if (!window) return undefined;
  let data: Buffer = window;
  let base = 0;
  let magicAddr = start;
  for (;;) {
    const i = data.indexOf(BUILDINFO_MAGIC, base);
    if (i < 0 || data.length - i < BUILDINFO_HEADER) return undefined;
    if (i % BUILDINFO_ALIGN === 0) {
      data = data.subarray(i);
      magicAddr = start + i;
      break;
    }
    base = Math.ceil(i / BUILDINFO_ALIGN) * BUILDINFO_ALIGN;
  }
  const ptrSize = data[14]!;
  const flags = data[15]!;
  if ((flags & 2) !== 0) {
    // Go 1.18+: the version and the module info follow the header, each a uvarint length and
    // bytes; module info past the search window (a large dependency list) is read on from the header.
    function* readStr(at: number): Reads<[Buffer, number] | undefined> {
      const n = uvarint(data, at);
      if (n && n[1] + n[0] > data.length && n[0] <= MAX_INLINE_BYTES) data = (yield* elf.read(magicAddr, n[1] + n[0])) ?? data;
      if (!n || n[1] + n[0] > data.length) return undefined;
      return [data.subarray(n[1], n[1] + n[0]), n[1] + n[0]];
    }
    const v = yield* readStr(BUILDINFO_HEADER);
    const m = v && (yield* readStr(v[1]));
    if (!v || !m) return undefined;
    return { goVersion: v[0].toString("utf8"), modinfo: stripSentinels(m[0]) };
  }
  // Before 1.18: pointers to two Go strings (runtime.buildVersion, runtime.modinfo) in the binary's memory.
  if (ptrSize !== 4 && ptrSize !== 8) return undefined;
  const le = (flags & 1) === 0;
  const ptr = (b: Buffer, at: number): number => readWord(b, at, ptrSize === 8, le);
  function* readStr(addr: number): Reads<Buffer | undefined> {
    const hdr = yield* elf.read(addr, 2 * ptrSize);
    if (!hdr || hdr.length < 2 * ptrSize) return undefined;
    const len = ptr(hdr, ptrSize);
    if (len > MAX_INLINE_BYTES) return undefined;
    const s = yield* elf.read(ptr(hdr, 0), len);
    return s && s.length === len ? s : undefined;
  }
  const version = yield* readStr(ptr(data, 16));
  const mod = yield* readStr(ptr(data, 16 + ptrSize));
  if (!version || version.length === 0) return undefined;
  return { goVersion: version.toString("utf8"), modinfo: mod ? stripSentinels(mod) : "" };
}

/** The build info of an ELF Go binary (the whole file, or the chunks it streamed in), or undefined when it is none. */
export function readGoBuildInfo(data: Buffer | readonly Buffer[]): GoBuildInfo | undefined {
  const file = new FileBytes(Buffer.isBuffer(data) ? [data] : data);
  try {
    const scan = scanGo(file.length);
    for (let r = scan.next(); ; ) {
      if (r.done) return r.value;
      r = scan.next(file.range(r.value.at, r.value.len));
    }
  } catch {
    return undefined; // a malformed header (a RangeError reading past a buffer): not a Go binary
  }
}

/** What the file scan reads through: a FileHandle's positioned read. */
export interface PositionedFile {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/** Up to `len` bytes of `file` from `at` (fewer at its end): positioned reads until done or end of file. */
export async function readAt(file: PositionedFile, at: number, len: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(len);
  let done = 0;
  while (done < len) {
    const { bytesRead } = await file.read(out, done, len - done, at + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return out.subarray(0, done);
}

/** The blocks a file scan reads (BLOCKS of BLOCK_BYTES at most: the headers, the names, the search window). */
const BLOCK_BYTES = 64 * 1024;
const BLOCKS = 4;

/**
 * The build info of the ELF Go binary open as `file` (`size` bytes), or undefined when it is none:
 * read with positioned reads, a few 64 KiB blocks held at a time whatever the file's size
 * (a short read, a file truncated meanwhile, is "not a Go binary"; a failing read throws).
 */
export async function readGoBuildInfoFile(file: PositionedFile, size: number): Promise<GoBuildInfo | undefined> {
  const blocks: Array<{ at: number; data: Buffer }> = [];
  const fill = (at: number, len: number): Promise<Buffer> => readAt(file, at, len);
  const get = async ({ at, len }: Want): Promise<Buffer | undefined> => {
    const hit = blocks.find((b) => at >= b.at && at + len <= b.at + b.data.length);
    if (hit) return hit.data.subarray(at - hit.at, at - hit.at + len);
    if (len > BLOCK_BYTES) return fill(at, len); // the search window's module info past it: read once, not kept
    const block = { at, data: await fill(at, Math.min(BLOCK_BYTES, size - at)) };
    blocks.unshift(block);
    if (blocks.length > BLOCKS) blocks.pop();
    return block.data.length >= len ? block.data.subarray(0, len) : undefined;
  };
  const scan = scanGo(size);
  let r: IteratorResult<Want, GoBuildInfo | undefined>;
  try {
    r = scan.next();
  } catch {
    return undefined;
  }
  for (;;) {
    if (r.done) return r.value;
    const b = await get(r.value);
    try {
      r = scan.next(b);
    } catch {
      return undefined;
    }
  }
}

export interface GoModule {
  path: string;
  version: string;
  replace?: { path: string; version: string };
}

/** The module lines of a build info text: the main module ("mod") and the dependencies ("dep", each maybe replaced by "=>"). */
export function parseModinfo(text: string): { path?: string; main?: GoModule; deps: GoModule[] } {
  const out: { path?: string; main?: GoModule; deps: GoModule[] } = { deps: [] };
  let last: GoModule | undefined;
  for (const line of text.split("\n")) {
    const f = line.split("\t");
    if (f[0] === "path" && f.length >= 2) out.path = f[1]!;
    else if ((f[0] === "mod" || f[0] === "dep") && f.length >= 2) {
      last = { path: f[1]!, version: f[2] ?? "" };
      if (f[0] === "mod") out.main = last;
      else out.deps.push(last);
    } else if (f[0] === "=>" && f.length >= 2 && last) last.replace = { path: f[1]!, version: f[2] ?? "" };
  }
  return out;
}

function goPkg(name: string, version: string, source: string, purlVersion = version): FoundPackage {
  return { type: "golang", name, version, source, purl: `pkg:golang/${name.split("/").map(enc).join("/")}${purlVersion ? `@${enc(purlVersion)}` : ""}` };
}

/** A module as it was built: a replacement by another module names that one; a local directory keeps the module's path, "(devel)". */
function built(m: GoModule): { path: string; version: string } {
  if (!m.replace) return { path: m.path, version: m.version || "(devel)" };
  if (m.replace.path.startsWith(".") || m.replace.path.startsWith("/")) return { path: m.path, version: "(devel)" };
  return { path: m.replace.path, version: m.replace.version || "(devel)" };
}

/**
 * The packages of one Go binary at `source`: the main module, every dependency module and the
 * toolchain's standard library (`stdlib`, version "go1.x.y", purl version without "go", as Syft writes it).
 */
export function goPackages(info: GoBuildInfo, source: string): FoundPackage[] {
  const mods = parseModinfo(info.modinfo);
  const out: FoundPackage[] = [];
  if (mods.main) {
    const m = built(mods.main);
    out.push(goPkg(m.path, m.version, source));
  }
  for (const d of mods.deps) {
    const m = built(d);
    out.push(goPkg(m.path, m.version, source));
  }
  const go = info.goVersion.split(/\s+/).find((w) => /^go\d/.test(w));
  if (go) {
    const std = goPkg("stdlib", go, source, go.slice(2));
    std.license = "BSD-3-Clause";
    out.push(std);
  }
  return out;
}

/** What the layer scan keeps of a Go binary (in place of its bytes): a marked JSON record. */
const RECORD_PREFIX = Buffer.from("\0kiln-go-buildinfo/v1\n", "latin1");

export function goRecord(info: GoBuildInfo): Buffer {
  return Buffer.concat([RECORD_PREFIX, Buffer.from(JSON.stringify(info))]);
}

/** The build info of a kept record, or undefined when the bytes are not one. */
export function fromGoRecord(data: Buffer): GoBuildInfo | undefined {
  if (data.length < RECORD_PREFIX.length || !data.subarray(0, RECORD_PREFIX.length).equals(RECORD_PREFIX)) return undefined;
  try {
    const v = JSON.parse(data.subarray(RECORD_PREFIX.length).toString("utf8")) as Partial<GoBuildInfo>;
    return typeof v.goVersion === "string" && typeof v.modinfo === "string" ? { goVersion: v.goVersion, modinfo: v.modinfo } : undefined;
  } catch {
    return undefined;
  }
}
