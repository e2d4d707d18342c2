import { describe, it, expect } from "vitest";
import { parseDockerfile } from "../../src/frontend/parse.js";
import {
  ArgScope,
  automaticPlatformArgs,
  planBuild,
  resolveStageRef,
  type BuildPlan,
  type PlanOptions,
} from "../../src/frontend/plan.js";
import { hostPlatform } from "../../src/image/platform.js";
import { expandInstruction } from "../../src/frontend/expand-instruction.js";
import { DockerfileError, UsageError } from "../../src/errors.js";

function plan(text: string, options: PlanOptions = {}): BuildPlan {
  return planBuild(parseDockerfile(text), options);
}

function planError(text: string, options: PlanOptions = {}): Error {
  try {
    plan(text, options);
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    return e as Error;
  }
  throw new Error("expected the plan to fail");
}

const amd64 = { os: "linux", architecture: "amd64" };
const arm7 = { os: "linux", architecture: "arm", variant: "v7" };

/** Walk a stage with ArgScope the way the engine does; returns the values after each ARG. */
function walkArgs(p: BuildPlan, stage: number, buildArgs: Record<string, string> = {}): Map<string, string> {
  const scope = new ArgScope(p, buildArgs);
  for (const t of p.stages[stage].instructions) {
    if (t.kind === "arg") for (const a of t.args) scope.declare(a, scope.env(), t.line);
  }
  return scope.values();
}

describe("stages and bases", () => {
  it("resolves scratch, images, earlier stages and named contexts", () => {
    const p = plan(
      [
        "FROM scratch AS Base",
        "FROM base AS two",
        "FROM alpine:3.20",
        "FROM mycontext AS four",
        "FROM later AS five",
        "FROM two AS later",
      ].join("\n") + "\n",
      { namedContexts: ["mycontext"] },
    );
    expect(p.stages.map((s) => s.base)).toEqual([
      { kind: "scratch" },
      { kind: "stage", index: 0 },
      { kind: "image", ref: "alpine:3.20" },
      { kind: "context", name: "mycontext" },
      { kind: "image", ref: "later" }, // a LATER stage's name is an image, as in Docker
      { kind: "stage", index: 1 },
    ]);
    expect(p.stages[0]).toMatchObject({ name: "base", originalName: "Base", line: 1, index: 0 });
    expect(p.stages[2].name).toBeUndefined();
    expect(p.target).toBe(5);
    expect(p.order).toEqual([0, 1, 5]);
    expect(p.stages.map((s) => s.needed)).toEqual([true, true, false, false, false, true]);
  });

  it("rejects duplicate stage names case-insensitively, naming both lines", () => {
    const e = planError("FROM scratch AS build\nRUN true\nFROM scratch AS BUILD\n");
    expect(e).toBeInstanceOf(DockerfileError);
    expect(e.message).toBe('Dockerfile:3: FROM: duplicate stage name "BUILD" (first defined on line 1)');
  });

  it("rejects invalid stage names", () => {
    expect(planError("FROM scratch AS 9lives\n").message).toMatch(/^Dockerfile:1: FROM: invalid stage name "9lives"/);
    expect(planError("FROM scratch AS a$b\n").message).toMatch(/invalid stage name/);
  });

  it("requires a FROM and only ARG before it", () => {
    expect(planError("ARG A=1\n").message).toBe("Dockerfile: no FROM instruction: the Dockerfile has no build stage");
    expect(planError("ARG A=1\nRUN true\nFROM scratch\n", { file: "x/Dockerfile" }).message).toBe(
      "x/Dockerfile:2: RUN: only ARG may come before the first FROM",
    );
  });

  it("warns about reserved stage names and passes parse warnings on", () => {
    const p = plan("FROM busybox AS scratch\nRUN echo a \\\n\n  b\n");
    expect(p.warnings.map((w) => w.rule)).toContain("ReservedStageName");
    expect(p.warnings.some((w) => w.rule !== "ReservedStageName" && w.line > 0)).toBe(true);
  });

  it("a --from that expands to nothing is the build context, not a dependency", () => {
    const p = plan("FROM scratch AS a\nFROM scratch\nARG SRC\nCOPY --from=$SRC /x /x\n");
    expect(p.stages[1].dependsOn).toEqual([]);
    expect(p.order).toEqual([1]);
  });

  it("detects dependency cycles", () => {
    const e = planError("FROM scratch AS a\nCOPY --from=b /x /x\nFROM a AS b\n");
    expect(e.message).toMatch(/circular dependency between stages: (a -> b -> a|b -> a -> b)/);
  });
});

