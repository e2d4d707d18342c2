// A remote blob as a stream, for copying blobs between repositories without a local copy:
// GET /v2/<repo>/blobs/<digest>, cut at the descriptor's size (ExactLength), and failing at its
// end unless the bytes hash to the digest, so a corrupt blob never completes an upload.
import { createHash } from "node:crypto";
import { PassThrough, Transform, type Readable, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KilnError } from "../errors.js";
import type { Descriptor, Digest } from "../image/oci.js";
import type { Reference } from "../image/reference.js";
import { pullScope, type RegistryClient } from "./client.js";
import { ExactLength } from "./exact-length.js";
import { header } from "./response.js";

/** Passes bytes through; fails at the end when they do not hash to `digest`. */
export class DigestCheck extends Transform {
  private readonly hash = createHash("sha256");
  constructor(private readonly digest: Digest, private readonly what: string) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    const got = `sha256:${this.hash.digest("hex")}`;
    cb(got === this.digest ? null : new KilnError("BLOB_DIGEST_MISMATCH", `${this.what}: its content hashes to ${got}`));
  }
}

/** Stream `desc` from `ref.repository` on `client`'s registry, verified by size and digest. */
export function openRemoteBlob(client: RegistryClient, ref: Reference, desc: Descriptor): Readable {
  const what = `registry ${ref.registry}: blob ${desc.digest} of ${ref.repository}`;
  const out = new PassThrough();
  const feed = async (): Promise<void> => {
    const res = await client.request({ method: "GET", url: `/v2/${ref.repository}/blobs/${desc.digest}`, scopes: [pullScope(ref.repository)], retry: false });
    await client.expect(res, [200], `GET blob ${desc.digest}`);
    const announced = header(res, "content-length");
    if (announced !== undefined && Number(announced) !== desc.size) {
      res.body.destroy();
      throw new KilnError("BLOB_SIZE_MISMATCH", `${what}: the server announces ${announced} bytes, the descriptor gives ${desc.size}`);
    }
    await pipeline(res.body, new ExactLength(desc.size, what), new DigestCheck(desc.digest, what), out);
  };
  feed().catch((err: unknown) => out.destroy(client.bodyError(err, `GET ${what}`) as Error));
  return out;
}
