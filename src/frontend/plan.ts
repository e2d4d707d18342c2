// The build plan: a parsed Dockerfile turned into its stages graph. Owns ARG scoping (global ARGs,
// --build-arg overrides, automatic platform ARGs), FROM expansion and base resolution (scratch,
// earlier stage, named context, image), stage dependencies (FROM, COPY --from, RUN --mount from=)
// and --target pruning with a dependency-first build order. Also exports ArgScope, which the
// build engine uses to track a stage's ARG values while it walks the stage's instructions.
import type { DockerfileAST } from "./ast.js";
import type { Platform } from "../image/oci.js";
import { formatPlatform, hostPlatform } from "../image/platform.js";
import { codeOf, DockerfileError, KilnError, UsageError } from "../errors.js";
import { expandWord } from "./expand.js";
import { expandInstruction, type ExpandEnv } from "./expand-instruction.js";
import {
  type ArgDeclaration,
  type FromInstruction,
  type TypedInstruction,
  typeInstruction,
} from "./instructions.js";
import type { Diagnostic } from "./diagnostic.js";

export interface PlanOptions {
  file?: string;
  /** Stage to build (name, case-insensitive); default: the last stage. */
  target?: string;
  buildArgs?: Record<string, string>;
  /** Default: the host platform. */
  targetPlatform?: Platform;
  /** Default: the host platform. */
  buildPlatform?: Platform;
  /** Names given with --build-context: a FROM / --from naming one uses that context. */
  namedContexts?: string[];
}

export type StageBase =
  | { kind: "scratch" }
  | { kind: "stage"; index: number }
  | { kind: "context"; name: string }
  | { kind: "image"; ref: string };

export interface PlannedStage {
  index: number;
  /** Stage name lower-cased (what --target, FROM and --from match against). */
  name?: string;
  /** Stage name as written in `FROM ... AS Name`. */
  originalName?: string;
  /** Line of the FROM. */
  line: number;
  /** The FROM, expanded with the global ARGs, --build-arg overrides and automatic platform ARGs. */
  from: FromInstruction;
  base: StageBase;
  /** The expanded --platform of the FROM, if any. */
  platform?: string;
  /** The stage body after FROM, typed but unexpanded. */
  instructions: TypedInstruction[];
  /** Indexes of the stages this one needs (FROM, COPY --from, RUN --mount from=), ascending. */
  dependsOn: number[];
  /** True when the target needs this stage (it is in `order`). */
  needed: boolean;
}

export interface GlobalArg {
  name: string;
  /** Default as written (unexpanded). */
  default?: string;
}

export interface BuildPlan {
  stages: PlannedStage[];
  /** Index of the target stage. */
  target: number;
  /** Stages the target needs, each after its dependencies; unused stages are pruned. */
  order: number[];
  /** ARGs declared before the first FROM, in order. */
  globalArgs: GlobalArg[];
  /** TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT, BUILDPLATFORM, BUILDOS, BUILDARCH, BUILDVARIANT. */
  automaticArgs: Record<string, string>;
  warnings: Diagnostic[];
  // --- additive fields the engine needs ---
  /** Resolved values of the global ARGs that have one (build arg, else expanded default). */
  globalValues: Record<string, string>;
  /** The --build-arg values the plan was made with. */
  buildArgs: Record<string, string>;
  escapeToken: "\\" | "`";
  file: string;
  namedContexts: string[];
}

/** Build args every Dockerfile may use without declaring them (Docker's predefined ARGs). */
export const PREDEFINED_ARGS: readonly string[] = [
  "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
  "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
];

/** The automatic platform ARGs for a target and build platform. */
export function automaticPlatformArgs(target: Platform, build: Platform): Record<string, string> {
  const variant = (p: Platform): string => (p.variant && !(p.architecture === "arm64" && p.variant === "v8") ? p.variant : "");
  return {
    TARGETPLATFORM: formatPlatform(target),
    TARGETOS: target.os,
    TARGETARCH: target.architecture,
    TARGETVARIANT: variant(target),
    BUILDPLATFORM: formatPlatform(build),
    BUILDOS: build.os,
    BUILDARCH: build.architecture,
    BUILDVARIANT: variant(build),
  };
}

