// RUN isolation entry point: runs the preflight (preflight.ts) and builds the backend it allows —
// an OCI runtime (crun or runc), chroot (unshare + chroot), plain-chroot (no namespaces, for a
// root pod) or proot (ptrace, for a non-root pod) — rootless where kiln is not uid 0. Each
// backend's module is loaded when it is chosen (a `kiln run` loads the OCI runner's alone).
import { KilnError } from "../errors.js";
import { chooseIsolation, pickRuntime, preflight, type ConcreteIsolation, type PreflightReport } from "./preflight.js";
import type { Isolation, Runner } from "./types.js";

export type { IdMap, Isolation, RunControl, RunFeature, RunIO, RunMount, RunResult, RunSpec, Runner } from "./types.js";
export { resolveUser, type ResolvedUser } from "./user.js";
export { ISOLATIONS, preflight, type PreflightReport } from "./preflight.js";

export interface RunnerOptions {
  runtime?: "crun" | "runc";
  workDir?: string;
  /** A report already at hand (e.g. from preflight-cache.ts); default: probe (once per process). */
  report?: PreflightReport;
}

/** A runner plus the isolation the preflight chose and why (for progress and metadata). */
export interface ChosenRunner {
  runner: Runner;
  isolation: ConcreteIsolation;
  why: string;
  report: PreflightReport;
}

/** Probe (cached), choose, and build the runner; a mode that cannot work is a one-line KilnError. */
export async function chooseRunner(isolation: Isolation, options: RunnerOptions = {}): Promise<ChosenRunner> {
  const report = options.report ?? (await preflight());
  const choice = chooseIsolation(isolation, report);
  return { runner: await buildRunner(choice.isolation, report, options), isolation: choice.isolation, why: choice.why, report };
}

export async function createRunner(isolation: Isolation, options: RunnerOptions = {}): Promise<Runner> {
  return (await chooseRunner(isolation, options)).runner;
}

async function buildRunner(isolation: ConcreteIsolation, report: PreflightReport, options: RunnerOptions): Promise<Runner> {
  const workDir = options.workDir ? { workDir: options.workDir } : {};
  switch (isolation) {
    case "oci": {
      const runtime = pickRuntime(options.runtime);
      if (!runtime) throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "oci" needs an OCI runtime: install ${options.runtime ?? "crun or runc"} (Debian packages crun / runc)`);
      return (await import("./oci.js")).createOciRunner({ runtime, ...workDir });
    }
    case "chroot":
      return (await import("./chroot.js")).createChrootRunner(workDir);
    case "plain-chroot": {
      const { createPlainChrootRunner } = await import("./plain-chroot.js");
      return createPlainChrootRunner({
        ...workDir,
        capBnd: report.capBnd,
        ...(report.modes.proot.ok ? { procFallback: (await import("./proot.js")).createProotRunner(workDir) } : {}),
      });
    }
    case "proot":
      return (await import("./proot.js")).createProotRunner(workDir);
  }
}
