// Which `--build-context NAME=...` contexts a build's plans actually use: a needed stage's FROM,
// a COPY --from or a RUN --mount from= naming it. BuildKit fetches named contexts lazily; kiln
// decides before any step, so a git context for a stage the target never reaches costs no fetch.
// A `--from` value still holding `$` after planning is not known here: every name counts as used.
// (A base image's ONBUILD triggers are not in the plan: the sources fetch what they name late.)
import type { BuildPlan } from "../frontend/plan.js";

/** The names (lower-cased) the plans use, or "all" when a reference cannot be known before running. */
export function namedContextsUsed(plans: readonly BuildPlan[]): Set<string> | "all" {
  const used = new Set<string>();
  for (const plan of plans) {
    for (const index of plan.order) {
      const stage = plan.stages[index]!;
      if (stage.base.kind === "context") used.add(stage.base.name.toLowerCase());
      for (const t of stage.instructions) {
        const refs = t.kind === "copy" ? [t.from] : t.kind === "run" ? t.mounts.map((m) => m.from) : [];
        for (const ref of refs) {
          if (ref === undefined) continue;
          if (ref.includes("$")) return "all";
          used.add(ref.toLowerCase());
        }
      }
    }
  }
  return used;
}
