// Bounding a blob download by its descriptor: a pass-through Transform that lets through at most
// the descriptor's size (the chunk that would go past it is dropped and the stream fails), and
// fails at the end when fewer bytes came. Whatever the server claims or sends, no more than the
// descriptor's size reaches the disk.
import { Transform, type TransformCallback } from "node:stream";
import { KilnError } from "../errors.js";

export class ExactLength extends Transform {
  private seen = 0;

  /** `what` prefixes the error ("registry r: blob sha256:… of repo"). */
  constructor(private readonly size: number, private readonly what: string) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.size) {
      cb(new KilnError("BLOB_SIZE_MISMATCH", `${this.what}: the server sent more than the ${this.size} bytes the descriptor gives`));
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    cb(this.seen === this.size ? null : new KilnError("BLOB_SIZE_MISMATCH", `${this.what}: the server sent ${this.seen} of the ${this.size} bytes the descriptor gives`));
  }
}
