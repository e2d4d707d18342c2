// The stage loop: FROM (the base's state), the base's ONBUILD triggers, then each instruction in
// order, expanded with the stage's ARG and ENV values. For each it picks the step: ARG and the
// metadata instructions give a new state directly (steps/metadata.ts); a layer step (COPY, ADD,
// RUN, WORKDIR) gives its key parts → the loop looks the key up → reuses the recorded layer or
// has the step produce its entries → commits (writes the layer, records it in the cache, moves
// the state on by its diffID, so a re-run into a byte-identical layer lets later steps hit again).
// The loop alone holds the stage's state; steps see it read-only through their StepContext.
import { DockerfileError, KilnError, throwIfAborted } from "../errors.js";
import { cacheKey, canonicalJSON, type CacheKeyParts } from "../cache/key.js";
import { createHash } from "node:crypto";
import type { CacheRecord } from "../cache/local.js";
import type { Image, Layer } from "../image/image.js";
import type { Digest } from "../image/oci.js";
import { writeLayer } from "../layer/write-layer.js";
import { parseDockerfile } from "../frontend/parse.js";
import { typeInstruction, type TypedInstruction } from "../frontend/instructions.js";
import { expandInstruction } from "../frontend/expand-instruction.js";
import { ArgScope, type BuildPlan, type PlannedStage } from "../frontend/plan.js";
import type { BlobStore } from "../store/blob-store.js";
import type { BuildCache } from "./cache.js";
import type { EngineConfig } from "./config.js";
import type { BuildSession } from "./session.js";
import type { BaseImage, BuildSources } from "./sources.js";
import { StageFiles } from "./stage-files.js";
import { envMap } from "./image-config.js";
import { advance, initialState, stamp, withConfig, withHistory, withLayer, type StageResult, type StageState } from "./state.js";
import { oneLine, type LayerStep, type StepContext } from "./step.js";
import { copyStep } from "./steps/copy.js";
import { argStep, metadataStep } from "./steps/metadata.js";
import { runStep } from "./steps/run.js";
import { workdirStep } from "./steps/workdir.js";

/** What the stage loop works with: the build's settings, plan, services and sources. */
export interface StageEnvironment {
  config: EngineConfig;
  plan: BuildPlan;
  store: BlobStore;
  cache: BuildCache;
  session: BuildSession;
  sources: BuildSources;
}

interface StepOutcome {
  layer?: { digest: string; size: number };
  cached?: boolean;
  snapshotSeconds?: number;
  /** The layer another platform's identical COPY/ADD made in this build. */
  shared?: boolean;
}

/** Build one stage of the plan. */
export function buildStage(env: StageEnvironment, stage: PlannedStage): Promise<StageResult> {
  return new StageLoop(env, stage).build();
}

/** The step for a layer instruction; undefined for metadata instructions. */
function pickStep(t: TypedInstruction): LayerStep | undefined {
  switch (t.kind) {
    case "copy":
    case "add":
      return copyStep(t);
    case "run":
      return runStep(t);
    case "workdir":
      return workdirStep(t);
    default:
      return undefined;
  }
}

class StageLoop {
  private state!: StageState;
  private readonly args: ArgScope;
  private readonly files: StageFiles;
  private stepNo = 1;
  private readonly steps: number;
  private readonly label: string;

  constructor(
    private readonly env: StageEnvironment,
    private readonly stage: PlannedStage,
  ) {
    this.args = new ArgScope(env.plan);
    this.steps = stage.instructions.length + 1;
    this.label = stage.originalName ?? `stage-${stage.index}`;
    this.files = new StageFiles(env.store, env.cache, () => env.session.newRootFS(), this.origin());
  }

  private get file(): string {
    return this.env.plan.file;
  }

