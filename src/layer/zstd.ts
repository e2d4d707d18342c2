// zstd for layer blobs on every supported Node.js: zlib's own decoder and encoder where the
// runtime has them (Node 22.15+, 23.8+), else the `zstd` command (Debian package zstd) as a
// streaming filter (stdin → stdout, nothing buffered whole; killed when the stream is destroyed).
import { spawn } from "node:child_process";
import { Duplex, type Transform } from "node:stream";
import * as zlib from "node:zlib";
import { KilnError } from "../errors.js";

type ZstdZlib = {
  createZstdDecompress?: () => Transform;
  createZstdCompress?: (options: { params: Record<number, number> }) => Transform;
  constants: { ZSTD_c_compressionLevel?: number };
};

/** zstd levels kiln writes (buildx's compression-level for zstd), and the default (zstd's own). */
export const ZSTD_MAX_LEVEL = 22;
export const ZSTD_DEFAULT_LEVEL = 3;

/** A stream that compresses its input into one zstd frame at `level` (1-22). */
export function zstdCompressor(level: number, what: string): Duplex {
  const z = zlib as unknown as ZstdZlib;
  if (typeof z.createZstdCompress === "function" && z.constants.ZSTD_c_compressionLevel !== undefined) {
    return z.createZstdCompress({ params: { [z.constants.ZSTD_c_compressionLevel]: level } });
  }
  return new ZstdCommand(what, "zstd", ["-c", "-q", ...(level > 19 ? ["--ultra"] : []), `-${level}`]);
}

/** True when this Node.js decodes zstd itself. */
export function nativeZstd(): boolean {
  return typeof (zlib as unknown as ZstdZlib).createZstdDecompress === "function";
}

/** A stream that turns a zstd frame sequence into its bytes; `what` names the blob in errors. */
export function zstdDecompressor(what: string): Duplex {
  if (nativeZstd()) return (zlib as unknown as Required<ZstdZlib>).createZstdDecompress();
  return zstdCommand(what);
}

/** The decoder as a `zstd -dc` child process (what runtimes without zlib zstd use). */
export function zstdCommand(what: string, command = "zstd"): Duplex {
  return new ZstdCommand(what, command, ["-d", "-c", "-q"]);
}

/** `zstd -dc` (or `zstd -c -LEVEL`) as a Duplex: writes go to its stdin, reads come from its stdout. */
class ZstdCommand extends Duplex {
  private readonly child;
  private stderr = "";
  private exited: Promise<number | null>;

  private readonly failure: string;

  constructor(private readonly what: string, command: string, args: string[]) {
    super();
    this.failure = args.includes("-d") ? "zstd data is invalid" : "zstd failed";
    this.child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.exited = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
    this.child.on("error", (err: NodeJS.ErrnoException) => {
      this.destroy(err.code === "ENOENT"
        ? new KilnError("HOST_TOOL_MISSING", `${what}: zstd layers need Node.js >= 22.15 or the zstd command (apt-get install zstd); this is Node.js ${process.version}`, { cause: err })
        : new KilnError("LAYER_READ_FAILED", `${what}: cannot start zstd: ${err.message}`, { cause: err }));
    });
    this.child.stderr.on("data", (b: Buffer) => {
      if (this.stderr.length < 4096) this.stderr += b.toString("utf8");
    });
    this.child.stdout.on("data", (b: Buffer) => {
      if (!this.push(b)) this.child.stdout.pause();
    });
    this.child.stdout.on("end", () => {
      void this.exited.then((code) => {
        if (code === 0) this.push(null);
        else this.destroy(new KilnError("LAYER_READ_FAILED", `${this.what}: ${this.failure}: ${this.stderr.trim().split("\n").pop() || `exit code ${code}`}`));
      });
    });
    // EPIPE when zstd stops reading (bad data): its exit status tells the story
    this.child.stdin.on("error", () => undefined);
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.child.stdin.write(chunk)) cb();
    else this.child.stdin.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    cb(err);
  }
}
