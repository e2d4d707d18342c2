// A stage's files as its steps read them: a merged view of its layers (no extraction: /etc/passwd,
// /etc/group, WORKDIR's parents, COPY's destination), and the root filesystem RUN steps need,
// assembled from the layers on first use and then kept in step with each layer the stage commits.
import type { RootFS } from "../snapshot/rootfs.js";
import type { Layer } from "../image/image.js";
import type { LayerEntry } from "../layer/entry.js";
import { LayerView } from "../layer/view.js";
import type { BlobStore } from "../store/blob-store.js";
import type { BuildCache } from "./cache.js";

export class StageFiles {
  private current?: RootFS;

  constructor(
    private readonly store: BlobStore,
    private readonly cache: BuildCache,
    private readonly newRootFS: () => Promise<RootFS>,
    /** What the stage's layers come from, for error messages ("image debian:12", "stage build"). */
    private readonly origin: string,
  ) {}

  /** The root filesystem once a RUN asked for it (undefined before). */
  get rootfs(): RootFS | undefined {
    return this.current;
  }

  /** The root filesystem for RUN steps, assembled from `layers` on first use. */
  async ensureRootfs(layers: Layer[]): Promise<RootFS> {
    if (this.current) return this.current;
    const rootfs = await this.newRootFS();
    await this.applyTo(rootfs, layers);
    this.current = rootfs;
    return rootfs;
  }

  /** A committed layer reaches the root filesystem, when there is one; `snapshot`: the entries it was written from. */
  async commit(layer: Layer, snapshot?: LayerEntry[]): Promise<void> {
    if (this.current) await this.applyTo(this.current, [layer], snapshot);
  }

  /** The files of `layers` as one merged view. */
  async view(layers: Layer[]): Promise<LayerView> {
    await this.cache.ensureLayers(layers);
    return LayerView.load(this.store, layers);
  }

  private async applyTo(rootfs: RootFS, layers: Layer[], snapshot?: LayerEntry[]): Promise<void> {
    await this.cache.ensureLayers(layers);
    const store = this.store;
    await rootfs.applyLayers(
      layers.map((l) => ({
        diffID: l.diffID,
        digest: l.descriptor.digest,
        origin: this.origin,
        mediaType: l.descriptor.mediaType,
        open: () => store.open(l.descriptor.digest),
        ...(snapshot ? { snapshot } : {}),
      })),
    );
  }
}