  async build(): Promise<StageResult> {
    const { config, session } = this.env;
    const fromId = session.nextStepId();
    const started = process.hrtime.bigint();
    config.emit({ type: "step-start", id: fromId, stage: this.label, step: 1, steps: this.steps, text: this.stage.from.original, ...this.platformField() });
    let base: BaseImage;
    try {
      base = await this.env.sources.baseImage(this.stage.index);
      // FROM another stage: its ARGs come along (BuildKit's dispatchState.init)
      if (base.args) this.args.inherit(base.args);
    } catch (err) {
      throw DockerfileError.at(err, { file: this.file, line: this.stage.from.line, instruction: "FROM" });
    }
    this.state = initialState(base.image, base.id, config);
    if (base.args) this.state = { ...this.state, args: this.args.values() };
    config.emit({ type: "step-done", id: fromId, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    await this.runTriggers();
    for (const inst of this.stage.instructions) {
      await this.step(inst, ++this.stepNo);
    }
    if (this.state.created === "") this.state = stamp(this.state, config.created);
    const created = this.state.created;
    const image: Image = withConfig(this.state, (c) => (c.created = created)).image;
    const rootfs = this.files.rootfs;
    const args = this.args.snapshot();
    return rootfs ? { image, state: this.state.cacheState, rootfs, args } : { image, state: this.state.cacheState, args };
  }

  /** ONBUILD triggers stored in the base image run first, then are cleared (as Docker does). */
  private async runTriggers(): Promise<void> {
    const triggers = this.state.image.config.config?.OnBuild ?? [];
    if (triggers.length === 0) return;
    this.state = withConfig(this.state, (c) => delete c.config!.OnBuild);
    for (const text of triggers) {
      const ast = parseDockerfile(text, { file: `${this.file} (ONBUILD of the base image)` });
      for (const node of ast.instructions) {
        const typed = typeInstruction(node, this.file);
        const withLine = { ...typed, line: this.stage.line, endLine: this.stage.line } as TypedInstruction;
        await this.step(withLine, this.stepNo);
      }
    }
  }

  private async step(inst: TypedInstruction, stepNo: number): Promise<void> {
    const { config, session } = this.env;
    throwIfAborted(config.signal);
    const id = session.nextStepId();
    const started = process.hrtime.bigint();
    const emulated = inst.kind === "run" && config.emulator !== undefined ? { emulated: config.platformText } : {};
    config.emit({ type: "step-start", id, stage: this.label, step: stepNo, steps: this.steps, text: oneLine(inst.original), ...this.platformField(), ...emulated });
    let outcome: StepOutcome;
    try {
      outcome = await this.apply(inst, id, stepNo);
    } catch (err) {
      throw DockerfileError.at(err, { file: this.file, line: inst.line, instruction: inst.kind.toUpperCase() });
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    config.emit({ type: "step-done", id, seconds, ...(outcome.layer ? { layer: outcome.layer } : {}), ...(outcome.cached ? { cached: true } : {}), ...(outcome.shared ? { shared: true } : {}), ...(outcome.snapshotSeconds !== undefined ? { snapshotSeconds: outcome.snapshotSeconds } : {}) });
  }

  /** Expansion environment: the stage's ARG values overlaid with its ENV. */
  private expansionEnv(): Map<string, string> {
    return this.args.env(envMap(this.state.image.config));
  }

  /** Pick the step → key → look up → reuse or produce → commit. */
  private async apply(inst: TypedInstruction, id: number, stepNo: number): Promise<StepOutcome> {
    const platform = this.env.config.platformText;
    if (inst.kind === "arg") {
      for (const a of inst.args) this.args.declare(a, this.expansionEnv(), inst.line);
      this.state = argStep(this.state, inst, this.args.values(), platform);
      return {};
    }
    const t = expandInstruction(inst, this.expansionEnv(), { escapeToken: this.env.plan.escapeToken, file: this.file });
    if (t.kind === "from") throw new KilnError("INTERNAL", "FROM inside a stage");
    const step = pickStep(t);
    if (!step) {
      this.state = metadataStep(this.state, t, platform);
      return {};
    }
    if (step.prepare) this.state = step.prepare(this.state);
    const ctx = this.context(id);
    const parts = await step.keyParts(ctx);
    const key = cacheKey(parts);
    const hit = await this.env.cache.lookup(key, this.stage.name);
    const share = t.kind === "copy" || t.kind === "add" ? layerContentKey(parts, this.state) : undefined;
    const outcome = hit ? await this.reuse(hit) : await this.produce(step, ctx, key, share);
    this.state = advance(this.state, platform, outcome.layer ? this.state.image.layers[this.state.image.layers.length - 1]!.diffID : "empty");
    this.env.cache.steps.push({ stage: this.label, step: stepNo, instruction: oneLine(t.original), key, cached: outcome.cached === true, ...this.platformField() });
    return outcome;
  }

  /** A cache hit: its layer (or empty-layer entry) and history text, at the time it was first built. */
  private async reuse(hit: CacheRecord): Promise<StepOutcome> {
    const { config, cache } = this.env;
    let outcome: StepOutcome;
    if (hit.layer) {
      const layer = { descriptor: hit.layer.descriptor, diffID: hit.layer.diffID };
      this.state = withLayer(this.state, layer, hit.createdBy, config.sourceDateEpoch !== undefined ? config.created : hit.created);
      await this.files.commit(layer);
      outcome = { layer: { digest: layer.descriptor.digest, size: layer.descriptor.size }, cached: true };
    } else {
      this.state = withHistory(this.state, hit.createdBy, true);
      outcome = { cached: true };
    }
    cache.remember(this.stage.index, hit);
    return outcome;
  }

  /**
   * A miss: the step produces its entries; the loop writes the layer and records it under `key`.
   * With `share` (a COPY/ADD's content key), a layer another platform's identical step on an
   * identical file system already made (or is making) in this build is taken instead.
   */
  private async produce(step: LayerStep, ctx: StepContext, key: Digest, share?: string): Promise<StepOutcome> {
    const { config, cache, store, session } = this.env;
    let produced: Awaited<ReturnType<LayerStep["produce"]>> | undefined;
    const make = async (): Promise<Layer | undefined> => {
      produced = await step.produce(ctx);
      if (produced.entries.length === 0) return undefined;
      const layer = await writeLayer(produced.entries, store, {
        ...(config.compressionLevel !== undefined ? { level: config.compressionLevel } : {}),
        ...(config.sourceDateEpoch !== undefined ? { clampMtime: config.sourceDateEpoch } : {}),
      });
      return { descriptor: layer.descriptor, diffID: layer.diffID };
    };
    const committed = share !== undefined ? await session.sharedLayer(share, make) : await make();
    const snapshotSeconds = produced?.snapshotSeconds;
    const createdBy = step.createdBy(ctx);
    let written: { digest: string; size: number } | undefined;
    if (committed === undefined) {
      this.state = withHistory(this.state, createdBy, true);
    } else {
      this.state = withLayer(this.state, committed, createdBy, config.created);
      await this.files.commit(committed, produced?.entries);
      written = { digest: committed.descriptor.digest, size: committed.descriptor.size };
    }
    const last = this.state.image.layers[this.state.image.layers.length - 1];
    await cache.save(this.stage.index, {
      key,
      ...(written && last ? { layer: { descriptor: last.descriptor, diffID: last.diffID } } : {}),
      config: structuredClone(this.state.image.config),
      createdBy,
      emptyLayer: !written,
      created: config.created,
    });
    return { ...(written ? { layer: written } : {}), ...(snapshotSeconds !== undefined ? { snapshotSeconds } : {}), ...(produced === undefined ? { shared: true } : {}) };
  }

  /** What a step of this stage sees: the state as it is now, read-only. */
  private context(stepId: number): StepContext {
    const { config, store, cache, session, sources } = this.env;
    const state = this.state;
    const files = this.files;
    return {
      state,
      config,
      sources: sources.forStage(this.stage.index),
      stepId,
      store,
      statCache: (root) => cache.statCache(root),
      tmpDir: (prefix) => session.tmpDir(prefix),
      rootfs: () => files.ensureRootfs(state.image.layers),
      view: () => files.view(state.image.layers),
      runner: () => session.runner(),
      emit: (event) => config.emit(event),
    };
  }

  /** `{ platform }` in a build for several platforms or a stage for another one (events and step records name it: "linux/amd64->linux/arm64" for a `FROM --platform` stage), else nothing. */
  private platformField(): { platform?: string } {
    const { platforms, platformText, targetText } = this.env.config;
    if (platformText !== targetText) return { platform: `${platformText}->${targetText}` };
    return platforms.length > 1 ? { platform: platformText } : {};
  }

  /** What this stage's layers come from, for error messages: its base image, or the stage itself. */
  private origin(): string {
    const b = this.stage.base;
    if (b.kind === "image") return `image ${b.ref}`;
    if (b.kind === "context") return `build context ${b.name}`;
    return `stage ${this.label}`;
  }
}

/**
 * What a COPY/ADD layer's content depends on, whatever the platform: the step's key parts
 * without the platform and with the parent state replaced by the parent's layers (the same file
 * system gives the same result), so two platforms' identical copies are written once.
 */
function layerContentKey(parts: CacheKeyParts, state: StageState): string {
  const { platform: _platform, parent: _parent, ...rest } = parts;
  const text = canonicalJSON({ ...rest, layers: state.image.layers.map((l) => l.diffID) });
  return createHash("sha256").update(text).digest("hex");
}
