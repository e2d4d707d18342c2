// RUN isolation entry point: picks a backend — an OCI runtime (crun or runc) when installed,
// else chroot (unshare + chroot) — rootless when kiln is not uid 0.
import { existsSync } from "node:fs";
import { KilnError } from "../errors.js";
import { createChrootRunner } from "./chroot.js";
import { createOciRunner, crunNeedsHybridWorkaround } from "./oci.js";
import type { Isolation, Runner } from "./types.js";

export type { IdMap, Isolation, RunMount, RunResult, RunSpec, Runner } from "./types.js";
export { resolveUser, type ResolvedUser } from "./user.js";

function findOnPath(cmd: string): boolean {
  const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]);
  return dirs.some((d) => d !== "" && existsSync(`${d}/${cmd}`));
}

export async function createRunner(isolation: Isolation, options: { runtime?: "crun" | "runc"; workDir?: string } = {}): Promise<Runner> {
  const pickRuntime = (): "crun" | "runc" | null => {
    if (options.runtime) return findOnPath(options.runtime) ? options.runtime : null;
    const crunUsable = process.getuid?.() === 0 || !crunNeedsHybridWorkaround();
    if (findOnPath("crun") && crunUsable) return "crun";
    if (findOnPath("runc")) return "runc";
    return null;
  };
  if (isolation === "chroot") return createChrootRunner({ workDir: options.workDir });
  const runtime = pickRuntime();
  if (isolation === "oci") {
    if (!runtime) {
      throw new KilnError(`isolation "oci" needs an OCI runtime: install ${options.runtime ?? "crun or runc"} (Debian packages crun / runc)`);
    }
    return createOciRunner({ runtime, workDir: options.workDir });
  }
  if (isolation !== "auto") throw new KilnError(`unknown isolation "${String(isolation)}" (use auto, oci or chroot)`);
  return runtime ? createOciRunner({ runtime, workDir: options.workDir }) : createChrootRunner({ workDir: options.workDir });
}
