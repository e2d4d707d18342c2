// Real Go binaries for the SBOM scanner tests: Debian's Go toolchain builds a tiny module whose
// dependencies are vendored (no module proxy: GOPROXY=off), one with a `replace` directive, for
// the GOARCH asked (cross-compiled: 386 is 32-bit little endian, s390x 64-bit big endian, mips
// 32-bit big endian). Also writes the pre-Go 1.18 build info layout (pointers to Go strings)
// into a minimal ELF by hand, since Debian's toolchain is newer than that; and writes a large sparse
// Go-like ELF (Go 1.18+ layout in a .go.buildinfo section near the end of a huge data segment).
import { mkdir, open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { mustRun } from "./kiln.js";

export const GO_MODULES = {
  main: "example.com/app",
  deps: [["example.com/lib", "v1.2.3"], ["example.com/newer", "v1.1.0"]] as const,
};

/** Writes the module under `dir` and builds it for each GOARCH: returns the binaries' paths by GOARCH. */
export async function buildGoApp(dir: string, arches: string[]): Promise<Record<string, string>> {
  const files: Record<string, string> = {
    "go.mod": "module example.com/app\n\ngo 1.19\n\nrequire (\n\texample.com/lib v1.2.3\n\texample.com/old v1.0.0\n)\n\nreplace example.com/old v1.0.0 => example.com/newer v1.1.0\n",
    "main.go": 'package main\n\nimport (\n\t"example.com/lib"\n\t"example.com/old"\n)\n\nfunc main() { println(lib.Name(), old.Name()) }\n',
    "vendor/example.com/lib/lib.go": 'package lib\n\nfunc Name() string { return "lib" }\n',
    "vendor/example.com/old/old.go": 'package old\n\nfunc Name() string { return "old" }\n',
    "vendor/modules.txt": "# example.com/lib v1.2.3\n## explicit\nexample.com/lib\n# example.com/old v1.0.0 => example.com/newer v1.1.0\n## explicit\nexample.com/old\n# example.com/old v1.0.0 => example.com/newer v1.1.0\n",
  };
  for (const [name, body] of Object.entries(files)) {
    await mkdir(join(dir, name, ".."), { recursive: true });
    await writeFile(join(dir, name), body);
  }
  const out: Record<string, string> = {};
  for (const arch of arches) {
    const bin = join(dir, `app-${arch}`);
    await mustRun("go", ["build", "-o", bin, "."], { cwd: dir, env: { GOARCH: arch, GOOS: "linux", CGO_ENABLED: "0", GOFLAGS: "-mod=vendor", GOPROXY: "off", GOTOOLCHAIN: "local" } });
    out[arch] = bin;
  }
  return out;
}

const SENTINEL_START = Buffer.from("3077af0c9274080241e1c107e6d618e6", "hex");
const SENTINEL_END = Buffer.from("f932433186182072008242104116d8f2", "hex");

/**
 * A minimal ELF (no section headers: the scanner falls back to the writable PT_LOAD segment) holding
 * pre-1.18 build info: the header points at two Go string headers, which point at the strings.
 */
export function oldGoElf(opts: { is64: boolean; bigEndian: boolean; goVersion: string; modinfo: string }): Buffer {
  const { is64, bigEndian } = opts;
  const ptr = is64 ? 8 : 4;
  const vaddr = 0x10000;
  const ehsize = is64 ? 64 : 52;
  const phsize = is64 ? 56 : 32;
  const dataAt = 0x100; // 16-aligned
  const version = Buffer.from(opts.goVersion);
  const mod = Buffer.concat([SENTINEL_START, Buffer.from(opts.modinfo), SENTINEL_END]);
  // layout from dataAt: [32-byte buildinfo header][string header version][string header mod][version bytes][mod bytes]
  const hdrV = dataAt + 32;
  const hdrM = hdrV + 2 * ptr;
  const strV = hdrM + 2 * ptr;
  const strM = strV + version.length;
  const size = strM + mod.length;
  const b = Buffer.alloc(size);
  const u16 = (v: number, at: number): number => (bigEndian ? b.writeUInt16BE(v, at) : b.writeUInt16LE(v, at));
  const u32 = (v: number, at: number): number => (bigEndian ? b.writeUInt32BE(v, at) : b.writeUInt32LE(v, at));
  const word = (v: number, at: number): number => (is64 ? (bigEndian ? b.writeBigUInt64BE(BigInt(v), at) : b.writeBigUInt64LE(BigInt(v), at)) : u32(v, at));
  b.write("\x7fELF", 0, "latin1");
  b[4] = is64 ? 2 : 1;
  b[5] = bigEndian ? 2 : 1;
  b[6] = 1;
  u16(2, 16); // ET_EXEC
  word(ehsize, is64 ? 32 : 28); // e_phoff
  u16(ehsize, is64 ? 52 : 40);
  u16(phsize, is64 ? 54 : 42);
  u16(1, is64 ? 56 : 44); // one program header
  const ph = ehsize;
  u32(1, ph); // PT_LOAD
  if (is64) {
    u32(6, ph + 4); // PF_R|PF_W
    word(0, ph + 8);
    word(vaddr, ph + 16);
    word(size, ph + 32);
    word(size, ph + 40);
  } else {
    u32(0, ph + 4);
    u32(vaddr, ph + 8);
    u32(size, ph + 16);
    u32(size, ph + 20);
    u32(6, ph + 24);
  }
  b.write("\xff Go buildinf:", dataAt, "latin1");
  b[dataAt + 14] = ptr;
  b[dataAt + 15] = bigEndian ? 1 : 0;
  word(vaddr + hdrV, dataAt + 16);
  word(vaddr + hdrM, dataAt + 16 + ptr);
  word(vaddr + strV, hdrV);
  word(version.length, hdrV + ptr);
  word(vaddr + strM, hdrM);
  word(mod.length, hdrM + ptr);
  version.copy(b, strV);
  mod.copy(b, strM);
  return b;
}

/**
 * A sparse 64-bit little-endian ELF of `size` bytes at `path` (holes cost no disk): one writable
 * PT_LOAD segment spanning the whole file, a `.go.buildinfo` section holding Go 1.18+ inline build
 * info 1 MiB before the end, then the section names and headers (so only they lead to it).
 */
export async function sparseGoElf(path: string, size: number, opts: { goVersion: string; modinfo: string }): Promise<void> {
  const vaddr = 0x400000;
  const info = size - 1024 * 1024; // 16-aligned
  const strtab = size - 8192;
  const shoff = size - 4096;
  const names = Buffer.from("\0.shstrtab\0.go.buildinfo\0", "latin1");
  const uvarint = (n: number): Buffer => {
    const out: number[] = [];
    for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80);
    out.push(n);
    return Buffer.from(out);
  };
  const version = Buffer.from(opts.goVersion);
  const mod = Buffer.concat([SENTINEL_START, Buffer.from(opts.modinfo), SENTINEL_END]);
  const bi = Buffer.alloc(32);
  bi.write("\xff Go buildinf:", 0, "latin1");
  bi[14] = 8;
  bi[15] = 2; // inline strings, little endian
  const body = Buffer.concat([bi, uvarint(version.length), version, uvarint(mod.length), mod]);
  const head = Buffer.alloc(64 + 56);
  head.write("\x7fELF", 0, "latin1");
  head[4] = 2;
  head[5] = 1;
  head[6] = 1;
  head.writeUInt16LE(2, 16); // ET_EXEC
  head.writeBigUInt64LE(64n, 32); // e_phoff
  head.writeBigUInt64LE(BigInt(shoff), 40); // e_shoff
  head.writeUInt16LE(64, 52);
  head.writeUInt16LE(56, 54);
  head.writeUInt16LE(1, 56); // one program header
  head.writeUInt16LE(64, 58);
  head.writeUInt16LE(3, 60); // null, .shstrtab, .go.buildinfo
  head.writeUInt16LE(1, 62); // e_shstrndx
  head.writeUInt32LE(1, 64); // PT_LOAD
  head.writeUInt32LE(6, 68); // PF_R|PF_W
  head.writeBigUInt64LE(BigInt(vaddr), 64 + 16);
  head.writeBigUInt64LE(BigInt(size), 64 + 32);
  head.writeBigUInt64LE(BigInt(size), 64 + 40);
  const sh = Buffer.alloc(3 * 64);
  const section = (i: number, name: number, addr: number, offset: number, len: number): void => {
    sh.writeUInt32LE(name, i * 64);
    sh.writeUInt32LE(i === 1 ? 3 : 1, i * 64 + 4); // SHT_STRTAB / SHT_PROGBITS
    sh.writeBigUInt64LE(BigInt(addr), i * 64 + 16);
    sh.writeBigUInt64LE(BigInt(offset), i * 64 + 24);
    sh.writeBigUInt64LE(BigInt(len), i * 64 + 32);
  };
  section(1, 1, 0, strtab, names.length);
  section(2, 11, vaddr + info, info, body.length);
  const fh = await open(path, "w", 0o755);
  try {
    await fh.truncate(size);
    for (const [b, at] of [[head, 0], [body, info], [names, strtab], [sh, shoff]] as const) await fh.write(b, 0, b.length, at);
  } finally {
    await fh.close();
  }
}
