// Test helpers for the fs/run/diff tests: temp dirs, a busybox-static root filesystem, and a
// tiny raw tar encoder (so tests can craft hostile names and binary PAX xattrs exactly).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";

export function tempDir(prefix = "kiln-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    cleanup: () => {
      // detach anything a failed test left mounted, then remove
      try {
        execFileSync("sh", ["-c", `grep -o " ${dir}[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l`], { stdio: "ignore" });
      } catch {
        /* nothing mounted */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A minimal root filesystem: /bin/busybox plus its applet symlinks, /etc/passwd and /etc/group. */
export function busyboxRoot(root: string): void {
  for (const d of ["bin", "etc", "tmp", "root", "home/app"]) mkdirSync(join(root, d), { recursive: true });
  copyFileSync("/bin/busybox", join(root, "bin/busybox"));
  execFileSync("chmod", ["1777", join(root, "tmp")]);
  const applets = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" }).split("\n").filter((a) => a && a !== "busybox");
  for (const a of applets) symlinkSync("busybox", join(root, "bin", a));
  execFileSync("sh", [
    "-c",
    `printf 'root:x:0:0:root:/root:/bin/sh\\napp:x:1000:1000:app:/home/app:/bin/sh\\nnobody:x:65534:65534:nobody:/:/bin/false\\n' > ${root}/etc/passwd;` +
      `printf 'root:x:0:\\napp:x:1000:\\nstaff:x:50:app\\nextra:x:60:app,root\\nnogroup:x:65534:\\n' > ${root}/etc/group;` +
      `chown 1000:1000 ${root}/home/app`,
  ]);
}

export interface TarSpec {
  name: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  content?: string | Buffer;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
}

const TYPEFLAG = { file: "0", hardlink: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" } as const;

function header(name: string, typeflag: string, size: number, s: TarSpec): Buffer {
  const h = Buffer.alloc(512);
  const put = (off: number, len: number, v: string): void => void h.write(v, off, len, "utf8");
  const oct = (off: number, len: number, v: number): void => put(off, len, v.toString(8).padStart(len - 1, "0") + "\0");
  put(0, 100, name);
  oct(100, 8, s.mode ?? (typeflag === "5" ? 0o755 : 0o644));
  oct(108, 8, s.uid ?? 0);
  oct(116, 8, s.gid ?? 0);
  oct(124, 12, size);
  oct(136, 12, Math.floor(s.mtime ?? 1_600_000_000));
  h.fill(0x20, 148, 156);
  put(156, 1, typeflag);
  put(157, 100, s.linkname ?? "");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  oct(329, 8, s.devmajor ?? 0);
  oct(337, 8, s.devminor ?? 0);
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

function pad(b: Buffer): Buffer {
  const r = b.length % 512;
  return r === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - r)]);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** Encode entries as an uncompressed tar (names used verbatim, no sanitising). */
export function makeTar(entries: TarSpec[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? "file";
    const data = type === "file" ? Buffer.from(e.content ?? "") : Buffer.alloc(0);
    if (e.xattrs && Object.keys(e.xattrs).length > 0) {
      const recs = Buffer.concat(Object.entries(e.xattrs).map(([k, v]) => paxRecord(`SCHILY.xattr.${k}`, v)));
      parts.push(header("PaxHeader", "x", recs.length, {}), pad(recs));
    }
    parts.push(header(e.name, TYPEFLAG[type], data.length, e), pad(data));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function tarStream(entries: TarSpec[]): Readable {
  return Readable.from([makeTar(entries)]);
}

/** A root-filesystem layer of `tar` (gzipped when asked) whose diffID is the tar's real digest. */
export function tarLayer(tar: Buffer, gzip = false): { diffID: `sha256:${string}`; mediaType: string; open: () => Readable } {
  const blob = gzip ? gzipSync(tar) : tar;
  return {
    diffID: `sha256:${createHash("sha256").update(tar).digest("hex")}`,
    mediaType: gzip ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar",
    open: () => Readable.from([blob]),
  };
}
