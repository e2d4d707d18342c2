// Layer compression: a deterministic gzip writer (fixed header like Go's compress/gzip, optional
// pigz-style parallel deflate on the libuv thread pool with bounded memory) and the decompressor
// chosen by a layer's media type (zstd through ./zstd.ts).
import { PassThrough, Transform, type Duplex, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import { KilnError } from "../errors.js";
import { zstdDecompressor } from "./zstd.js";

/** Input block size for parallel compression. Part of the output format: changing it changes digests. */
export const GZIP_BLOCK_SIZE = 1024 * 1024;
const DICT_SIZE = 32 * 1024;
const MAX_IN_FLIGHT = 4;

export interface GzipOptions {
  /** zlib level 0-9 (default 6). */
  level?: number;
  /**
   * Compress 1 MiB blocks concurrently (default true). Output is deterministic either way, but
   * the two modes produce different (equally valid) bytes.
   */
  parallel?: boolean;
  /**
   * Recycles 1 MiB block buffers (parallel mode): blocks are taken from it, and every standalone
   * 1 MiB input chunk used in place is given back once compression is done with it. Only pass a
   * pool when the writer upstream never touches a chunk after writing it and takes its chunks
   * from the same pool (as writeLayer's tar writer does); it spares the GC ~1 MiB per block.
   */
  pool?: BlockPool;
}

/** A free list of standalone GZIP_BLOCK_SIZE buffers (see GzipOptions.pool). */
export class BlockPool {
  private readonly free: Buffer[] = [];
  private readonly max: number;

  constructor(max = 16) {
    this.max = max;
  }

  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(GZIP_BLOCK_SIZE);
  }

  /** Gives `buf` back if it is a whole standalone block buffer (anything else is left to the GC). */
  release(buf: Buffer): void {
    if (buf.length !== GZIP_BLOCK_SIZE || buf.byteOffset !== 0 || buf.buffer.byteLength !== GZIP_BLOCK_SIZE) return;
    if (this.free.length < this.max) this.free.push(buf);
  }
}

// ---------------------------------------------------------------------------------------------
// CRC32 (zlib.crc32 on Node >= 20.15, else a table implementation)

type Crc32 = (data: Buffer, value: number) => number;
let crcTable: Uint32Array | undefined;
function jsCrc32(data: Buffer, value: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = ~value >>> 0;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
const zlibCrc = (zlib as unknown as { crc32?: Crc32 }).crc32;
const crc32: Crc32 = typeof zlibCrc === "function" ? (d, v) => zlibCrc(d, v) >>> 0 : jsCrc32;

function gzipHeader(level: number): Buffer {
  // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL OS=255(unknown), as Go's compress/gzip writes it.
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0xff]);
}

function gzipTrailer(crc: number, isize: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(crc >>> 0, 0);
  b.writeUInt32LE(isize % 0x100000000, 4);
  return b;
}

function checkLevel(level: number): number {
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new KilnError("OPTION_INVALID", `gzip: invalid compression level ${level} (0-9)`);
  return level;
}

/** A deterministic gzip compressor (single member, header mtime 0, OS byte 255). */
export function gzipStream(options?: GzipOptions): Transform {
  const level = checkLevel(options?.level ?? 6);
  return options?.parallel === false ? new SerialGzip(level) : new ParallelGzip(level, options?.pool);
}

/**
 * One zlib deflateRaw stream with our own gzip header and trailer. Subclassing zlib's DeflateRaw
 * keeps its native backpressure; we only observe input (CRC, size) and add header/trailer.
 */
class SerialGzip extends zlib.DeflateRaw {
  private crc = 0;
  private isize = 0;

  constructor(level: number) {
    super({ level });
    this.push(gzipHeader(level));
  }

  override _transform(chunk: Buffer, enc: BufferEncoding, cb: TransformCallback): void {
    if (chunk.length > 0) {
      this.crc = crc32(chunk, this.crc);
      this.isize += chunk.length;
    }
    super._transform(chunk, enc, cb);
  }

  override _flush(cb: TransformCallback): void {
    super._flush((err?: Error | null) => {
      if (!err) this.push(gzipTrailer(this.crc, this.isize));
      cb(err);
    });
  }
}

