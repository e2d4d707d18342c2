// The contract between the stage loop and a step. A step sees a read-only StepContext — the
// stage's state, the engine config, the stage's sources, the root filesystem and the layer view
// on demand, an event sink — and a layer step (COPY, ADD, RUN, WORKDIR) answers three questions:
// the parts of its cache key, the `created_by` text of its history entry, and the entries of the
// layer it produces. The stage loop alone looks the key up, reuses or produces, and commits; a
// step never changes the state it is given and imports no builder.
import type { CacheKeyParts } from "../cache/key.js";
import type { StatCache } from "../cache/sources.js";
import type { DirContext } from "../context/build-context.js";
import type { RootFS } from "../snapshot/rootfs.js";
import type { Digest } from "../image/oci.js";
import type { LayerEntry } from "../layer/entry.js";
import type { LayerView } from "../layer/view.js";
import type { Runner } from "../run/types.js";
import type { BlobStore } from "../store/blob-store.js";
import type { EngineConfig } from "./config.js";
import type { BuildEvent } from "./events.js";
import type { StageState } from "./state.js";

/** The file trees a step of one stage may read. */
export interface StepSources {
  /** The main build context, with .dockerignore applied. */
  context(): Promise<DirContext>;
  /** The tree `--from=<from>` names: another stage, a named context or an image. */
  tree(from: string): Promise<DirContext>;
  /**
   * What `--from=<from>` keys on when its content is fixed by an identity (a stage's final cache
   * state, an image's manifest digest); undefined for local directories, whose files are hashed.
   */
  identity(from: string): Promise<Digest | undefined>;
  /** Note an `ADD <url>` download (its sha256) for the build's provenance. */
  recordDownload(url: string, digest: Digest): void;
}

export interface StepContext {
  readonly state: StageState;
  readonly config: EngineConfig;
  readonly sources: StepSources;
  /** The number this step's events carry (step-log). */
  readonly stepId: number;
  readonly store: BlobStore;
  /** The persistent stat cache of a context root (hashes reused across builds). */
  statCache(root: string): Promise<StatCache>;
  /** A fresh directory under the build's temporary root, removed with the build. */
  tmpDir(prefix: string): Promise<string>;
  /** The stage's root filesystem, assembled from the state's layers on first use. */
  rootfs(): Promise<RootFS>;
  /** The state's files as a merged view of its layers (no extraction). */
  view(): Promise<LayerView>;
  /** The RUN runner the preflight chose. */
  runner(): Promise<Runner>;
  emit(event: BuildEvent): void;
}

export interface Produced {
  /** The layer's entries in tar order; none: the step records an empty-layer history entry. */
  entries: LayerEntry[];
  /** RUN: seconds spent finding what the step changed. */
  snapshotSeconds?: number;
}

export interface LayerStep {
  /**
   * The config change the step makes before its layer, whether the layer is reused or produced
   * (WORKDIR sets WorkingDir; its key and its directory follow it). Absent: none.
   */
  prepare?(state: StageState): StageState;
  /** Everything the step's result depends on: the stage loop hashes it into the step's key. */
  keyParts(ctx: StepContext): Promise<CacheKeyParts>;
  /** The history entry's `created_by`. */
  createdBy(ctx: StepContext): string;
  /** Run the step: the entries of its layer. Called only on a cache miss. */
  produce(ctx: StepContext): Promise<Produced>;
}

/** An instruction's first line (with ` ...` when it has more), as step events and records show it. */
export function oneLine(s: string): string {
  const first = s.split("\n")[0] ?? "";
  return s.includes("\n") ? `${first} ...` : first;
}