describe("--target pruning and order", () => {
  const text = [
    "FROM scratch AS deps", // 0
    "FROM scratch AS tools", // 1
    "FROM scratch AS unused", // 2
    "FROM deps AS build", // 3
    "COPY --from=1 /bin/tool /bin/tool",
    "RUN --mount=type=bind,from=assets,target=/a true",
    "FROM scratch AS assets", // 4
    "FROM scratch AS final", // 5
    "COPY --from=build /out /out",
    "COPY --from=busybox:latest /bin/sh /bin/sh",
  ].join("\n") + "\n";

  it("builds only what the target needs, dependencies first", () => {
    const p = plan(text);
    expect(p.target).toBe(5);
    expect(p.stages[3].dependsOn).toEqual([0, 1, 4]);
    expect(p.stages[5].dependsOn).toEqual([3]);
    expect(p.order).toEqual([0, 1, 4, 3, 5]);
    expect(p.stages[2].needed).toBe(false);
  });

  it("selects the target by name, case-insensitively", () => {
    const p = plan(text, { target: "BUILD" });
    expect(p.target).toBe(3);
    expect(p.order).toEqual([0, 1, 4, 3]);
    expect(p.stages.filter((s) => s.needed).map((s) => s.name)).toEqual(["deps", "tools", "build", "assets"]);
  });

  it("lists the stage names when the target is unknown", () => {
    const e = planError(text, { target: "prod" });
    expect(e).toBeInstanceOf(UsageError);
    expect(e.message).toBe(
      'target stage "prod" could not be found in Dockerfile (stages: deps, tools, unused, build, assets, final)',
    );
  });

  it("rejects --from indexes that don't exist or point at the stage itself", () => {
    expect(planError("FROM scratch\nCOPY --from=3 /a /b\n").message).toMatch(/^Dockerfile:2: COPY: --from=3: there is no stage 3/);
    expect(planError("FROM scratch AS a\nCOPY --from=a /a /b\n").message).toMatch(/refers to the stage it is used in/);
  });

  it("expands --from with the ARGs the stage declared", () => {
    const df = [
      "ARG SRC=one",
      "FROM scratch AS one",
      "FROM scratch AS two",
      "FROM scratch",
      "ARG SRC",
      "COPY --from=$SRC /a /a",
      "ARG M=two",
      "RUN --mount=from=${M},target=/m true",
    ].join("\n") + "\n";
    expect(plan(df).stages[2].dependsOn).toEqual([0, 1]);
    expect(plan(df).order).toEqual([0, 1, 2]);
    // a build arg changes which stage is needed
    const p = plan(df, { buildArgs: { SRC: "two" } });
    expect(p.stages[2].dependsOn).toEqual([1]);
    expect(p.stages[0].needed).toBe(false);
  });

  it("expands --from with ENV inherited from a parent stage", () => {
    const df = [
      "FROM scratch AS src",
      "FROM scratch AS parent",
      "ENV FROM_STAGE=src",
      "FROM parent",
      "COPY --from=${FROM_STAGE} /a /a",
    ].join("\n") + "\n";
    expect(plan(df).stages[2].dependsOn).toEqual([0, 1]);
  });

  it("resolveStageRef: stage by name or index, named context, image", () => {
    const p = plan("FROM scratch AS a\nFROM scratch AS b\n", { namedContexts: ["ctx"] });
    expect(resolveStageRef(p, "A", 1)).toEqual({ kind: "stage", index: 0 });
    expect(resolveStageRef(p, "0", 1)).toEqual({ kind: "stage", index: 0 });
    expect(resolveStageRef(p, "ctx", 1)).toEqual({ kind: "context", name: "ctx" });
    expect(resolveStageRef(p, "alpine", 1)).toEqual({ kind: "image", ref: "alpine" });
  });
});

