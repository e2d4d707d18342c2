// A fake RUN backend and a fake root filesystem for in-process tests of build() (through
// buildWith's EngineBackends seam): no crun, umoci, mounts or root needed. The root filesystem is
// a plain temporary directory that layers are applied to with kiln's own confined layer
// application (so COPY --from a stage reads real files), recording each layer's diffID; a step's
// changes are not diffed but are whatever the fake runner says the command wrote. The runner
// answers each RUN from a script keyed by the command line (argv joined with spaces) and records
// every RunSpec it was given.
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { applyLayer } from "../../src/snapshot/apply-layer.js";
import { openVerified } from "../../src/snapshot/layer-source.js";
import type { EngineBackends } from "../../src/engine/session.js";
import type { RootFS, RootFSLayer, StepOptions, StepSnapshot } from "../../src/snapshot/rootfs.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import type { RunResult, RunSpec, Runner } from "../../src/run/types.js";

/** What a scripted command does: its exit code, its output, the files it writes (path → content). */
export interface FakeCommand {
  exitCode?: number;
  output?: string;
  writes?: Record<string, string>;
}

export class FakeRootFS implements RootFS {
  readonly applied: string[] = [];
  readonly steps: StepOptions[] = [];
  disposed = false;
  pending: LayerEntry[] = [];

  constructor(readonly dir: string) {}

  async applyLayers(layers: RootFSLayer[]): Promise<void> {
    for (const l of layers) await this.applyLayer(l);
  }

  async applyLayer(layer: RootFSLayer): Promise<void> {
    if (this.disposed) throw new Error("fake rootfs: applyLayer after dispose");
    this.applied.push(layer.diffID);
    const { stream, done } = openVerified(layer);
    await applyLayer(this.dir, stream, { layerName: layer.diffID, privileged: false, deviceNodes: "skip" });
    await done;
  }

  async beginStep(options: StepOptions = {}): Promise<StepSnapshot> {
    this.steps.push(options);
    this.pending = [];
    return { changes: async () => this.pending.splice(0) };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await rm(this.dir, { recursive: true, force: true });
  }
}

export class FakeEngine {
  readonly rootfses: FakeRootFS[] = [];
  readonly runs: RunSpec[] = [];
  preflights = 0;

  /** `script`: what each command line does (an unknown one succeeds and writes nothing). */
  constructor(private readonly script: Record<string, FakeCommand> = {}) {}

  readonly runner: Runner = {
    name: "fake",
    run: async (spec: RunSpec): Promise<RunResult> => {
      this.runs.push(spec);
      const cmd = this.script[spec.argv.join(" ")] ?? {};
      const rootfs = this.rootfses.find((r) => r.dir === spec.rootfs);
      if (!rootfs) throw new Error(`fake runner: ${spec.rootfs} is no root filesystem of this build`);
      for (const [path, content] of Object.entries(cmd.writes ?? {})) rootfs.pending.push(fileEntry(path, content));
      if (cmd.output) spec.stdout?.(Buffer.from(cmd.output));
      return { exitCode: cmd.exitCode ?? 0, outputTail: cmd.output ?? "" };
    },
  };

  readonly backends: EngineBackends = {
    chooseRunner: async () => {
      this.preflights++;
      return { runner: this.runner, isolation: "fake", why: "in-process test" };
    },
    checkSnapshotter: async () => undefined,
    createRootFS: async (cacheDir) => {
      const rootfs = new FakeRootFS(await mkdtemp(join(cacheDir, "fake-rootfs-")));
      this.rootfses.push(rootfs);
      return rootfs;
    },
  };
}

/** A regular file owned by root, mode 0644, at the SOURCE_DATE_EPOCH the tests use. */
function fileEntry(path: string, content: string): LayerEntry {
  const data = Buffer.from(content);
  return { path: path.replace(/^\/+/, ""), type: "file", mode: 0o644, uid: 0, gid: 0, mtime: 1700000000, size: data.length, open: () => Readable.from([data]) };
}
