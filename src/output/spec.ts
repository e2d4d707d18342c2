// OutputSpec, the description of one build destination, and the checks the command line alone
// decides (kept apart from the writers so parsing a command line loads none of them).
import { UsageError } from "../errors.js";
import type { LayerCompression } from "../layer/recompress.js";

export type OutputSpec =
  | { type: "oci"; dest: string; tar: boolean; compression?: LayerCompression }
  | { type: "docker"; dest: string; compression?: LayerCompression }
  | { type: "image"; names: string[]; push: boolean; compression?: LayerCompression }
  /** The image's file system as a directory / one tar (buildx's local exporters: src/container/export.ts, called by the engine). */
  | { type: "local"; dest: string }
  | { type: "tar"; dest: string };

/** Refuse outputs that cannot hold attestations (a docker archive has no index for them). */
export function checkAttestationOutputs(outputs: OutputSpec[]): void {
  if (outputs.some((o) => o.type === "docker")) {
    throw new UsageError("OPTION_INVALID", "--output type=docker cannot hold attestations (--provenance/--sbom/--attest): use type=oci or push to a registry");
  }
}