describe("ARG scoping", () => {
  const df = [
    "ARG VERSION=1.0",
    "ARG REG=docker.io",
    "ARG BASE=$REG/library/busybox:$VERSION",
    "FROM $BASE AS first",
    "RUN echo $VERSION",
    "ARG VERSION",
    "ARG OWN=own-$VERSION",
    "FROM --platform=$BUILDPLATFORM busybox:${VERSION}-$TARGETARCH AS second",
    "ARG TARGETPLATFORM",
    "ARG REG=stage-default",
    "ARG UNSET",
  ].join("\n") + "\n";

  it("uses global ARGs and automatic platform ARGs in FROM", () => {
    const p = plan(df, { targetPlatform: arm7, buildPlatform: amd64 });
    expect(p.globalArgs).toEqual([
      { name: "VERSION", default: "1.0" },
      { name: "REG", default: "docker.io" },
      { name: "BASE", default: "$REG/library/busybox:$VERSION" },
    ]);
    expect(p.globalValues).toEqual({ VERSION: "1.0", REG: "docker.io", BASE: "docker.io/library/busybox:1.0" });
    expect(p.stages[0].from.image).toBe("docker.io/library/busybox:1.0");
    expect(p.stages[0].base).toEqual({ kind: "image", ref: "docker.io/library/busybox:1.0" });
    expect(p.stages[1].from.image).toBe("busybox:1.0-arm");
    expect(p.stages[1].platform).toBe("linux/amd64");
    expect(p.automaticArgs).toEqual({
      TARGETPLATFORM: "linux/arm/v7", TARGETOS: "linux", TARGETARCH: "arm", TARGETVARIANT: "v7",
      BUILDPLATFORM: "linux/amd64", BUILDOS: "linux", BUILDARCH: "amd64", BUILDVARIANT: "",
    });
    // The stage body is kept unexpanded.
    expect(p.stages[0].instructions[0]).toMatchObject({ kind: "run", command: ["echo $VERSION"] });
  });

  it("--build-arg overrides global defaults", () => {
    const p = plan(df, { buildArgs: { VERSION: "2.0" } });
    expect(p.stages[0].from.image).toBe("docker.io/library/busybox:2.0");
    expect(walkArgs(p, 0, { VERSION: "2.0" }).get("VERSION")).toBe("2.0");
  });

  it("a global ARG is invisible in a stage until re-declared", () => {
    const p = plan(df, { targetPlatform: amd64, buildPlatform: amd64 });
    const scope = new ArgScope(p, {});
    // Before `ARG VERSION`: $VERSION is not visible to the stage.
    expect(scope.values().has("VERSION")).toBe(false);
    expect(expandInstruction(typeWorkdir("/v$VERSION"), scope.env(), { escapeToken: "\\" })).toMatchObject({ path: "/v" });
    const vals = walkArgs(p, 0);
    expect(vals.get("VERSION")).toBe("1.0");
    expect(vals.get("OWN")).toBe("own-1.0");
    expect(vals.has("REG")).toBe(false);
  });

  it("stage defaults beat global defaults; build args beat both; automatic args need ARG", () => {
    const p = plan(df, { targetPlatform: amd64, buildPlatform: amd64 });
    const vals = walkArgs(p, 1);
    expect(vals.get("REG")).toBe("stage-default");
    expect(vals.get("TARGETPLATFORM")).toBe("linux/amd64");
    expect(vals.has("TARGETARCH")).toBe(false);
    expect(vals.has("UNSET")).toBe(false);
    expect(walkArgs(p, 1, { REG: "cli" }).get("REG")).toBe("cli");
    const scope = new ArgScope(p, {});
    scope.declare({ name: "UNSET" });
    expect(scope.isDeclared("UNSET")).toBe(true);
    expect(scope.values().has("UNSET")).toBe(false);
  });

  it("ArgScope.inherit starts a stage with its parent's ARGs; re-declaring keeps or replaces them", () => {
    const p = plan("ARG G=global\nFROM scratch AS parent\nARG A=1\nFROM parent\n");
    const parent = new ArgScope(p, { B: "cli" });
    parent.declare({ name: "A", default: "1" });
    parent.declare({ name: "B" });
    const child = new ArgScope(p, { B: "cli" });
    child.inherit(parent.snapshot());
    expect(child.isDeclared("A")).toBe(true);
    expect(child.values()).toEqual(new Map([["A", "1"], ["B", "cli"]]));
    expect(child.declare({ name: "A" })).toBe("1"); // no default, build arg or global: inherited value
    expect(child.declare({ name: "A", default: "2" })).toBe("2");
    expect(child.declare({ name: "G" })).toBe("global");
    // the snapshot is a copy: the child's changes do not reach the parent
    expect(parent.values().get("A")).toBe("1");
  });

  it("ENV shadows ARG in ArgScope.env", () => {
    const p = plan("FROM scratch\n");
    const scope = new ArgScope(p, { A: "arg" });
    scope.declare({ name: "A" });
    expect(scope.env(new Map([["A", "env"]])).get("A")).toBe("env");
    expect(scope.values().get("A")).toBe("arg");
  });

  it("defaults to the host platform", () => {
    const p = plan("FROM scratch\n");
    const host = hostPlatform();
    expect(p.automaticArgs).toEqual(automaticPlatformArgs(host, host));
    const expected = process.arch === "x64" ? "amd64" : process.arch === "arm64" ? "arm64" : p.automaticArgs.TARGETARCH;
    expect(p.automaticArgs.TARGETARCH).toBe(expected);
    expect(p.automaticArgs.TARGETOS).toBe("linux");
  });

  it("warns about build args no ARG declares", () => {
    const p = plan(df, { buildArgs: { VERSION: "3", NOPE: "x", HTTP_PROXY: "http://p" } });
    expect(p.warnings.filter((w) => w.rule === "UnusedBuildArg").map((w) => w.message)).toEqual([
      'build arg "NOPE" is not declared by any ARG in the Dockerfile',
    ]);
  });
});

function typeWorkdir(path: string) {
  const p = plan(`FROM scratch\nWORKDIR ${path}\n`);
  return p.stages[0].instructions[0];
}
