// A streamed file held for random access with flat memory: its chunks stay in memory up to a
// bound, and past it everything goes to a temporary file (removed by dispose) read back with
// positioned reads. The layer scan spools an executable this way to look for Go build info.
import { randomBytes } from "node:crypto";
import { open, rm, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fresh temporary file path (the default: in the OS temp directory). */
export type TempPath = () => Promise<string>;

export const osTempPath: TempPath = async () => join(tmpdir(), `kiln-spool-${process.pid}-${randomBytes(8).toString("hex")}`);

export class Spool {
  /** Bytes added so far. */
  size = 0;
  private chunks: Buffer[] = [];
  private file?: { fh: FileHandle; path: string };

  constructor(private readonly maxMemory: number, private readonly tempPath: TempPath = osTempPath) {}

  async add(chunk: Buffer): Promise<void> {
    if (!this.file && this.size + chunk.length <= this.maxMemory) {
      this.chunks.push(chunk);
      this.size += chunk.length;
      return;
    }
    if (!this.file) {
      const path = await this.tempPath();
      this.file = { fh: await open(path, "wx+", 0o600), path };
      let at = 0;
      for (const c of this.chunks) at += await this.write(c, at);
      this.chunks = [];
    }
    this.size += await this.write(chunk, this.size);
  }

  /** What was spooled: the chunks (when it stayed in memory), or the open temporary file. */
  get content(): { chunks: readonly Buffer[] } | { file: FileHandle } {
    return this.file ? { file: this.file.fh } : { chunks: this.chunks };
  }

  async dispose(): Promise<void> {
    this.chunks = [];
    const f = this.file;
    this.file = undefined;
    if (!f) return;
    await f.fh.close().catch(() => undefined);
    await rm(f.path, { force: true });
  }

  private async write(c: Buffer, at: number): Promise<number> {
    for (let done = 0; done < c.length; ) done += (await this.file!.fh.write(c, done, c.length - done, at + done)).bytesWritten;
    return c.length;
  }
}
