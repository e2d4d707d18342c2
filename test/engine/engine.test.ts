// The engine in process: build() through its EngineBackends seam with a fake runner and a fake
// root filesystem (test/helpers/fake-engine.ts), so the step logic runs without crun, umoci,
// mounts or root. COPY → RUN → WORKDIR produce the layers and history they should, a second
// build hits every step and runs nothing, a failing RUN is one located error that leaves nothing
// behind, and the cache keys of every layer step are byte-identical to the ones kiln computed
// before the steps became LayerStep contracts (recorded from that code on the same inputs).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildWith } from "../../src/engine/build.js";
import type { BuildEvent } from "../../src/engine/events.js";
import type { BuildOptions } from "../../src/engine/options.js";
import { DockerfileError } from "../../src/errors.js";
import { LayerView } from "../../src/layer/view.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { FakeEngine } from "../helpers/fake-engine.js";

const SDE = 1700000000;
let root: string;
let ctx: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "kiln-engine-"));
  ctx = join(root, "ctx");
  await mkdir(ctx);
  await chmod(ctx, 0o755);
  await writeFile(join(ctx, "a.txt"), "content a\n");
  await chmod(join(ctx, "a.txt"), 0o644);
});
afterAll(() => rm(root, { recursive: true, force: true }));

interface Step {
  stage: string;
  step: number;
  instruction: string;
  key: string;
  cached: boolean;
}

async function run(engine: FakeEngine, dockerfile: string, cacheDir: string, extra: Partial<BuildOptions> = {}) {
  const out = await mkdtemp(join(root, "out-"));
  const events: BuildEvent[] = [];
  const options: BuildOptions = {
    context: ctx,
    dockerfileText: dockerfile,
    platform: "linux/amd64",
    sourceDateEpoch: SDE,
    cacheDir,
    outputs: [{ type: "oci", dest: join(out, "layout"), tar: false }],
    metadataFile: join(out, "meta.json"),
    onEvent: (e) => events.push(e),
    ...extra,
  };
  const result = await buildWith(options, engine.backends);
  const steps = (JSON.parse(await readFile(join(out, "meta.json"), "utf8")) as { "kiln.steps": Step[] })["kiln.steps"];
  return { result, steps, events, out };
}

const COPY_RUN_WORKDIR = `FROM scratch
COPY a.txt /app/
RUN make-output
WORKDIR /app/work
`;

