// StageState: what a stage has built so far, as a value — the image (config and layers), the
// ARG values in scope, the SHELL, whether CMD was set, the cache state and the time new history
// entries get — and the pure transitions the stage loop commits with (a history entry, a layer,
// the cache-state chain). A transition returns a new state and never changes the one it is given,
// so a step can read its StepContext's state without it moving under it. StageResult is what a
// finished stage hands to the stages that use it.
import { cacheKey } from "../cache/key.js";
import type { InheritedArgs } from "../frontend/plan.js";
import type { RootFS } from "../snapshot/rootfs.js";
import type { Image, Layer } from "../image/image.js";
import type { Digest, ImageConfig } from "../image/oci.js";
import { DEFAULT_SHELL, addHistory, inheritConfig, scratchConfig } from "./image-config.js";
import type { EngineConfig } from "./config.js";

export interface StageState {
  /** Config and ordered layers so far. Never mutated: transitions copy. */
  readonly image: Image;
  /** The declared ARGs that have a value. */
  readonly args: ReadonlyMap<string, string>;
  /** The SHELL in force (Docker's default `/bin/sh -c`). */
  readonly shell: readonly string[];
  /** Whether CMD was set in this stage (ENTRYPOINT then keeps it). */
  readonly cmdSet: boolean;
  /** A digest of everything that determines the stage's result so far (what later keys chain on). */
  readonly cacheState: Digest;
  /**
   * The time history entries get: a new layer's is the build's time, a cache hit's is the time
   * it was first built, and a metadata step takes the time of the layer before it ("" until the
   * first layer when the base has no time). So a fully cached rebuild reproduces the same config
   * (and digest) even without SOURCE_DATE_EPOCH.
   */
  readonly created: string;
}

/** What a finished stage hands to the stages that use it. */
export interface StageResult {
  image: Image;
  /** The stage's cache state after its last step: what FROM/COPY --from of it key on. */
  state: Digest;
  /** The stage's root filesystem when RUN steps built one (reused by COPY --from). */
  rootfs?: RootFS;
  /** The stage's ARGs after its last step: a stage built FROM it starts with them. */
  args?: InheritedArgs;
}

/** The state after FROM: the base's config and layers (scratch's for none), keyed on its identity. */
export function initialState(base: Image | undefined, baseId: Digest | "scratch", config: EngineConfig): StageState {
  const image: ImageConfig = base ? inheritConfig(base.config) : scratchConfig(config.platform);
  return {
    image: { config: image, layers: base ? [...base.layers] : [] },
    args: new Map(),
    shell: image.config?.Shell ? [...image.config.Shell] : [...DEFAULT_SHELL],
    cmdSet: false,
    cacheState: cacheKey({ parent: null, instruction: "FROM", platform: config.platformText, args: {}, base: baseId }),
    created: config.sourceDateEpoch !== undefined ? config.created : (base?.config.created ?? ""),
  };
}

/** The cache state after a step: the state before plus what the step produced. */
export function advance(state: StageState, platform: string, result: string): StageState {
  return { ...state, cacheState: cacheKey({ parent: state.cacheState, instruction: `result ${result}`, platform, args: {} }) };
}

/**
 * A copy of `config` that may be changed without touching the original: the container config
 * (what metadata steps edit) deeply unless `containerConfig` is false, the history and diff_ids
 * lists shallowly (transitions add or replace their entries, never change one in place).
 */
export function copyConfig(config: ImageConfig, containerConfig = true): ImageConfig {
  const copy: ImageConfig = { ...config, rootfs: { ...config.rootfs, diff_ids: [...config.rootfs.diff_ids] } };
  if (config.history) copy.history = [...config.history];
  if (containerConfig && config.config) copy.config = structuredClone(config.config);
  return copy;
}

/** A copy of the state whose config `edit` may change (the state given stays as it is). */
export function withConfig(state: StageState, edit: (config: ImageConfig) => void): StageState {
  const config = copyConfig(state.image.config);
  edit(config);
  return { ...state, image: { config, layers: state.image.layers } };
}

/** One more history entry (`emptyLayer`: a step that wrote no layer), at the state's time. */
export function withHistory(state: StageState, createdBy: string, emptyLayer: boolean): StageState {
  const config = copyConfig(state.image.config, false);
  addHistory(config, createdBy, emptyLayer, state.created);
  return { ...state, image: { config, layers: state.image.layers } };
}

/** History entries still waiting for a time ("") get `created`. */
function stampHistory(config: ImageConfig, created: string): void {
  if (config.history) config.history = config.history.map((h) => (h.created === "" ? { ...h, created } : h));
}

/** The stage's time moves on to `created`, given to history entries still waiting for one (""). */
export function stamp(state: StageState, created: string): StageState {
  if (!(state.image.config.history ?? []).some((h) => h.created === "")) return { ...state, created };
  const config = copyConfig(state.image.config, false);
  stampHistory(config, created);
  return { ...state, image: { config, layers: state.image.layers }, created };
}

/** One more layer (and its diff_id and history entry), created at `created`. */
export function withLayer(state: StageState, layer: Layer, createdBy: string, created: string): StageState {
  const config = copyConfig(state.image.config, false);
  stampHistory(config, created);
  config.rootfs.diff_ids.push(layer.diffID);
  addHistory(config, createdBy, false, created);
  return { ...state, image: { config, layers: [...state.image.layers, layer] }, created };
}
