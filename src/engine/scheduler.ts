// Which stage builds when: every stage in the plan's order after the stages it depends on, each
// at most once, at most `jobs` at once (slots a multi-platform build's schedulers share). The one place stage results live: a stage's promise is
// recorded when it is scheduled, and FROM <stage>, COPY --from and RUN --mount=from= read it here.
// Schedulers given the same SharedStages build a stage whose identity another already scheduled
// only once: the later ones take its result (stage-identity.ts says which stages are the same).
import type { BuildPlan } from "../frontend/plan.js";
import { KilnError } from "../errors.js";
import type { StageResult } from "./state.js";

/** At most `jobs` holders at once; shared by the schedulers of a multi-platform build. */
export class JobSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly jobs: number) {}

  async acquire(): Promise<void> {
    if (this.running < this.jobs) {
      this.running++;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

/** Stage results by identity, shared by the schedulers of a multi-platform build. */
export type SharedStages = Map<string, Promise<StageResult>>;

export class StageScheduler {
  private readonly results = new Map<number, Promise<StageResult>>();
  private readonly slots: JobSlots;

  /**
   * `jobs`: a number of slots of its own, or slots shared with other schedulers; `shared` with
   * `identity`: stages another scheduler already has are taken from it, not built again.
   */
  constructor(
    private readonly plan: BuildPlan,
    jobs: number | JobSlots,
    private readonly shared?: { stages: SharedStages; identity: (index: number) => string },
  ) {
    this.slots = typeof jobs === "number" ? new JobSlots(jobs) : jobs;
  }

  /** A scheduled stage's result (an internal error for a stage the plan does not build). */
  result(index: number): Promise<StageResult> {
    const r = this.results.get(index);
    if (!r) throw new KilnError("INTERNAL", `internal: stage ${index} was not scheduled`);
    return r;
  }

  /** Build every stage of the plan with `build`; the target's result once all have settled. */
  async run(build: (index: number) => Promise<StageResult>): Promise<StageResult> {
    for (const i of this.plan.order) this.schedule(i, build);
    const settled = await Promise.allSettled(this.plan.order.map((i) => this.result(i)));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    return this.result(this.plan.target);
  }

  private schedule(index: number, build: (index: number) => Promise<StageResult>): Promise<StageResult> {
    const existing = this.results.get(index);
    if (existing) return existing;
    const id = this.shared?.identity(index);
    const same = id === undefined ? undefined : this.shared!.stages.get(id);
    if (same) {
      this.results.set(index, same);
      return same;
    }
    const stage = this.plan.stages[index]!;
    const p = (async () => {
      for (const d of stage.dependsOn) await this.schedule(d, build);
      await this.slots.acquire();
      try {
        return await build(index);
      } finally {
        this.slots.release();
      }
    })();
    this.results.set(index, p);
    if (id !== undefined) this.shared!.stages.set(id, p);
    p.catch(() => undefined); // observed through run()
    return p;
  }
}
