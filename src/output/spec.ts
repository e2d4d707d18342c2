// OutputSpec, the description of one build destination, and the checks the command line alone
// decides (kept apart from the writers so parsing a command line loads none of them).
import { UsageError } from "../errors.js";

export type OutputSpec =
  | { type: "oci"; dest: string; tar: boolean }
  | { type: "docker"; dest: string }
  | { type: "image"; names: string[]; push: boolean }
  /** The image's file system as a directory / one tar (buildx's local exporters: src/container/export.ts, called by the engine). */
  | { type: "local"; dest: string }
  | { type: "tar"; dest: string };

/** Refuse outputs that cannot hold attestations (a docker archive has no index for them). */
export function checkAttestationOutputs(outputs: OutputSpec[]): void {
  if (outputs.some((o) => o.type === "docker")) {
    throw new UsageError("OPTION_INVALID", "--output type=docker cannot hold attestations (--provenance/--sbom/--attest): use type=oci or push to a registry");
  }
}
