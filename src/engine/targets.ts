// The target platforms of one build: the plan made once per target (TARGET* args differ, BUILD*
// are the host's), and each planned stage's EngineConfig — the target's, or that of the platform
// its `FROM --platform=...` names — with the emulator its RUN steps need. Everything here is
// decided, and emulation set up or refused with a line number, before any work.
import type { DockerfileAST } from "../frontend/ast.js";
import { planBuild, type BuildPlan, type PlanOptions } from "../frontend/plan.js";
import { DockerfileError, KilnError } from "../errors.js";
import type { Platform } from "../image/oci.js";
import { parseTargetPlatforms } from "../image/platform.js";
import { ensureEmulation, handlerName, qemuUserBinary, runsNatively } from "../run/emulation.js";
import { forPlatform, forStagePlatform, type EngineConfig } from "./config.js";

export interface PlannedTarget {
  /** The settings of the target platform. */
  config: EngineConfig;
  plan: BuildPlan;
}

export interface PreparedTarget extends PlannedTarget {
  /** Each planned stage's settings (its platform, its emulator). */
  stageConfigs: ReadonlyMap<number, EngineConfig>;
}

/** The plan for each of `config.platforms`, in that order. */
export function planTargets(ast: DockerfileAST, config: EngineConfig, options: Omit<PlanOptions, "buildArgs" | "targetPlatform">): PlannedTarget[] {
  return config.platforms.map((platform) => ({
    config: config.platforms.length === 1 ? config : forPlatform(config, platform),
    plan: planBuild(ast, { ...options, buildArgs: { ...config.buildArgs }, targetPlatform: platform }),
  }));
}

/** How RUN steps of a foreign platform run: a binfmt_misc handler, or (isolation proot) `proot -q QEMU`. */
interface Emulation {
  emulator: string;
  qemu?: string;
}

/**
 * Each stage's settings for every target; RUN for a platform the machine cannot run natively gets
 * its qemu binfmt_misc handler (registered when missing and kiln may), once per platform, or the
 * build is refused naming the first RUN for it. Under isolation proot (`isolation`: what the
 * preflight chose) the qemu user binary is run by proot itself instead, so no binfmt_misc handler
 * is needed. Reports each emulated platform as an info event.
 */
export async function prepareStages(targets: PlannedTarget[], config: EngineConfig, isolation?: string): Promise<PreparedTarget[]> {
  const emulators = new Map<string, Emulation | undefined>();
  const out: PreparedTarget[] = [];
  for (const t of targets) {
    const stageConfigs = new Map<number, EngineConfig>();
    for (const i of t.plan.order) {
      const stage = t.plan.stages[i]!;
      let sc = stage.platform === undefined ? t.config : forStagePlatform(t.config, stagePlatform(stage.platform, stage.line, t.plan.file));
      const run = stage.instructions.find((x) => x.kind === "run");
      if (run) {
        if (!emulators.has(sc.platformText)) {
          const emulation = await emulationFor(sc.platform, run.line, t.plan.file, isolation);
          emulators.set(sc.platformText, emulation);
          if (emulation?.qemu !== undefined) config.emit({ type: "info", message: `RUN for ${sc.platformText} is emulated (proot -q ${emulation.qemu})` });
          else if (emulation !== undefined) config.emit({ type: "info", message: `RUN for ${sc.platformText} is emulated (binfmt_misc handler ${emulation.emulator})` });
        }
        const emulation = emulators.get(sc.platformText);
        if (emulation !== undefined) sc = { ...sc, emulator: emulation.emulator, ...(emulation.qemu !== undefined ? { qemu: emulation.qemu } : {}) };
      }
      stageConfigs.set(i, sc);
    }
    out.push({ ...t, stageConfigs });
  }
  return out;
}

/** The emulation RUN steps of `platform` need (undefined: native); refused naming the RUN's line. */
async function emulationFor(platform: Platform, line: number, file: string, isolation: string | undefined): Promise<Emulation | undefined> {
  if (runsNatively(platform)) return undefined;
  try {
    if (isolation === "proot") {
      // ptrace translation: proot runs every program through the qemu user binary (proot -q)
      const qemu = qemuUserBinary(platform);
      if (qemu !== undefined) return { emulator: handlerName(platform), qemu };
    }
    const handler = await ensureEmulation(platform);
    return handler === undefined ? undefined : { emulator: handler };
  } catch (err) {
    if (!(err instanceof KilnError)) throw err;
    const proot = isolation === "proot" ? ` (isolation proot can run it without binfmt_misc through proot -q ${handlerNameOr(platform)}-static: apt-get install qemu-user-static)` : "";
    throw new DockerfileError(err.code, `${err.message}${proot}`, line, file, { cause: err });
  }
}

function handlerNameOr(platform: Platform): string {
  try {
    return handlerName(platform);
  } catch {
    return "qemu-ARCH";
  }
}

/** The platform a stage's `FROM --platform=...` names (expanded), checked as --platform is. */
function stagePlatform(text: string, line: number, file: string): Platform {
  try {
    const [p, ...more] = parseTargetPlatforms(text);
    if (p === undefined || more.length > 0) throw new KilnError("PLATFORM_INVALID", `FROM --platform takes one platform, not "${text}"`);
    return p;
  } catch (err) {
    throw new DockerfileError("PLATFORM_INVALID", `FROM --platform=${text}: ${(err as Error).message}`, line, file, { cause: err });
  }
}
