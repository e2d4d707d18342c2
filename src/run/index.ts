// RUN isolation entry point: runs the preflight (preflight.ts) and builds the backend it allows —
// an OCI runtime (crun or runc), chroot (unshare + chroot), plain-chroot (no namespaces, for a
// root pod) or proot (ptrace, for a non-root pod) — rootless where kiln is not uid 0.
import { KilnError } from "../errors.js";
import { createChrootRunner } from "./chroot.js";
import { createOciRunner } from "./oci.js";
import { createPlainChrootRunner } from "./plain-chroot.js";
import { chooseIsolation, pickRuntime, preflight, type ConcreteIsolation, type PreflightReport } from "./preflight.js";
import { createProotRunner } from "./proot.js";
import type { Isolation, Runner } from "./types.js";

export type { IdMap, Isolation, RunMount, RunResult, RunSpec, Runner } from "./types.js";
export { resolveUser, type ResolvedUser } from "./user.js";
export { ISOLATIONS, preflight, type PreflightReport } from "./preflight.js";

export interface RunnerOptions {
  runtime?: "crun" | "runc";
  workDir?: string;
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
  const report = await preflight();
  const choice = chooseIsolation(isolation, report);
  return { runner: buildRunner(choice.isolation, report, options), isolation: choice.isolation, why: choice.why, report };
}

export async function createRunner(isolation: Isolation, options: RunnerOptions = {}): Promise<Runner> {
  return (await chooseRunner(isolation, options)).runner;
}

function buildRunner(isolation: ConcreteIsolation, report: PreflightReport, options: RunnerOptions): Runner {
  const workDir = options.workDir ? { workDir: options.workDir } : {};
  switch (isolation) {
    case "oci": {
      const runtime = pickRuntime(options.runtime);
      if (!runtime) throw new KilnError("ISOLATION_UNAVAILABLE", `isolation "oci" needs an OCI runtime: install ${options.runtime ?? "crun or runc"} (Debian packages crun / runc)`);
      return createOciRunner({ runtime, ...workDir });
    }
    case "chroot":
      return createChrootRunner(workDir);
    case "plain-chroot":
      return createPlainChrootRunner({
        ...workDir,
        capBnd: report.capBnd,
        ...(report.modes.proot.ok ? { procFallback: createProotRunner(workDir) } : {}),
      });
    case "proot":
      return createProotRunner(workDir);
  }
}