/**
 * ARG values visible inside one stage, tracked while walking its instructions in order.
 *
 * Docker's rules, which this implements:
 * - Nothing is visible at the start of a stage: global ARGs (declared before the first FROM) and
 *   the automatic platform ARGs become visible only once the stage says `ARG NAME`.
 * - On `ARG NAME[=default]` the value is, in order of precedence: the --build-arg value; the
 *   stage's own default (expanded against `env`); the global ARG's resolved value; the automatic
 *   platform value; otherwise the ARG is declared but unset (expansions give "").
 * - Re-declaring `ARG NAME` without a default keeps the value it already had.
 * - A stage built `FROM` another stage starts with that stage's ARGs (names and values as they
 *   were after its last instruction), as BuildKit's dispatchState.init does: the child's state is
 *   the parent's, whose environment holds the ARG values (see inherit()).
 *
 * ENV values shadow ARG values of the same name in expansions; callers merge them (see env()).
 */
/** The ARGs a stage hands to the stages built FROM it. */
export interface InheritedArgs {
  readonly names: readonly string[];
  readonly values: ReadonlyMap<string, string>;
}

export class ArgScope {
  private readonly vals = new Map<string, string>();
  private readonly names = new Set<string>();
  private readonly buildArgs: Record<string, string>;

  constructor(
    private readonly plan: Pick<BuildPlan, "globalValues" | "automaticArgs" | "escapeToken" | "file"> & {
      buildArgs?: Record<string, string>;
    },
    buildArgs?: Record<string, string>,
  ) {
    this.buildArgs = buildArgs ?? plan.buildArgs ?? {};
  }

  /**
   * Handle one `ARG name[=default]`. `env` is what the default expands against (normally the
   * stage environment: this scope's values overlaid with ENV); defaults to values().
   * Returns the ARG's value, or undefined when it is declared but unset.
   * `line` is used for the error if the default doesn't expand.
   */
  declare(arg: ArgDeclaration, env?: ExpandEnv, line = 0): string | undefined {
    this.names.add(arg.name);
    let value: string | undefined;
    if (Object.prototype.hasOwnProperty.call(this.buildArgs, arg.name)) {
      value = this.buildArgs[arg.name];
    } else if (arg.default !== undefined) {
      try {
        value = expandWord(arg.default, env ?? this.vals, { escapeToken: this.plan.escapeToken });
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        throw new DockerfileError("DOCKERFILE_EXPANSION", msg, line, this.plan.file, { instruction: "ARG" });
      }
    } else if (Object.prototype.hasOwnProperty.call(this.plan.globalValues, arg.name)) {
      value = this.plan.globalValues[arg.name];
    } else if (Object.prototype.hasOwnProperty.call(this.plan.automaticArgs, arg.name)) {
      value = this.plan.automaticArgs[arg.name];
    } else {
      value = this.vals.get(arg.name);
    }
    if (value !== undefined) this.vals.set(arg.name, value);
    return value;
  }

  /**
   * Start from the ARGs of the stage this one is built FROM (call before any instruction).
   * Their values then behave as if declared here: RUN sees them, expansions use them, and a
   * re-declaration without a default keeps them.
   */
  inherit(parent: InheritedArgs): void {
    for (const n of parent.names) this.names.add(n);
    for (const [k, v] of parent.values) this.vals.set(k, v);
  }

  /** The names and values a stage built FROM this one inherits (a copy). */
  snapshot(): InheritedArgs {
    return { names: [...this.names], values: new Map(this.vals) };
  }

  /** The declared ARGs that have a value (a copy). */
  values(): Map<string, string> {
    return new Map(this.vals);
  }

  /** Whether `ARG name` was declared in this stage (with or without a value). */
  isDeclared(name: string): boolean {
    return this.names.has(name);
  }

  /** ARG values overlaid with the given ENV values (ENV wins, as in Docker). */
  env(envValues?: ReadonlyMap<string, string>): Map<string, string> {
    const out = new Map(this.vals);
    if (envValues) for (const [k, v] of envValues) out.set(k, v);
    return out;
  }
}

