// Building one stage: walks its instructions in order (ONBUILD triggers of the base first),
// expands each with the stage's ARG and ENV values, and applies it: metadata steps edit the
// config, COPY/ADD/WORKDIR write layers straight from their sources, RUN runs isolated in the
// stage's root filesystem and snapshots the change. Every step records a history entry.
// Layer steps are keyed for the cache; a hit reuses the recorded layer without running anything.
import { posix } from "node:path";
import { DockerfileError, KilnError, throwIfAborted } from "../errors.js";
import type { Image, Layer } from "../image/image.js";
import type { ImageConfig } from "../image/oci.js";
import type { LayerEntry } from "../layer/entry.js";
import { LayerView } from "../layer/view.js";
import { writeLayer } from "../layer/write-layer.js";
import { parseDockerfile } from "../dockerfile/parse.js";
import { typeInstruction, type TypedInstruction } from "../dockerfile/instructions.js";
import { expandInstruction } from "../dockerfile/expand-instruction.js";
import type { RootFS } from "../fs/rootfs.js";
import { ArgScope, type PlannedStage } from "../dockerfile/plan.js";
import type { BuildSession, StageResult } from "./session.js";
import {
  DEFAULT_SHELL,
  addHistory,
  applyMetadata,
  envMap,
  inheritConfig,
  resolveWorkdir,
  scratchConfig,
  type StageContext,
} from "./image-config.js";
import { copyLayerEntries, prepareCopy } from "./steps/copy.js";
import { runCreatedBy, runKeyExtra, runStep } from "./steps/run.js";
import { instructionExtra } from "./step-extra.js";
import type { Digest } from "../image/oci.js";
import { formatPlatform } from "../image/platform.js";
import { resolveUser } from "./steps/user.js";

export class StageBuilder {
  image!: Image;
  readonly args: ArgScope;
  ctx!: StageContext;
  rootfs?: RootFS;
  /** Cache state: a digest of everything that determines the stage's result so far. */
  state!: Digest;
  /**
   * The time history entries get: a new layer's is the build's time, a cache hit's is the time
   * it was first built, and a metadata step takes the time of the layer before it. So a fully
   * cached rebuild reproduces the same config (and digest) even without SOURCE_DATE_EPOCH.
   */
  lastCreated!: string;
  private stepNo = 1;
  private readonly steps: number;
  readonly label: string;

  constructor(
    readonly session: BuildSession,
    readonly stage: PlannedStage,
    /** Resolves the base image (undefined for scratch); awaited as the FROM step. */
    private readonly loadBase: () => Promise<{ image?: Image; id: Digest | "scratch" }>,
  ) {
    this.args = new ArgScope(session.plan);
    this.steps = stage.instructions.length + 1;
    this.label = stage.originalName ?? `stage-${stage.index}`;
  }

  get platform(): string {
    return formatPlatform(this.session.platform);
  }

  get file(): string {
    return this.session.plan.file;
  }

  /** Expansion environment: the stage's ARG values overlaid with its ENV. */
  env(): Map<string, string> {
    return this.args.env(envMap(this.image.config));
  }

