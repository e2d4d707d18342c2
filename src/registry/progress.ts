// Byte counting for transfers: a pass-through stream that reports TransferProgress events.
import { Transform, type TransformCallback } from "node:stream";
import type { Digest } from "../image/oci.js";
import type { TransferProgress } from "./options.js";

export class ProgressCounter extends Transform {
  private bytes = 0;
  private readonly started = Date.now();
  private lastEmit = 0;
  constructor(
    private readonly kind: TransferProgress["kind"],
    private readonly digest: Digest,
    private readonly total: number,
    private readonly onProgress: ((ev: TransferProgress) => void) | undefined,
    private readonly offset = 0,
  ) {
    super();
    this.bytes = offset;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    const now = Date.now();
    if (this.onProgress && now - this.lastEmit >= 100) {
      this.lastEmit = now;
      this.onProgress(progressEvent(this.kind, this.digest, this.total, this.bytes - this.offset, this.started, "progress", this.offset));
    }
    cb(null, chunk);
  }
}

export function progressEvent(
  kind: TransferProgress["kind"],
  digest: Digest,
  total: number,
  moved: number,
  started: number,
  state: TransferProgress["state"],
  offset = 0,
): TransferProgress {
  const secs = Math.max(0.001, (Date.now() - started) / 1000);
  return { type: kind === "pull" ? "pull-progress" : "push-progress", kind, digest, total, bytes: offset + moved, rate: Math.round(moved / secs), state };
}
