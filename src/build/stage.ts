// Building one stage: walks its instructions in order (ONBUILD triggers of the base first),
// expands each with the stage's ARG and ENV values, and applies it: metadata steps edit the
// config, COPY/ADD/WORKDIR write layers straight from their sources, RUN runs isolated in the
// stage's root filesystem and snapshots the change. Every step records a history entry.
import { posix } from "node:path";
import { DockerfileError, KilnError } from "../errors.js";
import type { Image } from "../image/image.js";
import type { ImageConfig } from "../image/oci.js";
import type { LayerEntry } from "../layer/entry.js";
import { LayerView } from "../layer/view.js";
import { writeLayer } from "../layer/write-layer.js";
import { parseDockerfile } from "../dockerfile/parse.js";
import { typeInstruction, type TypedInstruction } from "../dockerfile/instructions.js";
import { expandInstruction } from "../dockerfile/expand-instruction.js";
import type { RootFS } from "../fs/rootfs.js";
import { ArgScope, type PlannedStage } from "./plan.js";
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
import { copyStep } from "./steps/copy.js";
import { runStep } from "./steps/run.js";
import { resolveUser } from "./steps/user.js";

export class StageBuilder {
  image!: Image;
  readonly args: ArgScope;
  ctx!: StageContext;
  rootfs?: RootFS;
  private stepNo = 1;
  private readonly steps: number;
  readonly label: string;

  constructor(
    readonly session: BuildSession,
    readonly stage: PlannedStage,
    /** Resolves the base image (undefined for scratch); awaited as the FROM step. */
    private readonly loadBase: () => Promise<Image | undefined>,
  ) {
    this.args = new ArgScope(session.plan);
    this.steps = stage.instructions.length + 1;
    this.label = stage.originalName ?? `stage-${stage.index}`;
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
    try {
      base = await this.loadBase();
    } catch (err) {
      throw locate(err, this.stage.from, this.file);
    }
    const config: ImageConfig = base ? inheritConfig(base.config) : scratchConfig(this.session.platform);
    this.image = { config, layers: base ? [...base.layers] : [] };
    this.ctx = { shell: config.config?.Shell ? [...config.config.Shell] : [...DEFAULT_SHELL], cmdSet: false };
    this.session.emit({ type: "step-done", id: fromId, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    await this.runTriggers();
    for (const inst of this.stage.instructions) {
      await this.step(inst, ++this.stepNo);
    }
    return this.rootfs ? { image: this.image, rootfs: this.rootfs } : { image: this.image };
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
    const id = this.session.nextStepId();
    const started = process.hrtime.bigint();
    this.session.emit({ type: "step-start", id, stage: this.label, step: stepNo, steps: this.steps, text: oneLine(inst.original) });
    let layer: { digest: string; size: number } | undefined;
    try {
      layer = await this.apply(inst, id);
    } catch (err) {
      throw locate(err, inst, this.file);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.session.emit({ type: "step-done", id, seconds, ...(layer ? { layer } : {}) });
  }

  private async apply(inst: TypedInstruction, id: number): Promise<{ digest: string; size: number } | undefined> {
    const created = this.session.created;
    const cfg = this.image.config;
    if (inst.kind === "arg") {
      for (const a of inst.args) this.args.declare(a, this.env(), inst.line);
      addHistory(cfg, applyMetadata(cfg, inst, this.ctx), true, created);
      return undefined;
    }
    const t = expandInstruction(inst, this.env(), { escapeToken: this.session.plan.escapeToken, file: this.file });
    switch (t.kind) {
      case "from":
        throw new KilnError("FROM inside a stage");
      case "copy":
      case "add": {
        const entries = await copyStep(this, t);
        const createdBy = `${t.kind.toUpperCase()} ${oneLine(t.original).replace(/^\S+\s+/, "")}`;
        return this.commitLayer(entries, createdBy);
      }
      case "workdir": {
        const createdBy = applyMetadata(cfg, t, this.ctx);
        const entries = await this.workdirEntries(cfg.config?.WorkingDir ?? "/");
        return this.commitLayer(entries, createdBy);
      }
      case "run": {
        const r = await runStep(this, t, id);
        return this.commitLayer(r.entries, r.createdBy);
      }
      default:
        addHistory(cfg, applyMetadata(cfg, t, this.ctx), true, created);
        return undefined;
    }
  }

  /** Write a layer (or an empty-layer history entry when nothing changed) and keep the rootfs in step. */
  async commitLayer(entries: LayerEntry[], createdBy: string): Promise<{ digest: string; size: number } | undefined> {
    const cfg = this.image.config;
    if (entries.length === 0) {
      addHistory(cfg, createdBy, true, this.session.created);
      return undefined;
    }
    const layer = await writeLayer(entries, this.session.store, {
      ...(this.session.options.compressionLevel !== undefined ? { level: this.session.options.compressionLevel } : {}),
      ...(this.session.sourceDateEpoch !== undefined ? { clampMtime: this.session.sourceDateEpoch } : {}),
    });
    this.image.layers.push({ descriptor: layer.descriptor, diffID: layer.diffID });
    cfg.rootfs.diff_ids.push(layer.diffID);
    addHistory(cfg, createdBy, false, this.session.created);
    if (this.rootfs) {
      const store = this.session.store;
      await this.rootfs.applyLayer({ diffID: layer.diffID, mediaType: layer.descriptor.mediaType, open: () => store.open(layer.descriptor.digest) });
    }
    return { digest: layer.descriptor.digest, size: layer.descriptor.size };
  }

  /** The stage's files as a merged view of its layers (metadata, /etc/passwd and /etc/group). */
  view(): Promise<LayerView> {
    return LayerView.load(this.session.store, this.image.layers);
  }

  /** The root filesystem for RUN steps, assembled from the layers on first use. */
  async ensureRootfs(): Promise<RootFS> {
    if (this.rootfs) return this.rootfs;
    const rootfs = await this.session.newRootFS();
    const store = this.session.store;
    for (const l of this.image.layers) {
      await rootfs.applyLayer({ diffID: l.diffID, mediaType: l.descriptor.mediaType, open: () => store.open(l.descriptor.digest) });
    }
    this.rootfs = rootfs;
    return rootfs;
  }

  /** WORKDIR creates its directory (and missing parents) in a layer, owned by the current USER. */
  private async workdirEntries(dir: string): Promise<LayerEntry[]> {
    const view = await this.view();
    const target = view.resolve(dir);
    if (target?.type === "dir") return [];
    if (target) throw new KilnError(`WORKDIR: ${dir} exists and is not a directory`);
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

function dedupe(entries: LayerEntry[]): LayerEntry[] {
  const m = new Map<string, LayerEntry>();
  for (const e of entries) m.set(e.path, e);
  return [...m.values()];
}

function oneLine(s: string): string {
  const first = s.split("\n")[0] ?? "";
  return s.includes("\n") ? `${first} ...` : first;
}

/** Give a step's error the Dockerfile line: `Dockerfile:12: COPY: source "x" not found`. */
export function locate(err: unknown, inst: TypedInstruction, file: string): Error {
  if (err instanceof DockerfileError) return err;
  const keyword = inst.kind.toUpperCase();
  if (err instanceof KilnError) {
    const msg = err.message.startsWith(`${keyword}:`) ? err.message.slice(keyword.length + 1).trim() : err.message;
    return new DockerfileError(`${keyword}: ${msg}`, inst.line, file);
  }
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === "string") {
    return new DockerfileError(`${keyword}: ${e.message}`, inst.line, file);
  }
  return err instanceof Error ? err : new Error(String(err));
}
