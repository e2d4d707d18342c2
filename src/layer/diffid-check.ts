// The diff_id check for layer streams: a pass-through Transform that hashes the uncompressed tar
// while it is being consumed (extraction, view scans) and fails the stream at its end when the
// content does not hash to the diff_id the image config claims. Every consumer that keeps
// something under a diff_id (extracted layer directories, view indexes) must read through it and
// commit only after the stream ended cleanly.
import { createHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { KilnError } from "../errors.js";
import type { Digest } from "../image/oci.js";

/** Where a layer comes from, for error messages ("image debian:12", "stage build"). */
export interface LayerOrigin {
  diffID: Digest;
  /** The compressed blob's digest, when known (names the layer as the manifest does). */
  digest?: Digest;
  /** What the layer belongs to, e.g. `image debian:12`. */
  origin?: string;
}

/** The one-line error for a layer whose content does not hash to its diff_id. */
export function diffIDMismatch(layer: LayerOrigin, got: Digest): KilnError {
  const name = `layer ${layer.digest ?? layer.diffID}${layer.origin ? ` of ${layer.origin}` : ""}`;
  return new KilnError("LAYER_DIGEST_MISMATCH", `${name}: content does not match its diff_id (claimed ${layer.diffID}, got ${got})`);
}

export class DiffIDCheck extends Transform {
  private readonly hash = createHash("sha256");
  /** Uncompressed bytes seen so far. */
  bytes = 0;

  constructor(private readonly layer: LayerOrigin) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const got: Digest = `sha256:${this.hash.digest("hex")}`;
    cb(got === this.layer.diffID ? null : diffIDMismatch(this.layer, got));
  }
}
