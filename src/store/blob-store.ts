// The content-addressed blob store: blobs/sha256/<hex> under the cache directory.
// Every write goes to a temp file that is hashed while it streams and renamed to its digest only
// when complete, so a crash never leaves a blob whose name is not its hash.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { createdWriteStream } from "./atomic-file.js";
import { mkdir, rename, rm, stat, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KilnError } from "../errors.js";
import type { Digest } from "./digest.js";
import { defaultCacheDir } from "./cache-dir.js";

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export { defaultCacheDir };

/** A Transform that passes bytes through while hashing and counting them. */
export class HashCounter extends Transform {
  private readonly hash = createHash("sha256");
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
  /** Valid once the stream has ended. */
  digest(): Digest {
    return `sha256:${this.hash.digest("hex")}`;
  }
}

export class BlobStore {
  readonly root: string;
  readonly blobDir: string;
  readonly tmpDir: string;

  constructor(root: string = defaultCacheDir()) {
    this.root = root;
    this.blobDir = join(root, "blobs", "sha256");
    this.tmpDir = join(root, "tmp");
  }

  path(digest: Digest): string {
    return join(this.blobDir, digest.slice("sha256:".length));
  }

  async has(digest: Digest): Promise<boolean> {
    try {
      await stat(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  async size(digest: Digest): Promise<number> {
    return (await stat(this.path(digest))).size;
  }

  open(digest: Digest): Readable {
    return createReadStream(this.path(digest));
  }

  async readBytes(digest: Digest): Promise<Buffer> {
    return readFile(this.path(digest));
  }

  async readJSON<T>(digest: Digest): Promise<T> {
    return JSON.parse((await this.readBytes(digest)).toString("utf8")) as T;
  }

  /** A fresh temp path inside the store (same file system as the blobs, so rename is atomic). */
  async tempPath(): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    return join(this.tmpDir, `${process.pid}-${randomBytes(8).toString("hex")}`);
  }

  /**
   * Stream `source` into the store. When `expected` is given the content must match its digest
   * (and size when given), else nothing is stored and a KilnError is thrown.
   */
  async ingest(source: Readable, expected?: { digest: Digest; size?: number }): Promise<BlobInfo> {
    const tmp = await this.tempPath();
    const counter = new HashCounter();
    try {
      await pipeline(source, counter, await createdWriteStream(tmp));
      const digest = counter.digest();
      if (expected && expected.digest !== digest) {
        throw new KilnError("BLOB_DIGEST_MISMATCH", `digest mismatch: expected ${expected.digest}, got ${digest}`);
      }
      if (expected?.size !== undefined && expected.size !== counter.size) {
        throw new KilnError("BLOB_SIZE_MISMATCH", `size mismatch for ${expected.digest}: expected ${expected.size} bytes, got ${counter.size}`);
      }
      await this.commit(tmp, digest);
      return { digest, size: counter.size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Store a small in-memory blob (configs, manifests). */
  async putBytes(data: Buffer | string): Promise<BlobInfo> {
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    const digest: Digest = `sha256:${createHash("sha256").update(buf).digest("hex")}`;
    if (await this.has(digest)) return { digest, size: buf.length };
    const tmp = await this.tempPath();
    try {
      const ws: Writable = await createdWriteStream(tmp);
      await new Promise<void>((resolve, reject) => {
        ws.on("error", reject);
        ws.end(buf, () => resolve());
      });
      await this.commit(tmp, digest);
    } finally {
      await rm(tmp, { force: true });
    }
    return { digest, size: buf.length };
  }

  /** Move a completed temp file (whose content hashes to `digest`) into place. */
  async commit(tmpPath: string, digest: Digest): Promise<void> {
    await mkdir(this.blobDir, { recursive: true });
    await rename(tmpPath, this.path(digest));
  }
}
