// Which stages of a multi-platform build are the same work for several targets (BuildKit dedups
// identical vertices): a stage's identity is what decides its result: its base, the platform it is
// built for and its emulator, its instructions, the value each of its ARGs resolves to (build
// args, global values, automatic TARGET*/BUILD* args), and the identities of the stages it reads.
// A `FROM --platform=$BUILDPLATFORM` stage that declares no TARGET* arg has one identity for
// every target and is built once; one that declares `ARG TARGETARCH` is built per target.
import { createHash } from "node:crypto";
import type { BuildPlan } from "../frontend/plan.js";
import type { EngineConfig } from "./config.js";

/** The identity of each planned stage of one target (computed on demand, memoized). */
export function stageIdentities(plan: BuildPlan, stageConfig: (index: number) => EngineConfig): (index: number) => string {
  const memo = new Map<number, string>();
  const identity = (index: number): string => {
    const known = memo.get(index);
    if (known !== undefined) return known;
    const stage = plan.stages[index]!;
    const config = stageConfig(index);
    const args: Array<[string, string | undefined, string | undefined, string | undefined]> = [];
    for (const inst of stage.instructions) {
      if (inst.kind !== "arg") continue;
      for (const a of inst.args) args.push([a.name, plan.buildArgs[a.name], plan.globalValues[a.name], plan.automaticArgs[a.name]]);
    }
    const text = JSON.stringify({
      base: stage.base,
      platform: config.platformText,
      emulator: config.emulator ?? null,
      instructions: stage.instructions,
      args,
      deps: stage.dependsOn.map(identity),
    });
    const id = createHash("sha256").update(text).digest("hex");
    memo.set(index, id);
    return id;
  };
  return identity;
}