function deflateBlock(block: Buffer, level: number, dictionary: Buffer | undefined, last: boolean): Promise<Buffer> {
  const opts: zlib.ZlibOptions = {
    level,
    // One output buffer that fits the whole block (deflate's worst case is a little over the
    // input): one trip through the thread pool per block instead of one per 16 KiB of output.
    chunkSize: block.length + (block.length >> 7) + 1024,
    finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
  };
  if (dictionary) opts.dictionary = dictionary;
  return new Promise((resolve, reject) => {
    zlib.deflateRaw(block, opts, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

/**
 * pigz-style parallel gzip: the input is cut into fixed 1 MiB blocks, each deflated on the thread
 * pool primed with the previous block's last 32 KiB, ended with a sync flush (the last block with
 * Z_FINISH); the raw deflate pieces concatenate into one valid member.
 */
class ParallelGzip extends Transform {
  private readonly level: number;
  /** The block being filled; it is only started once a further byte arrives (or at the end). */
  private current: Buffer | undefined;
  private filled = 0;
  private prevTail: Buffer | undefined;
  private readonly inFlight: Array<{ out: Promise<Buffer>; block: Buffer }> = [];
  private readonly pool: BlockPool | undefined;
  /** The last drained block: the next block's deflate may still read its tail as dictionary. */
  private drained: Buffer | undefined;
  private crc = 0;
  private isize = 0;

  constructor(level: number, pool?: BlockPool) {
    super();
    this.level = level;
    this.pool = pool;
    this.push(gzipHeader(level));
  }

  private startBlock(block: Buffer, last: boolean): void {
    this.crc = crc32(block, this.crc);
    this.isize += block.length;
    const out = deflateBlock(block, this.level, this.prevTail, last);
    out.catch(() => undefined); // observed when awaited in order; avoid unhandled rejections
    this.inFlight.push({ out, block });
    this.prevTail = block.length >= DICT_SIZE ? block.subarray(block.length - DICT_SIZE) : undefined;
  }

  private async drainTo(limit: number): Promise<void> {
    while (this.inFlight.length > limit) {
      const { out, block } = this.inFlight.shift()!;
      const data = await out;
      // Blocks finish in order here, so the one before this block is no longer read by anyone.
      if (this.drained) this.pool?.release(this.drained);
      this.drained = block;
      if (data.length > 0) this.push(data);
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const work = async (): Promise<void> => {
      let offset = 0;
      while (offset < chunk.length) {
        if (this.filled === GZIP_BLOCK_SIZE) {
          // More input follows a full block, so that block is not the last one.
          this.startBlock(this.current!, false);
          this.current = undefined;
          this.filled = 0;
          await this.drainTo(MAX_IN_FLIGHT - 1);
        }
        if (this.filled === 0 && chunk.length - offset >= GZIP_BLOCK_SIZE) {
          // A whole block inside the chunk: use it in place (written chunks are never modified).
          this.current = chunk.subarray(offset, offset + GZIP_BLOCK_SIZE);
          this.filled = GZIP_BLOCK_SIZE;
          offset += GZIP_BLOCK_SIZE;
          continue;
        }
        this.current ??= this.pool ? this.pool.acquire() : Buffer.allocUnsafe(GZIP_BLOCK_SIZE);
        const n = chunk.copy(this.current, this.filled, offset);
        this.filled += n;
        offset += n;
      }
    };
    work().then(() => cb(), (err: Error) => cb(err));
  }

  override _flush(cb: TransformCallback): void {
    const work = async (): Promise<void> => {
      this.startBlock((this.current ?? Buffer.alloc(0)).subarray(0, this.filled), true);
      await this.drainTo(0);
      if (this.drained) this.pool?.release(this.drained);
      this.drained = undefined;
      this.push(gzipTrailer(this.crc, this.isize));
    };
    work().then(() => cb(), (err: Error) => cb(err));
  }
}

/** A decompressor for a layer blob of the given media type (gzip, zstd, or plain tar). */
export function decompressStream(mediaType: string, what = `layer of type ${mediaType}`): Duplex {
  const mt = mediaType.toLowerCase();
  if (mt.endsWith("+gzip") || mt.endsWith(".tar.gzip") || mt.endsWith(".gzip")) return zlib.createGunzip();
  if (mt.endsWith("+zstd") || mt.endsWith(".zstd")) return zstdDecompressor(what);
  if (mt.endsWith(".tar") || mt.endsWith(".rootfs.diff.tar")) return new PassThrough();
  throw new KilnError("FORMAT_UNSUPPORTED", `unsupported layer media type ${mediaType}`);
}