/** Where a `--from` / `from=` value points, seen from stage `fromStage`. */
export function resolveStageRef(
  plan: Pick<BuildPlan, "stages" | "namedContexts">,
  ref: string,
  fromStage: number,
): StageBase {
  if (/^\d+$/.test(ref)) {
    const n = Number(ref);
    if (n >= plan.stages.length) {
      throw new KilnError("DOCKERFILE_STAGE_REFERENCE", `--from=${ref}: there is no stage ${n} (stages are numbered 0-${plan.stages.length - 1})`);
    }
    if (n === fromStage) throw new KilnError("DOCKERFILE_STAGE_REFERENCE", `--from=${ref} refers to the stage it is used in`);
    return { kind: "stage", index: n };
  }
  const lower = ref.toLowerCase();
  const stage = plan.stages.find((s) => s.name === lower);
  if (stage) {
    if (stage.index === fromStage) throw new KilnError("DOCKERFILE_STAGE_REFERENCE", `--from=${ref} refers to the stage it is used in`);
    return { kind: "stage", index: stage.index };
  }
  if (plan.namedContexts.includes(ref) || plan.namedContexts.includes(lower)) return { kind: "context", name: ref };
  if (lower === "scratch") return { kind: "scratch" };
  return { kind: "image", ref };
}

/** Collects recoverable errors instead of throwing (used by lint). */
export type ErrorSink = (error: DockerfileError | KilnError) => void;

/** Plan a build. Throws DockerfileError for mistakes in the file, UsageError for a bad --target. */
export function planBuild(ast: DockerfileAST, options: PlanOptions = {}): BuildPlan {
  const plan = planWith(ast, options, undefined);
  // Without a sink every problem throws, so a plan always comes back.
  if (!plan) throw new DockerfileError("DOCKERFILE_PLAN", "no FROM instruction: the Dockerfile has no build stage", 0, options.file ?? "Dockerfile");
  return plan;
}

/**
 * Plan a build but keep going past bad instructions, reporting each error to `sink`. Returns the
 * plan when one could be made (undefined when there is no stage at all).
 */
export function planBuildCollecting(ast: DockerfileAST, options: PlanOptions, sink: ErrorSink): BuildPlan | undefined {
  return planWith(ast, options, sink);
}

