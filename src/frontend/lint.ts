// `kiln lint`: parses, types and plans a Dockerfile, collecting every error it can (continuing
// past a bad instruction) plus warnings modelled on BuildKit's build checks (rule names match
// BuildKit's where the rule exists there).
import { DockerfileError, KilnError } from "../errors.js";
import { parseDockerfile } from "./parse.js";
import { ArgScope, type BuildPlan, type InheritedArgs, planBuildCollecting } from "./plan.js";
import type { Diagnostic } from "./diagnostic.js";
import { expandWordDetailed } from "./expand.js";
import { expandInstruction } from "./expand-instruction.js";
import { type FromInstruction, type TypedInstruction, typeInstruction } from "./instructions.js";
import type { DockerfileAST, Instruction } from "./ast.js";

export type { Diagnostic } from "./diagnostic.js";

export interface LintOptions {
  file?: string;
  buildArgs?: Record<string, string>;
  target?: string;
  namedContexts?: string[];
}

/** BuildKit's SecretsUsedInArgOrEnv: a name whose "_"-separated words include a secret word. */
const SECRET_NAME_RE = /(?:^|_)(?:apikey|auth|credentials?|key|password|pass|pword|passwd|secret|token)(?:_|$)/i;
const SECRET_ALLOW_RE = /public/i;

/** Lint a Dockerfile's text. Never throws for bad input: every problem becomes a Diagnostic. */
export function lintDockerfile(text: string, options: LintOptions = {}): Diagnostic[] {
  const file = options.file ?? "Dockerfile";
  const out: Diagnostic[] = [];
  const warn = (line: number, rule: string, message: string): void => {
    out.push({ file, line, severity: "warning", rule, message });
  };
  const error = (e: unknown, rule: string): void => {
    if (e instanceof DockerfileError) out.push({ file: e.file, line: e.line, severity: "error", rule, message: e.detail });
    else if (e instanceof KilnError && e.code === "DOCKERFILE_TARGET_UNKNOWN") out.push({ file, line: 0, severity: "error", rule: "TargetNotFound", message: e.message });
    else if (e instanceof KilnError) out.push({ file, line: 0, severity: "error", rule, message: e.message });
    else out.push({ file, line: 0, severity: "error", rule, message: e instanceof Error ? e.message : String(e) });
  };

  let ast: DockerfileAST;
  try {
    ast = parseDockerfile(text, { file });
  } catch (e) {
    error(e, "ParseError");
    return out;
  }

  let plan: BuildPlan | undefined;
  try {
    plan = planBuildCollecting(
      ast,
      { file, target: options.target, buildArgs: options.buildArgs, namedContexts: options.namedContexts },
      (e) => error(e, "InvalidInstruction"),
    );
  } catch (e) {
    // Only non-kiln errors escape the sink; lint still reports instead of crashing.
    error(e, "InvalidInstruction");
  }
  if (plan) out.push(...plan.warnings);

  checkInstructionCasing(ast.instructions, warn);

  // Per-instruction rules on the typed instructions (errors were already reported by the plan).
  const typed: TypedInstruction[] = [];
  for (const node of ast.instructions) {
    try {
      typed.push(typeInstruction(node, file));
    } catch {
      // reported by the plan
    }
  }
  const keywordOf = new Map<number, Instruction>();
  for (const node of ast.instructions) keywordOf.set(node.startLine, node);

  for (const t of typed) {
    switch (t.kind) {
      case "from": {
        if (t.stageName !== undefined && t.stageName !== t.stageName.toLowerCase()) {
          warn(t.line, "StageNameCasing", `stage name "${t.stageName}" should be lowercase`);
        }
        const kw = keywordOf.get(t.line)?.original.trim().split(/\s+/)[0] ?? "FROM";
        if (t.asKeyword !== undefined) {
          const fromUpper = kw === kw.toUpperCase();
          const asUpper = t.asKeyword === t.asKeyword.toUpperCase();
          if (fromUpper !== asUpper) {
            warn(t.line, "FromAsCasing", `'${t.asKeyword}' and '${kw}' keywords' casing do not match`);
          }
        }
        break;
      }
      case "maintainer":
        warn(t.line, "MaintainerDeprecated", "MAINTAINER instruction is deprecated in favor of using label");
        break;
      case "cmd":
      case "entrypoint":
        if (t.shellForm && t.heredocs.length === 0) {
          warn(t.line, "JSONArgsRecommended", `JSON arguments recommended for ${t.kind.toUpperCase()} to prevent unintended behavior related to OS signals`);
        }
        break;
      case "env":
      case "label":
        if (t.legacy) {
          warn(t.line, "LegacyKeyValueFormat", `"${t.kind.toUpperCase()} key=value" should be used instead of legacy "${t.kind.toUpperCase()} key value" format`);
        }
        if (t.kind === "env") for (const p of t.pairs) secretCheck(p.key, t.line, "ENV");
        break;
      case "arg":
        for (const a of t.args) secretCheck(a.name, t.line, "ARG");
        break;
      case "expose":
        for (const p of t.ports) {
          const proto = /\/([A-Za-z]+)$/.exec(p)?.[1];
          if (proto !== undefined && proto !== proto.toLowerCase()) {
            warn(t.line, "ExposeProtoCasing", `defined protocol "${proto}" in EXPOSE instruction should be lowercase`);
          }
        }
        break;
      default:
        break;
    }
  }
  function secretCheck(name: string, line: number, kw: string): void {
    if (SECRET_NAME_RE.test(name) && !SECRET_ALLOW_RE.test(name)) {
      warn(line, "SecretsUsedInArgOrEnv", `do not use ARG or ENV instructions for sensitive data (${kw} "${name}")`);
    }
  }

  if (plan) {
    const rawFroms = new Map<number, FromInstruction>();
    for (const t of typed) if (t.kind === "from") rawFroms.set(t.line, t);
    try {
      stageChecks(plan, rawFroms, warn, (e) => error(e, "InvalidExpansion"));
    } catch (e) {
      error(e, "InvalidExpansion");
    }
  }

  out.sort((a, b) => a.line - b.line);
  return applyCheckDirective(dedupe(out), ast);
}