describe("build() in process", () => {
  let cacheDir: string;
  let first: Awaited<ReturnType<typeof run>>;
  let engine: FakeEngine;

  beforeAll(async () => {
    cacheDir = await mkdtemp(join(root, "cache-"));
    engine = new FakeEngine({ "/bin/sh -c make-output": { writes: { "/app/out.txt": "made\n" }, output: "making\n" } });
    first = await run(engine, COPY_RUN_WORKDIR, cacheDir);
  });

  it("COPY then RUN then WORKDIR: three layers, each step seeing the ones before", async () => {
    const { result } = first;
    expect(result.image.layers).toHaveLength(3);
    expect(result.image.config.rootfs.diff_ids).toEqual(result.image.layers.map((l) => l.diffID));
    expect(result.image.config.history?.map((h) => [h.created_by, h.empty_layer === true])).toEqual([
      ["COPY a.txt /app/", false],
      ["RUN /bin/sh -c make-output", false],
      ["WORKDIR /app/work", false],
    ]);
    expect(result.image.config.config?.WorkingDir).toBe("/app/work");

    // The RUN ran once, in a root filesystem holding COPY's layer, with the stage's environment.
    expect(engine.preflights).toBe(1);
    expect(engine.runs).toHaveLength(1);
    const spec = engine.runs[0]!;
    expect(spec.argv).toEqual(["/bin/sh", "-c", "make-output"]);
    expect(spec.cwd).toBe("/");
    expect(spec.user).toBe("root");
    expect(spec.network).toBe("host");
    expect(spec.env).toContain("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    expect(engine.rootfses).toHaveLength(1);
    const rootfs = engine.rootfses[0]!;
    expect(spec.rootfs).toBe(rootfs.dir);
    // COPY's layer before the RUN, then the RUN's and WORKDIR's own (kept in step as committed).
    expect(rootfs.applied).toEqual(result.image.layers.map((l) => l.diffID));
    expect(rootfs.disposed).toBe(true);

    const view = await LayerView.load(new BlobStore(cacheDir), result.image.layers);
    expect(view.lookup("app/a.txt")?.type).toBe("file");
    expect(view.lookup("app/out.txt")?.type).toBe("file");
    expect(view.lookup("app/work")).toMatchObject({ type: "dir", mode: 0o755, uid: 0, gid: 0 });
  });

  it("reports the RUN's output as step-log events of its step", () => {
    const runStart = first.events.find((e) => e.type === "step-start" && e.text === "RUN make-output");
    expect(runStart).toBeDefined();
    const logs = first.events.filter((e): e is Extract<BuildEvent, { type: "step-log" }> => e.type === "step-log");
    expect(logs.map((l) => [l.id, l.stream, l.data.toString()])).toEqual([[(runStart as { id: number }).id, "stdout", "making\n"]]);
  });

  it("a second build hits every step, runs nothing, assembles no root filesystem, and gives the same image", async () => {
    const again = new FakeEngine();
    const second = await run(again, COPY_RUN_WORKDIR, cacheDir);
    expect(second.steps.map((s) => s.cached)).toEqual([true, true, true]);
    expect(second.steps.map((s) => s.key)).toEqual(first.steps.map((s) => s.key));
    expect(again.runs).toEqual([]);
    expect(again.rootfses).toEqual([]);
    expect(second.result.digest).toBe(first.result.digest);
  });

  it("a failing RUN is one error naming its line, and leaves no output and no temporary tree", async () => {
    const failing = new FakeEngine({ "/bin/sh -c make-output": { exitCode: 2, output: "no rule to make target\n" } });
    const cache = await mkdtemp(join(root, "cache-fail-"));
    const out = await mkdtemp(join(root, "out-fail-"));
    const err = await buildWith(
      { context: ctx, dockerfileText: COPY_RUN_WORKDIR, platform: "linux/amd64", sourceDateEpoch: SDE, cacheDir: cache, outputs: [{ type: "oci", dest: join(out, "layout"), tar: false }] },
      failing.backends,
    ).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(DockerfileError);
    expect((err as DockerfileError).line).toBe(3);
    expect((err as Error).message).toBe(
      'Dockerfile:3: RUN: process "/bin/sh -c make-output" did not complete successfully: exit code: 2\n  no rule to make target',
    );
    expect(await readdir(out)).toEqual([]);
    expect(await readdir(join(cache, "tmp"))).toEqual([]);
    expect(failing.rootfses.every((r) => r.disposed)).toBe(true);
  });

  it("a build without RUN probes no isolation", async () => {
    const engine2 = new FakeEngine();
    const { result } = await run(engine2, "FROM scratch\nCOPY a.txt /\n", await mkdtemp(join(root, "cache-norun-")));
    expect(result.image.layers).toHaveLength(1);
    expect(engine2.preflights).toBe(0);
  });
});

// Recorded from kiln before the LayerStep contracts (commit 8ec3245) on these inputs: the keys
// (and the image) must stay byte-identical, or every user's cache would miss after an upgrade.
const GOLDEN_DOCKERFILE = `FROM scratch
ARG V=1
ENV E=e
LABEL a=b
COPY a.txt /app/
COPY --chown=1000:1000 --chmod=0600 a.txt /app/owned.txt
ADD <<EOF /app/h.txt
hello
EOF
WORKDIR /app/sub
RUN echo hi $V
RUN --mount=type=bind,source=a.txt,target=/m echo mounted
SHELL ["/bin/bash","-c"]
RUN ["/bin/true", "x"]
RUN echo bash
USER 1000
WORKDIR /w2
FROM scratch AS second
ARG V
COPY --from=0 /app/a.txt /b.txt
COPY --link a.txt /c.txt
WORKDIR rel
`;

// Recorded from the builder before the step contracts (commit 8ec3245), then once more when
// FROM scratch gained WorkingDir "/" (BuildKit's empty image, issue #18): COPY/ADD keys carry the
// working directory, so the scratch stages' keys before their first WORKDIR changed with it.
const GOLDEN_STEPS: Array<[string, number, string, string]> = [
    ["stage-0", 5, "COPY a.txt /app/", "sha256:a1ec83b26429f8479ca0c72577ac8cf156e88749aeaafb0f9fa2655e7dfe41db"],
    ["stage-0", 6, "COPY --chown=1000:1000 --chmod=0600 a.txt /app/owned.txt", "sha256:24278365eab8f34c77985faefb122f2e17bbd623b146de9c0907d549bdf85a63"],
    ["stage-0", 7, "ADD <<EOF /app/h.txt", "sha256:de112fe8fe1e080776a50f5505666d917dc11d2464c9f7b45809c3121635fb4c"],
    ["stage-0", 8, "WORKDIR /app/sub", "sha256:b5322b599cec15abd35316d80ab2e2a8fb4c2e9a6069b4bd39b48b808b654b90"],
    ["stage-0", 9, "RUN echo hi $V", "sha256:57dfd11d3010460d88bba1909cf3dc3f6ce6356f0ca7962a89fb84d7896e602c"],
    ["stage-0", 10, "RUN --mount=type=bind,source=a.txt,target=/m echo mounted", "sha256:9d21355ad60a6d7fc75220900966430fbc1dd19432041998d4c99efcc2629936"],
    ["stage-0", 12, "RUN [\"/bin/true\", \"x\"]", "sha256:69499188f2fca731d520ad3fb105d2b63856ce38a95ff7f782ce8410f840abdf"],
    ["stage-0", 13, "RUN echo bash", "sha256:9d28342f5d30bccab2b5e2afef76186667f471e6140b085a102a158aede52944"],
    ["stage-0", 15, "WORKDIR /w2", "sha256:813d79082e3e4278e4b0ce5c703ff3de496c32a8bebd316f43770dc20c6f2328"],
    ["second", 3, "COPY --from=0 /app/a.txt /b.txt", "sha256:4d8ac7744c3cc8c1d3840cb7699a1d60ed186d21493d81d4e4c443af88c814bc"],
    ["second", 4, "COPY --link a.txt /c.txt", "sha256:63de795aac3da1e0c90cc863de66fd2027f43a5a22ff18ba9540e6f36b44daaf"],
    ["second", 5, "WORKDIR rel", "sha256:39c6f12eefdc27ee90493df1c3b10cad0696b3a98cf1b5d96a4853a545a54047"]
];

describe("cache keys", () => {
  it("are byte-identical to the keys of the builder before the step contracts", async () => {
    const engine = new FakeEngine();
    const { result, steps } = await run(engine, GOLDEN_DOCKERFILE, await mkdtemp(join(root, "cache-golden-")), { buildArgs: { V: "7" } });
    expect(steps.map((s) => [s.stage, s.step, s.instruction, s.key])).toEqual(GOLDEN_STEPS);
    expect(result.digest).toBe("sha256:eb2347cc334f26f00ca744210786fa3b531b4ed12248bfda2d9440127259fa5a");
    // the RUN steps saw the build arg, the SHELL and the bind mount
    expect(engine.runs.map((r) => r.argv)).toEqual([
      ["/bin/sh", "-c", "echo hi $V"],
      ["/bin/sh", "-c", "echo mounted"],
      ["/bin/true", "x"],
      ["/bin/bash", "-c", "echo bash"],
    ]);
    expect(engine.runs[0]!.env).toContain("V=7");
    expect(engine.runs[1]!.mounts?.map((m) => [m.type, m.target, m.readonly])).toEqual([["bind", "/m", true]]);
  });
});
