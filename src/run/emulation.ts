// Emulated RUN for a foreign platform: which platforms this machine runs natively, the qemu
// binfmt_misc handler a foreign one needs, and making sure it is there before any work. As root,
// kiln mounts binfmt_misc if needed and registers a missing handler from qemu-user-static's
// definition (/usr/lib/binfmt.d/qemu-NAME.conf) with the F (fix-binary) flag, so the interpreter
// is opened at registration and works inside chroots and OCI runtimes; otherwise the error says
// how to enable it. Isolation proot (namespace-less pods, where binfmt_misc cannot be registered)
// runs the qemu user binary itself instead (`proot -q`: qemuUserBinary).
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { KilnError } from "../errors.js";
import type { Platform } from "../image/oci.js";
import { formatPlatform, hostPlatform, platformMatches } from "../image/platform.js";

const BINFMT_DIR = "/proc/sys/fs/binfmt_misc";
const DEFINITION_DIRS = ["/usr/lib/binfmt.d", "/etc/binfmt.d"];

/** qemu's name for an architecture (its binfmt handler is qemu-NAME). */
const QEMU_NAMES: Readonly<Record<string, string>> = {
  amd64: "x86_64",
  arm64: "aarch64",
  arm: "arm",
  "386": "i386",
  ppc64le: "ppc64le",
  ppc64: "ppc64",
  s390x: "s390x",
  riscv64: "riscv64",
  mips64le: "mips64el",
  mips64: "mips64",
  mipsle: "mipsel",
  mips: "mips",
  loong64: "loongarch64",
};

/** Whether binaries of `platform` run on `host` without emulation (an amd64 kernel runs 386). */
export function runsNatively(platform: Platform, host: Platform = hostPlatform()): boolean {
  if (platformMatches(platform, host) || platformMatches(host, platform)) return true;
  return host.os === platform.os && host.architecture === "amd64" && platform.architecture === "386";
}

/** The binfmt_misc handler name for `platform`'s binaries (qemu-aarch64, ...). */
export function handlerName(platform: Platform): string {
  const qemu = QEMU_NAMES[platform.architecture];
  if (qemu === undefined) throw new KilnError("EMULATION_UNAVAILABLE", `no qemu emulator is known for ${formatPlatform(platform)}`);
  return `qemu-${qemu}`;
}

export interface EmulationOptions {
  /** Whether kiln may mount binfmt_misc and register handlers (root); default: uid 0. */
  canRegister?: boolean;
  /** binfmt_misc's mount point (default /proc/sys/fs/binfmt_misc). */
  binfmtDir?: string;
  /** Where qemu-user-static's handler definitions are looked for (default /usr/lib/binfmt.d, /etc/binfmt.d). */
  definitionDirs?: readonly string[];
  /** What needs the emulation, for messages (default "RUN for PLATFORM"). */
  purpose?: string;
}

/** The handler's state: absent, or its flags (from binfmt_misc's entry). */
async function handlerFlags(dir: string, name: string): Promise<{ enabled: boolean; flags: string } | undefined> {
  let text: string;
  try {
    text = await readFile(`${dir}/${name}`, "utf8");
  } catch {
    return undefined;
  }
  return { enabled: /^enabled$/m.test(text), flags: /^flags:\s*(\S*)$/m.exec(text)?.[1] ?? "" };
}

async function findDefinition(name: string, dirs: readonly string[]): Promise<string | undefined> {
  for (const d of dirs) {
    const path = `${d}/${name}.conf`;
    if (existsSync(path)) return (await readFile(path, "utf8")).split("\n").find((l) => l.startsWith(":"))?.trim();
  }
  return undefined;
}

/** `:name:type:offset:magic:mask:interpreter:flags` with F among the flags. */
export function withFixBinary(definition: string): string {
  const fields = definition.split(":");
  if (fields.length !== 8) throw new KilnError("EMULATION_UNAVAILABLE", `malformed binfmt definition: ${definition}`);
  if (!fields[7]!.includes("F")) fields[7] = `${fields[7]}F`;
  return fields.join(":");
}

/**
 * The qemu user binary (`qemu-aarch64-static`, from qemu-user-static) that `proot -q` can run
 * `platform`'s programs through, when installed; `dirs` are searched in order.
 */
export function qemuUserBinary(platform: Platform, dirs: readonly string[] = ["/usr/bin", "/usr/local/bin"]): string | undefined {
  const name = handlerName(platform);
  for (const d of dirs) if (existsSync(`${d}/${name}-static`)) return `${d}/${name}-static`;
  return undefined;
}

/**
 * Make sure RUN steps (or a `kiln run`) of `platform` can run here: natively, or through an enabled qemu
 * binfmt_misc handler with the F flag (registered by kiln as root when missing). Returns the
 * handler's name, or undefined when no emulation is needed; a KilnError with the fix otherwise.
 */
export async function ensureEmulation(platform: Platform, options: EmulationOptions = {}): Promise<string | undefined> {
  if (runsNatively(platform)) return undefined;
  const name = handlerName(platform);
  const dir = options.binfmtDir ?? BINFMT_DIR;
  const canRegister = options.canRegister ?? process.getuid?.() === 0;
  const what = `${options.purpose ?? `RUN for ${formatPlatform(platform)}`} on a ${formatPlatform(hostPlatform())} machine needs emulation`;
  const definition = await findDefinition(name, options.definitionDirs ?? DEFINITION_DIRS);
  if (definition === undefined) {
    throw new KilnError("EMULATION_UNAVAILABLE", `${what}: no ${name} binfmt definition; install it with: apt-get install qemu-user-static`);
  }
  const register = `echo '${withFixBinary(definition)}' > ${dir}/register`;
  const existing = await handlerFlags(dir, name);
  if (existing) {
    if (!existing.enabled) throw new KilnError("EMULATION_UNAVAILABLE", `${what}: the binfmt_misc handler ${name} is disabled; enable it with: echo 1 > ${dir}/${name}`);
    if (!existing.flags.includes("F")) {
      throw new KilnError("EMULATION_UNAVAILABLE", `${what}: the binfmt_misc handler ${name} lacks the F (fix-binary) flag, so it cannot work inside a container; re-register it: echo -1 > ${dir}/${name} && ${register}`);
    }
    return name;
  }
  if (!canRegister) throw new KilnError("EMULATION_UNAVAILABLE", `${what}: the binfmt_misc handler ${name} is not registered; as root run: ${register}`);
  if (!existsSync(`${dir}/register`)) {
    try {
      await promisify(execFile)("mount", ["-t", "binfmt_misc", "binfmt_misc", dir]);
    } catch (err) {
      throw new KilnError("EMULATION_UNAVAILABLE", `${what}: binfmt_misc is not mounted at ${dir} and mounting it failed (${(err as Error).message.split("\n")[0]})`);
    }
  }
  try {
    await writeFile(`${dir}/register`, withFixBinary(definition));
  } catch (err) {
    // another build may have registered it meanwhile
    if ((await handlerFlags(dir, name))?.flags.includes("F")) return name;
    throw new KilnError("EMULATION_UNAVAILABLE", `${what}: registering the binfmt_misc handler ${name} failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run: ${register}`);
  }
  return name;
}
