// StageScheduler with JobSlots: each stage after the stages it depends on, once, and never more
// than `jobs` builds at once — also across the schedulers of a multi-platform build, which share
// one set of slots (--jobs bounds the whole build, not each platform).
import { describe, expect, it } from "vitest";
import { parseDockerfile } from "../../src/frontend/parse.js";
import { planBuild } from "../../src/frontend/plan.js";
import { JobSlots, StageScheduler } from "../../src/engine/scheduler.js";
import type { StageResult } from "../../src/engine/state.js";

const DOCKERFILE = "FROM scratch AS a\nFROM scratch AS b\nFROM scratch AS c\nCOPY --from=a / /\nCOPY --from=b / /\n";

function plan() {
  return planBuild(parseDockerfile(DOCKERFILE, { file: "Dockerfile" }), { file: "Dockerfile" });
}

describe("StageScheduler", () => {
  it("shares --jobs slots across the schedulers of several platforms", async () => {
    const slots = new JobSlots(2);
    let running = 0;
    let peak = 0;
    const order: string[] = [];
    const build = (platform: string) => async (index: number): Promise<StageResult> => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 20));
      order.push(`${platform}:${index}`);
      running--;
      return { image: { config: { architecture: platform, os: "linux" }, layers: [] }, state: `sha256:${String(index).repeat(64)}` } as unknown as StageResult;
    };
    const p = plan();
    const results = await Promise.all([new StageScheduler(p, slots).run(build("amd64")), new StageScheduler(p, slots).run(build("arm64"))]);
    expect(peak).toBe(2);
    expect(order).toHaveLength(6); // three stages, once per platform
    for (const platform of ["amd64", "arm64"]) {
      const mine = order.filter((o) => o.startsWith(platform));
      expect(mine.indexOf(`${platform}:2`)).toBe(2); // the target after both stages it copies from
    }
    expect(results.map((r) => r.image.config.architecture)).toEqual(["amd64", "arm64"]);
  });

  it("with a number, has slots of its own", async () => {
    let running = 0;
    let peak = 0;
    await new StageScheduler(plan(), 1).run(async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return { image: { config: {}, layers: [] }, state: "sha256:0" } as unknown as StageResult;
    });
    expect(peak).toBe(1);
  });
});
