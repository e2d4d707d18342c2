// The steps that only change the config (ENV, LABEL, MAINTAINER, EXPOSE, VOLUME, USER, CMD,
// ENTRYPOINT, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD) and ARG: each records an empty-layer
// history entry at the stage's time and moves the cache state on by its history text. Pure:
// a new StageState from the one given. ARG values reach the key of each step that sees them
// (RUN's args, expanded words), not the state.
import type { ArgInstruction, TypedInstruction } from "../../frontend/instructions.js";
import { addHistory, applyMetadata } from "../image-config.js";
import { advance, copyConfig, type StageState } from "../state.js";

/** A metadata instruction (already expanded) applied to the state. */
export function metadataStep(state: StageState, t: TypedInstruction, platform: string): StageState {
  const ctx = { shell: [...state.shell], cmdSet: state.cmdSet };
  const config = copyConfig(state.image.config);
  const createdBy = applyMetadata(config, t, ctx);
  addHistory(config, createdBy, true, state.created);
  const next: StageState = { ...state, image: { config, layers: state.image.layers }, shell: ctx.shell, cmdSet: ctx.cmdSet };
  return advance(next, platform, createdBy);
}

/** ARG: the values now in scope (declared by the stage loop's ArgScope) and its history entry. */
export function argStep(state: StageState, t: ArgInstruction, values: ReadonlyMap<string, string>, platform: string): StageState {
  const config = copyConfig(state.image.config, false); // ARG adds history only
  addHistory(config, applyMetadata(config, t, { shell: [...state.shell], cmdSet: state.cmdSet }), true, state.created);
  const next: StageState = { ...state, image: { config, layers: state.image.layers }, args: new Map(values) };
  return advance(next, platform, `ARG ${t.args.map((a) => a.name).join(" ")}`);
}