function planWith(ast: DockerfileAST, options: PlanOptions, sink: ErrorSink | undefined): BuildPlan | undefined {
  const file = options.file ?? "Dockerfile";
  const escapeToken = ast.escapeToken;
  const buildArgs = { ...(options.buildArgs ?? {}) };
  const namedContexts = [...(options.namedContexts ?? [])];
  const host = hostPlatform();
  const automaticArgs = automaticPlatformArgs(options.targetPlatform ?? host, options.buildPlatform ?? host);
  const warnings: Diagnostic[] = ast.warnings.map((w) => ({
    file,
    line: w.line,
    severity: "warning",
    rule: /empty continuation/i.test(w.message) ? "NoEmptyContinuation" : "ParseWarning",
    message: w.message,
  }));
  const report = (e: unknown): void => {
    if (sink && e instanceof KilnError) sink(e);
    else throw e;
  };

  // 1. Type every instruction and split into the global prelude and stages.
  const globalArgs: GlobalArg[] = [];
  const globalArgLines: number[] = [];
  const rawStages: { from: FromInstruction; body: TypedInstruction[] }[] = [];
  for (const node of ast.instructions) {
    let t: TypedInstruction;
    try {
      t = typeInstruction(node, file);
    } catch (e) {
      report(e);
      continue;
    }
    if (t.kind === "from") {
      rawStages.push({ from: t, body: [] });
    } else if (rawStages.length === 0) {
      if (t.kind === "arg") {
        for (const a of t.args) {
          globalArgs.push(a.default !== undefined ? { name: a.name, default: a.default } : { name: a.name });
          globalArgLines.push(t.line);
        }
      } else {
        report(new DockerfileError("DOCKERFILE_PLAN", "only ARG may come before the first FROM", t.line, file, { instruction: t.kind.toUpperCase() }));
      }
    } else {
      rawStages[rawStages.length - 1].body.push(t);
    }
  }
  if (rawStages.length === 0) {
    report(new DockerfileError("DOCKERFILE_PLAN", "no FROM instruction: the Dockerfile has no build stage", 0, file));
    return undefined;
  }

  // 2. Resolve the global ARGs (build args win; defaults expand with earlier globals + automatic).
  const globalEnv = new Map<string, string>(Object.entries(automaticArgs));
  const globalValues: Record<string, string> = {};
  globalArgs.forEach((a, i) => {
    let value: string | undefined;
    if (Object.prototype.hasOwnProperty.call(buildArgs, a.name)) value = buildArgs[a.name];
    else if (a.default !== undefined) {
      try {
        value = expandWord(a.default, globalEnv, { escapeToken });
      } catch (e) {
        report(new DockerfileError(codeOf(e, "DOCKERFILE_EXPANSION"), e instanceof Error ? e.message : String(e), globalArgLines[i], file, { instruction: "ARG", cause: e }));
        value = undefined;
      }
    } else if (Object.prototype.hasOwnProperty.call(automaticArgs, a.name)) value = automaticArgs[a.name];
    if (value !== undefined) {
      globalEnv.set(a.name, value);
      globalValues[a.name] = value;
    }
  });

  // 3. Stages: expand FROM, check names, resolve bases.
  const stages: PlannedStage[] = [];
  const nameLines = new Map<string, number>();
  for (const [index, raw] of rawStages.entries()) {
    let from: FromInstruction = raw.from;
    try {
      from = expandInstruction(raw.from, globalEnv, { escapeToken, file }) as FromInstruction;
    } catch (e) {
      report(e);
    }
    const stage: PlannedStage = {
      index,
      line: raw.from.line,
      from,
      base: { kind: "image", ref: from.image },
      instructions: raw.body,
      dependsOn: [],
      needed: false,
    };
    if (from.platform !== undefined) stage.platform = from.platform;
    if (raw.from.stageName !== undefined) {
      const lower = raw.from.stageName.toLowerCase();
      const first = nameLines.get(lower);
      if (first !== undefined) {
        report(new DockerfileError("DOCKERFILE_PLAN", `duplicate stage name ${JSON.stringify(raw.from.stageName)} (first defined on line ${first})`, raw.from.line, file, { instruction: "FROM" }));
      } else {
        nameLines.set(lower, raw.from.line);
        stage.name = lower;
        stage.originalName = raw.from.stageName;
      }
      if (lower === "scratch" || lower === "context") {
        warnings.push({
          file, line: raw.from.line, severity: "warning", rule: "ReservedStageName",
          message: `"${raw.from.stageName}" is reserved and should not be used as a stage name`,
        });
      }
    }
    const baseLower = from.image.toLowerCase();
    const earlier = stages.find((s) => s.name === baseLower);
    if (earlier) stage.base = { kind: "stage", index: earlier.index };
    else if (namedContexts.includes(from.image) || namedContexts.includes(baseLower)) stage.base = { kind: "context", name: from.image };
    else if (baseLower === "scratch") stage.base = { kind: "scratch" };
    else stage.base = { kind: "image", ref: from.image };
    stages.push(stage);
  }

  const plan: BuildPlan = {
    stages,
    target: stages.length - 1,
    order: [],
    globalArgs,
    automaticArgs,
    warnings,
    globalValues,
    buildArgs,
    escapeToken,
    file,
    namedContexts,
  };

  // 4. Dependencies: FROM <stage>, COPY --from, RUN --mount from=. Values holding "$" are expanded
  //    with what the plan knows at that point (stage ARGs, build args, ENV set in the file).
  const stageEnv: Map<string, string>[] = [];
  const stageArgs: InheritedArgs[] = [];
  // Tracking ARG/ENV values costs map copies; only do it for stages where a --from value needs
  // expanding, and for the stages they inherit ENV from.
  const envNeeded = stages.map((s) =>
    s.instructions.some(
      (t) => (t.kind === "copy" && t.from?.includes("$")) || (t.kind === "run" && t.mounts.some((m) => m.from?.includes("$"))),
    ),
  );
  for (let j = stages.length - 1; j >= 0; j--) {
    const b = stages[j].base;
    if (envNeeded[j] && b.kind === "stage") envNeeded[b.index] = true;
  }
  for (const stage of stages) {
    const deps = new Set<number>();
    if (stage.base.kind === "stage") deps.add(stage.base.index);
    const scope = new ArgScope(plan, buildArgs);
    if (stage.base.kind === "stage") scope.inherit(stageArgs[stage.base.index]!);
    const envVals = new Map<string, string>(stage.base.kind === "stage" ? stageEnv[stage.base.index] : []);
    const resolveRef = (value: string, line: number, what: string): void => {
      let ref = value;
      if (ref.includes("$")) {
        try {
          ref = expandWord(ref, scope.env(envVals), { escapeToken });
        } catch (e) {
          report(new DockerfileError(codeOf(e, "DOCKERFILE_PLAN"), e instanceof Error ? e.message : String(e), line, file, { instruction: what, cause: e }));
          return;
        }
      }
      if (ref === "") return; // expands to nothing: the build context, as in BuildKit
      try {
        const target = resolveStageRef(plan, ref, stage.index);
        if (target.kind === "stage") deps.add(target.index);
      } catch (e) {
        report(new DockerfileError(codeOf(e, "DOCKERFILE_PLAN"), e instanceof Error ? e.message : String(e), line, file, { instruction: what, cause: e }));
      }
    };
    const needsEnv = envNeeded[stage.index];
    for (const t of stage.instructions) {
      try {
        if (!needsEnv && (t.kind === "arg" || t.kind === "env")) continue;
        if (t.kind === "arg") {
          for (const a of t.args) scope.declare(a, scope.env(envVals), t.line);
        } else if (t.kind === "env") {
          const expanded = expandInstruction(t, scope.env(envVals), { escapeToken, file });
          if (expanded.kind === "env") for (const p of expanded.pairs) envVals.set(p.key, p.value);
        } else if (t.kind === "copy" && t.from !== undefined) {
          resolveRef(t.from, t.line, "COPY");
        } else if (t.kind === "run") {
          for (const m of t.mounts) if (m.from !== undefined) resolveRef(m.from, t.line, "RUN");
        }
      } catch (e) {
        report(e);
      }
    }
    stageEnv.push(envVals);
    stageArgs.push(scope.snapshot());
    stage.dependsOn = [...deps].sort((a, b) => a - b);
  }

  // 5. Target and order.
  if (options.target !== undefined && options.target !== "") {
    const lower = options.target.toLowerCase();
    const found = stages.find((s) => s.name === lower);
    if (!found) {
      const names = stages.filter((s) => s.name !== undefined).map((s) => s.originalName ?? s.name);
      const err = new UsageError("DOCKERFILE_TARGET_UNKNOWN", 
        `target stage ${JSON.stringify(options.target)} could not be found in ${file}` +
          (names.length > 0 ? ` (stages: ${names.join(", ")})` : " (it has no named stages)"),
      );
      if (sink) sink(err);
      else throw err;
    } else {
      plan.target = found.index;
    }
  }
  const state = new Map<number, "visiting" | "done">();
  const order: number[] = [];
  const visit = (i: number, path: number[]): void => {
    const st = state.get(i);
    if (st === "done") return;
    if (st === "visiting") {
      const cycle = [...path.slice(path.indexOf(i)), i].map((j) => stageLabel(stages[j])).join(" -> ");
      throw new DockerfileError("DOCKERFILE_PLAN", `circular dependency between stages: ${cycle}`, stages[i].line, file);
    }
    state.set(i, "visiting");
    for (const d of stages[i].dependsOn) visit(d, [...path, i]);
    state.set(i, "done");
    order.push(i);
  };
  try {
    visit(plan.target, []);
  } catch (e) {
    report(e);
  }
  plan.order = order;
  for (const i of order) stages[i].needed = true;

  // 6. Build args nobody declares.
  const declared = new Set<string>(globalArgs.map((a) => a.name));
  for (const s of stages) for (const t of s.instructions) if (t.kind === "arg") for (const a of t.args) declared.add(a.name);
  for (const name of Object.keys(buildArgs)) {
    if (declared.has(name) || PREDEFINED_ARGS.includes(name) || name.startsWith("BUILDKIT_")) continue;
    warnings.push({
      file, line: 0, severity: "warning", rule: "UnusedBuildArg",
      message: `build arg ${JSON.stringify(name)} is not declared by any ARG in the Dockerfile`,
    });
  }
  return plan;
}

function stageLabel(s: PlannedStage): string {
  return s.originalName ?? String(s.index);
}
