// The fake root that records owners for non-root proot steps: Debian's fakeroot. kiln starts its
// daemon (faked-sysv, SysV message queues) on the host for one step; the step's processes load
// the host's libfakeroot through LD_PRELOAD, so their chown/chmod/mknod are recorded there
// (and the real chown is not tried: proot's fake root would only pretend it). When the step ends
// the daemon writes its table ((dev, ino) -> owner, mode, rdev), which the snapshot applies
// (src/snapshot/recorded-owners.ts). The preload works only where the image has a glibc that
// offers every symbol version the host's library needs: imageCanPreload() tells.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { resolveInRoot } from "../snapshot/confine.js";
import { parseFakedSave, type RecordedOwners } from "../snapshot/recorded-owners.js";
import { dieWithKiln } from "./output.js";

const TRIPLETS: Record<string, string> = { x64: "x86_64-linux-gnu", arm64: "aarch64-linux-gnu", arm: "arm-linux-gnueabihf", ppc64: "powerpc64le-linux-gnu", s390x: "s390x-linux-gnu", riscv64: "riscv64-linux-gnu" };
const LOADERS: Record<string, string> = { x64: "/lib64/ld-linux-x86-64.so.2", arm64: "/lib/ld-linux-aarch64.so.1", arm: "/lib/ld-linux-armhf.so.3", ppc64: "/lib64/ld64.so.2", s390x: "/lib/ld64.so.1", riscv64: "/lib/ld-linux-riscv64-lp64d.so.1" };

export interface HostFakeroot {
  /** libfakeroot-sysv.so */
  lib: string;
  /** faked-sysv */
  faked: string;
}

/** The host's fakeroot (Debian packages fakeroot and libfakeroot), or null when not installed. */
export function hostFakeroot(): HostFakeroot | null {
  const triplet = TRIPLETS[process.arch];
  const libs = [triplet ? `/usr/lib/${triplet}/libfakeroot/libfakeroot-sysv.so` : "", "/usr/lib/libfakeroot/libfakeroot-sysv.so", "/usr/lib64/libfakeroot/libfakeroot-sysv.so"];
  const lib = libs.find((p) => p !== "" && existsSync(p));
  const faked = ["/usr/bin/faked-sysv", "/usr/bin/faked"].find((p) => existsSync(p));
  return lib && faked ? { lib, faked } : null;
}

let required: { lib: string; versions: string[] } | undefined;

/** The GLIBC_x.y symbol versions `lib` needs (its version-needed strings). */
function requiredVersions(lib: string): string[] {
  if (required?.lib !== lib) {
    const text = readFileSync(lib).toString("latin1");
    required = { lib, versions: [...new Set(text.match(/GLIBC_2\.\d+(?:\.\d+)?/g) ?? [])] };
  }
  return required.versions;
}

/**
 * Whether the image in `rootfs` can load the host's libfakeroot: it has the host platform's glibc
 * loader and a libc.so.6 defining every GLIBC version the library needs. Otherwise (musl, static
 * busybox, an older glibc, a foreign platform) the reason, one short phrase.
 */
export async function imageCanPreload(rootfs: string, lib: string): Promise<true | string> {
  const loader = LOADERS[process.arch];
  const triplet = TRIPLETS[process.arch];
  if (!loader || !triplet) return `no fakeroot for ${process.arch}`;
  const exists = async (p: string): Promise<string | null> => {
    try {
      const host = await resolveInRoot(rootfs, p, { followFinal: true });
      return existsSync(host) ? host : null;
    } catch {
      return null;
    }
  };
  if (!(await exists(loader))) return `the image has no glibc loader ${loader}`;
  let libc: string | null = null;
  for (const p of [`/lib/${triplet}/libc.so.6`, `/usr/lib/${triplet}/libc.so.6`, "/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/lib/libc.so.6"]) {
    libc = await exists(p);
    if (libc) break;
  }
  if (!libc) return "the image has no libc.so.6";
  const defined = (await readFile(libc)).toString("latin1");
  const missing = requiredVersions(lib).filter((v) => !defined.includes(`${v}\0`));
  return missing.length === 0 ? true : `the image's glibc lacks ${missing.join(", ")}`;
}

export interface FakedSession {
  /** FAKEROOTKEY for the step's processes. */
  key: string;
  /** Stop the daemon and read what it recorded (once; later calls give the same result). */
  stop(): Promise<RecordedOwners>;
}

/** Start faked for one step; its save file goes to `saveFile`. */
export async function startFaked(faked: string, saveFile: string): Promise<FakedSession> {
  const exec = dieWithKiln({ cmd: faked, args: ["--foreground", "--save-file", saveFile] });
  const child = spawn(exec.cmd, exec.args, { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const key = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /^(\d+):\d+\n/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("error", (err) => reject(new KilnError("ISOLATION_UNAVAILABLE", `fakeroot's faked cannot start: ${err.message}`)));
    void exited.then(() => reject(new KilnError("ISOLATION_UNAVAILABLE", `fakeroot's faked cannot start: ${stderr.trim() || "it exited"}`)));
  });
  let stopping: Promise<RecordedOwners> | undefined;
  return {
    key,
    stop() {
      stopping ??= stopAndRead();
      return stopping;
    },
  };

  async function stopAndRead(): Promise<RecordedOwners> {
    child.kill("SIGTERM"); // faked writes its save file and removes its message queues
    await exited;
    let text = "";
    try {
      text = await readFile(saveFile, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      throw new KilnError("OWNER_UNRECORDABLE", `fakeroot's faked wrote no record of the step's owners${stderr.trim() ? `: ${stderr.trim()}` : ""}`);
    }
    return parseFakedSave(text);
  }
}

/** Where the library and a static busybox appear inside the step (/dev is never in a layer). */
export const GUEST_DIR = "/dev/.kiln";
export const GUEST_LIB = join(GUEST_DIR, "libfakeroot.so");