  async build(): Promise<StageResult> {
    const fromId = this.session.nextStepId();
    const started = process.hrtime.bigint();
    this.session.emit({ type: "step-start", id: fromId, stage: this.label, step: 1, steps: this.steps, text: this.stage.from.original });
    let base: Image | undefined;
    let baseId: Digest | "scratch";
    try {
      ({ image: base, id: baseId } = await this.loadBase());
    } catch (err) {
      throw DockerfileError.at(err, { file: this.file, line: this.stage.from.line, instruction: "FROM" });
    }
    this.state = this.session.cache.key({ parent: null, instruction: "FROM", platform: this.platform, args: {}, base: baseId });
    const config: ImageConfig = base ? inheritConfig(base.config) : scratchConfig(this.session.platform);
    // Without a base time, metadata steps wait for the first layer's time ("" until then).
    this.lastCreated = this.session.sourceDateEpoch !== undefined ? this.session.created : (base?.config.created ?? "");
    this.image = { config, layers: base ? [...base.layers] : [] };
    this.ctx = { shell: config.config?.Shell ? [...config.config.Shell] : [...DEFAULT_SHELL], cmdSet: false };
    this.session.emit({ type: "step-done", id: fromId, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    await this.runTriggers();
    for (const inst of this.stage.instructions) {
      await this.step(inst, ++this.stepNo);
    }
    if (this.lastCreated === "") this.stamp(this.session.created);
    this.image.config.created = this.lastCreated;
    return this.rootfs ? { image: this.image, state: this.state, rootfs: this.rootfs } : { image: this.image, state: this.state };
  }

  /** ONBUILD triggers stored in the base image run first, then are cleared (as Docker does). */
  private async runTriggers(): Promise<void> {
    const triggers = this.image.config.config?.OnBuild ?? [];
    if (triggers.length === 0) return;
    delete this.image.config.config!.OnBuild;
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
    const signal = this.session.options.signal;
    throwIfAborted(signal);
    const id = this.session.nextStepId();
    const started = process.hrtime.bigint();
    this.session.emit({ type: "step-start", id, stage: this.label, step: stepNo, steps: this.steps, text: oneLine(inst.original) });
    let outcome: StepOutcome;
    try {
      outcome = await this.apply(inst, id, stepNo);
    } catch (err) {
      throw DockerfileError.at(err, { file: this.file, line: inst.line, instruction: inst.kind.toUpperCase() });
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.session.emit({ type: "step-done", id, seconds, ...(outcome.layer ? { layer: outcome.layer } : {}), ...(outcome.cached ? { cached: true } : {}), ...(outcome.snapshotSeconds !== undefined ? { snapshotSeconds: outcome.snapshotSeconds } : {}) });
  }

  private async apply(inst: TypedInstruction, id: number, stepNo: number): Promise<StepOutcome> {
    const created = this.lastCreated;
    const cfg = this.image.config;
    const cache = this.session.cache;
    if (inst.kind === "arg") {
      for (const a of inst.args) this.args.declare(a, this.env(), inst.line);
      addHistory(cfg, applyMetadata(cfg, inst, this.ctx), true, created);
      // Values reach the key of each step that sees them (RUN env, expanded words), not the state.
      this.state = cache.next(this.state, this.platform, `ARG ${inst.args.map((a) => a.name).join(" ")}`);
      return {};
    }
    const t = expandInstruction(inst, this.env(), { escapeToken: this.session.plan.escapeToken, file: this.file });
    const step = { stepNo, text: oneLine(t.original) };
    switch (t.kind) {
      case "from":
        throw new KilnError("INTERNAL", "FROM inside a stage");
      case "copy":
      case "add": {
        const prepared = await prepareCopy(this, t);
        const key = cache.key({
          parent: this.state,
          instruction: t.kind,
          platform: this.platform,
          args: {},
          ...(prepared.sourcesDigest ? { sources: prepared.sourcesDigest } : {}),
          ...(prepared.fromIdentity ? { fromStage: prepared.fromIdentity } : {}),
          extra: { ...instructionExtra(t), ...prepared.extra, workdir: cfg.config?.WorkingDir ?? "" },
        });
        const createdBy = `${t.kind.toUpperCase()} ${oneLine(t.original).replace(/^\S+\s+/, "")}`;
        return this.layerStep(key, step, async () => ({ entries: await copyLayerEntries(this, t, prepared), createdBy }));
      }
      case "workdir": {
        const createdBy = applyMetadata(cfg, t, this.ctx);
        const key = cache.key({ parent: this.state, instruction: createdBy, platform: this.platform, args: {}, extra: { user: cfg.config?.User ?? "" } });
        return this.layerStep(key, step, async () => ({ entries: await this.workdirEntries(cfg.config?.WorkingDir ?? "/"), createdBy }));
      }
      case "run": {
        const key = cache.key({
          parent: this.state,
          instruction: runCreatedBy(this, t),
          platform: this.platform,
          args: Object.fromEntries(this.args.values()),
          extra: { ...instructionExtra(t), ...(await runKeyExtra(this, t)) },
        });
        return this.layerStep(key, step, () => runStep(this, t, id));
      }
      default: {
        const createdBy = applyMetadata(cfg, t, this.ctx);
        addHistory(cfg, createdBy, true, created);
        this.state = cache.next(this.state, this.platform, createdBy);
        return {};
      }
    }
  }

  /**
   * A step that may write a layer: reuse the cached result for `key`, or produce the entries,
   * write the layer and record it. Either way the stage's state moves on by the layer's diffID,
   * so a re-run that yields a byte-identical layer lets the following steps hit again.
   */
  private async layerStep(
    key: Digest,
    step: { stepNo: number; text: string },
    produce: () => Promise<{ entries: LayerEntry[]; createdBy: string; snapshotSeconds?: number }>,
  ): Promise<StepOutcome> {
    const cache = this.session.cache;
    const cfg = this.image.config;
    const hit = await cache.lookup(key, this.stage.name);
    let outcome: StepOutcome;
    if (hit) {
      if (hit.layer) {
        const layer = { descriptor: hit.layer.descriptor, diffID: hit.layer.diffID };
        this.image.layers.push(layer);
        cfg.rootfs.diff_ids.push(layer.diffID);
        this.stamp(this.session.sourceDateEpoch !== undefined ? this.session.created : hit.created);
        addHistory(cfg, hit.createdBy, false, this.lastCreated);
        if (this.rootfs) await this.applyToRootfs([layer]);
        outcome = { layer: { digest: layer.descriptor.digest, size: layer.descriptor.size }, cached: true };
      } else {
        addHistory(cfg, hit.createdBy, true, this.lastCreated);
        outcome = { cached: true };
      }
      cache.remember(this.stage.index, hit);
    } else {
      const { entries, createdBy, snapshotSeconds } = await produce();
      const layer = await this.commitLayer(entries, createdBy);
      outcome = { ...(layer ? { layer } : {}), ...(snapshotSeconds !== undefined ? { snapshotSeconds } : {}) };
      const last = this.image.layers[this.image.layers.length - 1];
      await cache.save(this.stage.index, {
        key,
        ...(layer && last ? { layer: { descriptor: last.descriptor, diffID: last.diffID } } : {}),
        config: structuredClone(cfg),
        createdBy,
        emptyLayer: !layer,
        created: this.session.created,
      });
    }
    const diffID = outcome.layer ? this.image.layers[this.image.layers.length - 1]!.diffID : "empty";
    this.state = cache.next(this.state, this.platform, diffID);
    cache.steps.push({ stage: this.label, step: step.stepNo, instruction: step.text, key, cached: outcome.cached === true });
    return outcome;
  }

  /** Move the stage's time on, giving it to history entries still waiting for one. */
  private stamp(created: string): void {
    this.lastCreated = created;
    for (const h of this.image.config.history ?? []) if (h.created === "") h.created = created;
  }

  /** Write a layer (or an empty-layer history entry when nothing changed) and keep the rootfs in step. */
  async commitLayer(entries: LayerEntry[], createdBy: string): Promise<{ digest: string; size: number } | undefined> {
    const cfg = this.image.config;
    if (entries.length === 0) {
      addHistory(cfg, createdBy, true, this.lastCreated);
      return undefined;
    }
    const layer = await writeLayer(entries, this.session.store, {
      ...(this.session.options.compressionLevel !== undefined ? { level: this.session.options.compressionLevel } : {}),
      ...(this.session.sourceDateEpoch !== undefined ? { clampMtime: this.session.sourceDateEpoch } : {}),
    });
    this.image.layers.push({ descriptor: layer.descriptor, diffID: layer.diffID });
    cfg.rootfs.diff_ids.push(layer.diffID);
    this.stamp(this.session.created);
    addHistory(cfg, createdBy, false, this.lastCreated);
    if (this.rootfs) await this.applyToRootfs([{ descriptor: layer.descriptor, diffID: layer.diffID }], entries);
    return { digest: layer.descriptor.digest, size: layer.descriptor.size };
  }

  /** The stage's files as a merged view of its layers (metadata, /etc/passwd and /etc/group). */
  async view(): Promise<LayerView> {
    await this.session.cache.ensureLayers(this.image.layers);
    return LayerView.load(this.session.store, this.image.layers);
  }

  /** Apply layers to the rootfs; `snapshot`: the entries the (single) layer was written from. */
  private async applyToRootfs(layers: Layer[], snapshot?: LayerEntry[]): Promise<void> {
    const rootfs = this.rootfs!;
    const store = this.session.store;
    await this.session.cache.ensureLayers(layers);
    await rootfs.applyLayers(
      layers.map((l) => ({
        diffID: l.diffID,
        digest: l.descriptor.digest,
        origin: this.origin(),
        mediaType: l.descriptor.mediaType,
        open: () => store.open(l.descriptor.digest),
        ...(snapshot ? { snapshot } : {}),
      })),
    );
  }

  /** What this stage's layers come from, for error messages: its base image, or the stage itself. */
  private origin(): string {
    const b = this.stage.base;
    if (b.kind === "image") return `image ${b.ref}`;
    if (b.kind === "context") return `build context ${b.name}`;
    return `stage ${this.label}`;
  }

  /** The root filesystem for RUN steps, assembled from the layers on first use. */
  async ensureRootfs(): Promise<RootFS> {
    if (this.rootfs) return this.rootfs;
    this.rootfs = await this.session.newRootFS();
    await this.applyToRootfs(this.image.layers);
    return this.rootfs;
  }

  /** WORKDIR creates its directory (and missing parents) in a layer, owned by the current USER. */
  private async workdirEntries(dir: string): Promise<LayerEntry[]> {
    const view = await this.view();
    const target = view.resolve(dir);
    if (target?.type === "dir") return [];
    if (target) throw new KilnError("WORKDIR_NOT_DIRECTORY", `${dir} exists and is not a directory`);
    const user = this.image.config.config?.User;
    const owner = user ? resolveUser(user, view) : { uid: 0, gid: 0 };
    const mtime = this.session.sourceDateEpoch ?? Math.floor(Date.now() / 1000);
    const entries: LayerEntry[] = [];
    let cur = "/";
    for (const part of resolveWorkdir("/", dir).split("/").filter(Boolean)) {
      const next = posix.join(cur, part);
      const real = view.resolvePath(next, true);
      const existing = view.lookup(real);
      if (existing?.type === "dir") {
        if (real !== "") entries.push({ path: real, type: "dir", mode: existing.mode, uid: existing.uid, gid: existing.gid, mtime: existing.mtime, size: 0 });
        cur = "/" + real;
        continue;
      }
      entries.push({ path: real, type: "dir", mode: 0o755, uid: owner.uid, gid: owner.gid, mtime, size: 0 });
      cur = "/" + real;
    }
    return dedupe(entries);
  }
}

interface StepOutcome {
  layer?: { digest: string; size: number };
  cached?: boolean;
  snapshotSeconds?: number;
}

function dedupe(entries: LayerEntry[]): LayerEntry[] {
  const m = new Map<string, LayerEntry>();
  for (const e of entries) m.set(e.path, e);
  return [...m.values()];
}

function oneLine(s: string): string {
  const first = s.split("\n")[0] ?? "";
  return s.includes("\n") ? `${first} ...` : first;
}
