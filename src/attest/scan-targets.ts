// What else an SBOM scans besides the final image, as BuildKit's Dockerfile frontend decides it:
// BUILDKIT_SBOM_SCAN_STAGE in a stage the target needs (its own ARG, else the global ARG) scans that
// stage's image too, and BUILDKIT_SBOM_SCAN_CONTEXT for the target stage scans the build context.
// A value is a boolean as Go's strconv.ParseBool reads one, else a comma list of stage names
// (lower-cased, as stage names are matched). Each extra scan becomes its own SPDX statement,
// named `sbom-<stage>` / `sbom-context` as BuildKit names the scan targets.

export const SBOM_SCAN_STAGE = "BUILDKIT_SBOM_SCAN_STAGE";
export const SBOM_SCAN_CONTEXT = "BUILDKIT_SBOM_SCAN_CONTEXT";
/** ARGs that are switches for the build, never in a RUN step's environment (BuildKit's nonEnvArgs). */
export const SBOM_SCAN_ARGS: ReadonlySet<string> = new Set([SBOM_SCAN_STAGE, SBOM_SCAN_CONTEXT]);

const TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/** Whether an ARG value turns a scan on for the stage named `stage`. */
export function scanEnabledFor(stage: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  return value.split(",").includes(stage);
}

/** One stage's view: its name (lower-cased; "" when unnamed) and its ARG values after its last step. */
export interface StageArgs {
  name: string;
  args: ReadonlyMap<string, string> | undefined;
}

/** The value an ARG has for a stage: the stage's own (declared, or inherited FROM a stage), else the global ARG's. */
function argFor(stage: StageArgs, globals: Readonly<Record<string, string>>, name: string): string | undefined {
  return stage.args?.get(name) ?? (Object.prototype.hasOwnProperty.call(globals, name) ? globals[name] : undefined);
}

export function scansStage(stage: StageArgs, globals: Readonly<Record<string, string>>): boolean {
  return scanEnabledFor(stage.name, argFor(stage, globals, SBOM_SCAN_STAGE));
}

export function scansContext(target: StageArgs, globals: Readonly<Record<string, string>>): boolean {
  return scanEnabledFor(target.name, argFor(target, globals, SBOM_SCAN_CONTEXT));
}
