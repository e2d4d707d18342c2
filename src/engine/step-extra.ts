// The `extra` part of a step's cache key, derived from its typed (already expanded) instruction:
// every field the instruction carries — COPY/ADD flags (--chown, --chmod, --link, --parents,
// --exclude, --checksum, --unpack, --from), inline heredoc bodies, RUN's command, heredocs,
// mount specs (never secret or cache contents: those are not in the instruction), --network and
// --security — but not where it sits in the Dockerfile (line numbers) nor its original text.
import type { TypedInstruction } from "../frontend/instructions.js";
import { canonicalJSON } from "../cache/key.js";

export function instructionExtra(t: TypedInstruction): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(t)) {
    if (k === "line" || k === "endLine" || k === "original" || v === undefined) continue;
    out[k] = typeof v === "string" ? v : canonicalJSON(v);
  }
  return out;
}
