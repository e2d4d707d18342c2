// One-call builds for end-to-end tests: `kiln build` of a context into a fresh OCI layout with
// its own --cache-dir, failing loudly (with kiln's stderr) when the build fails.
import { join } from "node:path";
import { expectBuilt, kiln, type KilnRunOptions, type RunResult } from "./kiln.js";
import type { TempDirs } from "./temp.js";

export interface BuiltLayout {
  /** Manifest digest kiln printed. */
  digest: string;
  /** The OCI layout directory written. */
  layout: string;
  result: RunResult;
}

/**
 * `kiln build --progress quiet --cache-dir TMP -o type=oci,dest=TMP/layout ARGS... CONTEXT`.
 * `args` must not contain the context; pass -t/-f/--target/... there.
 */
export async function buildLayout(
  temps: TempDirs,
  context: string,
  args: string[] = [],
  options: KilnRunOptions = {},
): Promise<BuiltLayout> {
  const out = await temps.make("kiln-out-");
  const layout = join(out, "layout");
  const result = await kiln(
    ["build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "--output", `type=oci,dest=${layout}`, ...args, context],
    options,
  );
  const digest = expectBuilt(result);
  return { digest, layout, result };
}
