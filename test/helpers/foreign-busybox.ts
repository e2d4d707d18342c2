// A static busybox for another architecture (arm64 on an amd64 machine), for the emulated-RUN
// tests: Debian's busybox-static:arm64 package, fetched once per machine with apt-get (as root:
// `dpkg --add-architecture arm64`, `apt-get update`, `apt-get download`) into
// /var/cache/kiln-test, and its /bin/busybox extracted into a directory of the caller's.
import { existsSync } from "node:fs";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { mustRun, run } from "./kiln.js";

const CACHE = "/var/cache/kiln-test";

async function debFor(arch: string): Promise<string> {
  const find = async (): Promise<string | undefined> => {
    if (!existsSync(CACHE)) return undefined;
    const name = (await readdir(CACHE)).find((f) => f.startsWith("busybox-static_") && f.endsWith(`_${arch}.deb`));
    return name === undefined ? undefined : join(CACHE, name);
  };
  const have = await find();
  if (have) return have;
  if (process.getuid?.() !== 0) {
    throw new Error(`the emulation tests need Debian's busybox-static:${arch} in ${CACHE}; as root: dpkg --add-architecture ${arch} && apt-get update && (cd ${CACHE} && apt-get download busybox-static:${arch})`);
  }
  const foreign = (await mustRun("dpkg", ["--print-foreign-architectures"])).stdout.split("\n");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  if (!foreign.includes(arch)) {
    await mustRun("dpkg", ["--add-architecture", arch]);
    await mustRun("apt-get", ["update", "-q"], { env });
  }
  await mkdir(CACHE, { recursive: true });
  let r = await run("apt-get", ["download", `busybox-static:${arch}`], { cwd: CACHE, env });
  if (r.code !== 0) {
    // package lists older than the architecture: update once, then try again
    await mustRun("apt-get", ["update", "-q"], { env });
    r = await run("apt-get", ["download", `busybox-static:${arch}`], { cwd: CACHE, env });
  }
  if (r.code !== 0) throw new Error(`apt-get download busybox-static:${arch} failed: ${r.stderr.trim()}`);
  const got = await find();
  if (!got) throw new Error(`apt-get download busybox-static:${arch} left no .deb in ${CACHE}`);
  return got;
}

/** Extract the `arch` (Debian name: arm64, armhf, ...) static busybox to DIR/busybox; returns that path. */
export async function foreignBusybox(arch: string, dir: string): Promise<string> {
  const deb = await debFor(arch);
  const unpacked = join(dir, `deb-${arch}`);
  await mustRun("dpkg-deb", ["-x", deb, unpacked]);
  return join(unpacked, "bin", "busybox");
}
