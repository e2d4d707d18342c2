// Extended attributes on host files. Node has no xattr API, so this drives `getfattr`/`setfattr`
// from Debian's `attr` package, batched: one process reads or restores many files at once
// (a dump in getfattr's text format). Only called for files that actually have or need xattrs.
// XattrReader takes paths one at a time (and whole new subtrees) and runs the getfattr batches
// in the background, a few at a time, while its caller keeps walking.
import { spawn } from "node:child_process";
import { KilnError } from "../errors.js";

/** Limits per getfattr invocation (keeps argv well under ARG_MAX, which includes the environment). */
const BATCH_PATHS = 20_000;
const BATCH_BYTES = 512 * 1024;
/** getfattr processes running at once per reader. */
const CONCURRENCY = 2;
const GETFATTR_ARGS = ["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"];

/** Escape a path the way getfattr/setfattr dumps do: octal for bytes outside printable ASCII, space and backslash. */
function escapeName(p: string): string {
  let out = "";
  for (const b of Buffer.from(p, "utf8")) {
    if (b <= 0x20 || b >= 0x7f || b === 0x5c || b === 0x3d) out += "\\" + b.toString(8).padStart(3, "0");
    else out += String.fromCharCode(b);
  }
  return out;
}

function unescapeName(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(...Buffer.from(s[i], "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

function runTool(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") reject(new KilnError("HOST_TOOL_MISSING", `${cmd} not found: install Debian package "attr" to handle extended attributes`));
      else reject(e);
    });
    child.on("close", (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(input ?? "");
  });
}

/** Parse a `getfattr -d -e hex --absolute-names` dump. */
function parseDump(text: string, into: Map<string, Record<string, Buffer>>): void {
  let current: Record<string, Buffer> | null = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("# file: ")) {
      current = {};
      into.set(unescapeName(line.slice(8)), current);
    } else if (current && line.length > 0 && !line.startsWith("#")) {
      const eq = line.indexOf("=");
      if (eq < 0) {
        current[unescapeName(line)] = Buffer.alloc(0);
        continue;
      }
      const name = unescapeName(line.slice(0, eq));
      const v = line.slice(eq + 1);
      current[name] = v.startsWith("0x") ? Buffer.from(v.slice(2), "hex") : Buffer.from(v.replace(/^"|"$/g, ""), "utf8");
    }
  }
}

/**
 * Read all extended attributes (every namespace readable to us) of the given absolute host
 * paths, not following symlinks. Paths without xattrs are absent from the result.
 */
export async function readXattrs(paths: string[]): Promise<Map<string, Record<string, Buffer>>> {
  const reader = new XattrReader();
  for (const p of paths) reader.add(p);
  return reader.finish();
}

/**
 * Reads the xattrs of paths handed to it one by one (absolute host paths, symlinks not followed),
 * batching them into getfattr runs that start as soon as a batch is full and run while the
 * caller goes on. `addTree(dir)` covers a directory and everything below it with one recursive
 * run (symlinks inside are not followed). `finish()` resolves to the paths that have xattrs.
 */
export class XattrReader {
  private readonly result = new Map<string, Record<string, Buffer>>();
  private batch: string[] = [];
  private batchBytes = 0;
  private readonly queue: string[][] = [];
  private active = 0;
  private readonly running = new Set<Promise<void>>();
  private error: unknown = null;

  add(path: string): void {
    this.batch.push(path);
    this.batchBytes += path.length * 3 + 1; // UTF-8 upper bound, no encoding needed
    if (this.batch.length >= BATCH_PATHS || this.batchBytes >= BATCH_BYTES) this.flush();
  }

  addTree(dir: string): void {
    this.enqueue(["-R", "--", dir]);
  }

  async finish(): Promise<Map<string, Record<string, Buffer>>> {
    this.flush();
    while (this.running.size > 0) await Promise.all([...this.running]);
    if (this.error !== null) throw this.error;
    for (const [k, v] of this.result) if (Object.keys(v).length === 0) this.result.delete(k);
    return this.result;
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    this.enqueue(["--", ...this.batch]);
    this.batch = [];
    this.batchBytes = 0;
  }

  private enqueue(args: string[]): void {
    this.queue.push(args);
    this.pump();
  }

  private pump(): void {
    while (this.active < CONCURRENCY && this.queue.length > 0) {
      const args = this.queue.shift() as string[];
      this.active++;
      const job: Promise<void> = runTool("getfattr", [...GETFATTR_ARGS, ...args])
        // getfattr exits 1 when some file vanished or has no xattr support; the dump is still valid.
        .then((r) => parseDump(r.stdout, this.result))
        .catch((err: unknown) => {
          this.error ??= err;
        })
        .finally(() => {
          this.active--;
          this.running.delete(job);
          this.pump();
        });
      this.running.add(job);
    }
  }
}

/** Set extended attributes on many absolute host paths in one `setfattr --restore` run. */
export async function writeXattrs(items: Array<{ path: string; xattrs: Record<string, Buffer> }>): Promise<void> {
  if (items.length === 0) return;
  let dump = "";
  for (const it of items) {
    dump += `# file: ${escapeName(it.path)}\n`;
    for (const [k, v] of Object.entries(it.xattrs)) dump += `${escapeName(k)}=0x${v.toString("hex")}\n`;
    dump += "\n";
  }
  const r = await runTool("setfattr", ["-h", "--restore=-"], dump);
  if (r.code !== 0) {
    const msg = r.stderr.trim().split("\n")[0] ?? "";
    throw new KilnError("XATTR_FAILED", `setting extended attributes failed: ${msg}`);
  }
}