/**
 * BuildKit's `# check=skip=Rule1,Rule2;error=true` directive: skipped rules (or `skip=all`) drop
 * their warnings; `error=true` turns the remaining warnings into errors.
 */
function applyCheckDirective(list: Diagnostic[], ast: DockerfileAST): Diagnostic[] {
  const directive = ast.directives.find((d) => d.name.toLowerCase() === "check");
  if (!directive) return list;
  let skip = new Set<string>();
  let skipAll = false;
  let asErrors = false;
  for (const part of directive.value.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    if (key === "skip") {
      skip = new Set(value.split(",").map((r) => r.trim().toLowerCase()).filter((r) => r !== ""));
      skipAll = skip.has("all");
    } else if (key === "error") {
      asErrors = value.toLowerCase() === "true";
    }
  }
  return list
    .filter((d) => d.severity === "error" || !(skipAll || skip.has(d.rule.toLowerCase())))
    .map((d) => (asErrors && d.severity === "warning" ? { ...d, severity: "error" as const } : d));
}

function stageChecks(
  plan: BuildPlan,
  rawFroms: ReadonlyMap<number, FromInstruction>,
  warn: (line: number, rule: string, message: string) => void,
  error: (e: unknown) => void,
): void {
  // FROM lines: variables that are neither global ARGs nor automatic platform ARGs.
  const globalNames = new Set([...plan.globalArgs.map((a) => a.name), ...Object.keys(plan.automaticArgs)]);
  const globalEnv = new Map<string, string>([...Object.entries(plan.automaticArgs), ...Object.entries(plan.globalValues)]);
  // Whether each stage's inherited environment is fully known (scratch at the root of its chain).
  const envKnown: boolean[] = [];
  const stageEnvs: Map<string, string>[] = [];
  const stageNames: Set<string>[] = [];
  const stageArgs: InheritedArgs[] = [];
  const stageWorkdirSet: boolean[] = [];

  for (const stage of plan.stages) {
    const raw = rawFroms.get(stage.line);
    const rawWords = raw ? [raw.image, ...(raw.platform !== undefined ? [raw.platform] : [])] : [];
    for (const w of rawWords) {
      try {
        const r = expandWordDetailed(w, globalEnv, { escapeToken: plan.escapeToken });
        for (const name of r.unmatched) {
          if (!globalNames.has(name)) {
            warn(stage.line, "UndefinedArgInFrom", `FROM argument '${name}' is not declared`);
          }
        }
      } catch {
        // expansion errors were reported by the plan
      }
    }

    let known: boolean;
    let env: Map<string, string>;
    let names: Set<string>;
    if (stage.base.kind === "scratch") {
      known = true;
      env = new Map();
      names = new Set();
    } else if (stage.base.kind === "stage") {
      known = envKnown[stage.base.index];
      env = new Map(stageEnvs[stage.base.index]);
      names = new Set(stageNames[stage.base.index]);
    } else {
      known = false;
      env = new Map();
      names = new Set();
    }
    const scope = new ArgScope(plan, plan.buildArgs);
    if (stage.base.kind === "stage") scope.inherit(stageArgs[stage.base.index]!);
    const seen = new Map<string, number>();
    let absoluteWorkdir = stage.base.kind === "stage" ? stageWorkdirSet[stage.base.index] : false;

    for (const t of stage.instructions) {
      if (t.kind === "cmd" || t.kind === "entrypoint" || t.kind === "healthcheck") {
        const prev = seen.get(t.kind);
        if (prev !== undefined) {
          warn(prev, "MultipleInstructionsDisallowed", `multiple ${t.kind.toUpperCase()} instructions should not be used in the same stage because only the last one will be used`);
        }
        seen.set(t.kind, t.line);
      }
      const undefinedNames = new Set<string>();
      let expanded: TypedInstruction | undefined;
      try {
        expanded = expandInstruction(t, scope.env(env), {
          escapeToken: plan.escapeToken,
          file: plan.file,
          onUndefined: (n) => {
            if (!scope.isDeclared(n) && !names.has(n)) undefinedNames.add(n);
          },
        });
      } catch (e) {
        if (known || undefinedNames.size === 0) error(e);
      }
      if (known) {
        for (const n of undefinedNames) warn(t.line, "UndefinedVar", `usage of undefined variable '$${n}'`);
      }
      if (t.kind === "arg") {
        for (const a of t.args) {
          try {
            scope.declare(a, scope.env(env), t.line);
          } catch (e) {
            error(e);
          }
        }
      } else if (t.kind === "env" && expanded?.kind === "env") {
        for (const p of expanded.pairs) {
          env.set(p.key, p.value);
          names.add(p.key);
        }
      } else if (t.kind === "workdir") {
        const p = expanded?.kind === "workdir" ? expanded.path : t.path;
        const absolute = p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p) || t.path.startsWith("$");
        if (!absolute && !absoluteWorkdir) {
          warn(t.line, "WorkdirRelativePath", `relative workdir "${t.path}" can have unexpected results if the base image changes`);
        }
        absoluteWorkdir = true;
      }
    }
    stageWorkdirSet.push(absoluteWorkdir);
    envKnown.push(known);
    stageEnvs.push(env);
    stageNames.push(names);
    stageArgs.push(scope.snapshot());
  }
}

/** ConsistentInstructionCasing: keywords should be all upper or all lower case, like the majority. */
function checkInstructionCasing(nodes: Instruction[], warn: (line: number, rule: string, message: string) => void): void {
  const words = nodes.map((n) => ({ n, kw: n.original.trim().split(/\s+/)[0] ?? "" }));
  let upper = 0;
  let lower = 0;
  for (const { kw } of words) {
    if (kw === kw.toUpperCase()) upper++;
    else if (kw === kw.toLowerCase()) lower++;
  }
  const wantUpper = upper >= lower;
  for (const { n, kw } of words) {
    const ok = wantUpper ? kw === kw.toUpperCase() : kw === kw.toLowerCase();
    if (!ok) {
      warn(n.startLine, "ConsistentInstructionCasing", `command '${kw}' should match the case of the command majority (${wantUpper ? "uppercase" : "lowercase"})`);
    }
  }
}

function dedupe(list: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return list.filter((d) => {
    const k = `${d.line}\0${d.severity}\0${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
