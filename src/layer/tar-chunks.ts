// Fixed-size output chunks for the layer tar writer: headers and file bytes are written straight
// into 1 MiB buffers (the gzip block size, so the compressor can adopt them as blocks); a full
// chunk is handed out and never touched again.
/** Output chunk size (when not given by allocChunk); the gzip block size, so chunks are adoptable as blocks. */
export const CHUNK_SIZE = 1024 * 1024;

/** Fills fixed-size chunks; full ones are handed out and never touched again. */
export class ChunkWriter {
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
