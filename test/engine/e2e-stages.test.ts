// The stage graph at build time: independent stages run at the same time (bounded by --jobs),
// a stage used by several others is built once, and stages the target does not need never run.
import { afterAll, describe, expect, it } from "vitest";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { useBusyboxBase } from "../helpers/busybox.js";
import { buildLayout } from "../helpers/build.js";
import { TempDirs, casePath } from "../helpers/temp.js";
import { skopeoInspect, umociUnpack } from "../helpers/tools.js";

const temps = new TempDirs();
const base = useBusyboxBase();
afterAll(() => temps.cleanup());

/** A stage's RUN start and end, as the machine's uptime in seconds (10 ms resolution). */
async function times(rootfs: string, name: string): Promise<[number, number]> {
  const start = Number((await readFile(join(rootfs, "times", `${name}-start`), "utf8")).trim());
  const end = Number((await readFile(join(rootfs, "times", `${name}-end`), "utf8")).trim());
  return [start, end];
}

describe("the stage graph", () => {
  it("runs independent stages concurrently, a shared stage once, and skips unused stages", async () => {
    const { layout } = await buildLayout(temps, casePath("stage-graph"), ["--build-context", `base=${base().buildContext}`, "-t", "g:1", "--jobs", "2"]);
    const rootfs = await umociUnpack(temps, layout, "1");
    // `common` ran once: both stages built on the same random id.
    expect(await readFile(join(rootfs, "left-common"), "utf8")).toBe(await readFile(join(rootfs, "right-common"), "utf8"));
    // `left` and `right` overlapped in time.
    const [ls, le] = await times(rootfs, "left");
    const [rs, re] = await times(rootfs, "right");
    expect(ls < re && rs < le).toBe(true);
    // `unused` (RUN exit 1) was never built, or the build would have failed.
  });

  it("--jobs 1 builds one stage at a time", async () => {
    const { layout } = await buildLayout(temps, casePath("stage-graph"), ["--build-context", `base=${base().buildContext}`, "-t", "g:1", "--jobs", "1"]);
    const rootfs = await umociUnpack(temps, layout, "1");
    const [ls, le] = await times(rootfs, "left");
    const [rs, re] = await times(rootfs, "right");
    expect(le <= rs || re <= ls).toBe(true);
  });
});

describe("ARGs across stages", () => {
  it("a stage built FROM another starts with its ARGs (RUN, expansions, --from), never in Env", async () => {
    // BuildKit's dispatchState.init: the child's state is the parent's, whose env holds the ARGs
    // (checked against Docker by testdata/conformance/arg-parent-stage and compare-docker.mjs).
    const ctx = await temps.make("kiln-arg-stages-");
    await writeFile(join(ctx, "Dockerfile"), [
      "ARG G=global",
      "FROM base AS src",
      "RUN echo from-src > /src.txt",
      "FROM base AS parent",
      "ARG A=1",
      "ARG B",
      "ARG G",
      "ARG S=src",
      "FROM parent AS child",
      'LABEL a="$A" b="$B" g="$G"',
      "COPY --from=$S /src.txt /",
      'RUN echo "A=$A B=$B G=$G" > /child.txt && env | grep -E "^(A|B|G)=" | sort > /child-env.txt',
      "FROM child",
      "ARG A",
      "ARG B=own",
      'RUN echo "A=$A B=$B G=$G" > /final.txt',
      "",
    ].join("\n"));
    const { layout } = await buildLayout(temps, ctx, ["--build-context", `base=${base().buildContext}`, "--build-arg", "B=bee", "-t", "a:1"]);
    const rootfs = await umociUnpack(temps, layout, "1");
    expect(await readFile(join(rootfs, "src.txt"), "utf8")).toBe("from-src\n");
    expect(await readFile(join(rootfs, "child.txt"), "utf8")).toBe("A=1 B=bee G=global\n");
    expect(await readFile(join(rootfs, "child-env.txt"), "utf8")).toBe("A=1\nB=bee\nG=global\n");
    // re-declared without a default: keeps the inherited value; --build-arg beats a new default
    expect(await readFile(join(rootfs, "final.txt"), "utf8")).toBe("A=1 B=bee G=global\n");
    const { config } = await skopeoInspect(layout, "1");
    expect(config.config?.Labels).toEqual({ a: "1", b: "bee", g: "global" });
    expect((config.config?.Env ?? []).filter((e) => /^(A|B|G|S)=/.test(e))).toEqual([]);
  });
});
