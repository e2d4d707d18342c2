// The services one build shares across its stages: the blob store, the build context, named
// contexts, base-image resolution (scratch / stage / OCI layout / registry), source trees for
// `COPY --from`, the RUN runner, step numbering and events, and clean-up of everything temporary.
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { DirContext } from "../context/build-context.js";
import { createIgnoreMatcher, readIgnoreFile } from "../context/dockerignore.js";
import { KilnError } from "../errors.js";
import type { Image } from "../image/image.js";
import { OciLayout, importImage } from "../image/layout.js";
import type { Digest, Platform } from "../image/oci.js";
import type { BuildCache } from "./cache.js";
import { createRootFS, type RootFS } from "../fs/rootfs.js";
import type { BlobStore } from "../store/blob-store.js";
import type { BuildEvent } from "./events.js";
import type { BuildOptions, NamedContext } from "./options.js";
import type { BuildPlan } from "../dockerfile/plan.js";
import { resolveStageRef } from "../dockerfile/plan.js";
import { suggestName as suggest } from "../dockerfile/flags.js";
import { chooseRunner, type Runner } from "../run/index.js";

/** What a finished stage hands to the stages that use it. */
export interface StageResult {
  image: Image;
  /** The stage's cache state after its last step: what FROM/COPY --from of it key on. */
  state: Digest;
  /** The stage's root filesystem when RUN steps built one (reused by COPY --from). */
  rootfs?: RootFS;
}

export class BuildSession {
  readonly stageResults = new Map<number, Promise<StageResult>>();
  private stepCounter = 0;
  private mainContext?: Promise<DirContext>;
  private readonly trees = new Map<string, Promise<DirContext>>();
  private readonly disposables: Array<() => Promise<void>> = [];
  private runnerPromise?: Promise<Runner>;
  /** The isolation the preflight chose for RUN (set once runner() resolved). */
  isolation?: string;
  readonly tmpRoot: Promise<string>;

  constructor(
    readonly options: BuildOptions,
    readonly plan: BuildPlan,
    readonly store: BlobStore,
    readonly cacheDir: string,
    readonly platform: Platform,
    readonly namedContexts: Map<string, NamedContext>,
    readonly dockerfilePath: string | undefined,
    /** ISO time written as `created` in config and history. */
    readonly created: string,
    /** SOURCE_DATE_EPOCH: clamps mtimes in new layers. */
    readonly sourceDateEpoch: number | undefined,
    readonly cache: BuildCache,
  ) {
    this.tmpRoot = (async () => {
      const base = join(cacheDir, "tmp");
      await mkdir(base, { recursive: true });
      const dir = await mkdtemp(join(base, `build-${process.pid}-`));
      this.disposables.push(() => rm(dir, { recursive: true, force: true }));
      return dir;
    })();
  }

  emit(event: BuildEvent): void {
    this.options.onEvent?.(event);
  }

  nextStepId(): number {
    return ++this.stepCounter;
  }

  /** The main build context (a directory; `kiln build -` extracted its tar), with .dockerignore applied. */
  context(): Promise<DirContext> {
    this.mainContext ??= (async () => {
      const opts = this.options;
      const st = await stat(opts.context).catch(() => undefined);
      if (!st?.isDirectory()) throw new KilnError("CONTEXT_NOT_DIRECTORY", `build context "${opts.context}" is not a directory`);
      const patterns = await readIgnoreFile(opts.context, this.dockerfilePath);
      return new DirContext(opts.context, createIgnoreMatcher(patterns));
    })();
    return this.mainContext;
  }

  /** Base image of stage `index` (undefined for scratch) and the identity its cache keys use. */
  async baseImage(index: number): Promise<{ image?: Image; id: Digest | "scratch" }> {
    const stage = this.plan.stages[index]!;
    switch (stage.base.kind) {
      case "scratch":
        return { id: "scratch" };
      case "stage": {
        const r = await this.stageResult(stage.base.index);
        return { image: r.image, id: r.state };
      }
      case "context":
        return this.contextImage(stage.base.name);
      case "image":
        return this.pull(stage.base.ref);
    }
  }

  stageResult(index: number): Promise<StageResult> {
    const r = this.stageResults.get(index);
    if (!r) throw new KilnError("INTERNAL", `internal: stage ${index} was not scheduled`);
    return r;
  }

  private async contextImage(name: string): Promise<{ image: Image; id: Digest }> {
    const nc = this.namedContexts.get(name) ?? this.namedContexts.get(name.toLowerCase());
    if (!nc) throw new KilnError("CONTEXT_NAMED_INVALID", `no build context named "${name}"`);
    switch (nc.kind) {
      case "oci-layout": {
        const layout = await OciLayout.open(nc.path);
        const desc = await layout.resolve(nc.selector);
        const imported = await importImage(layout, desc, this.store, this.platform);
        return { image: imported.image, id: imported.manifestDescriptor.digest };
      }
      case "image":
        return this.pull(nc.ref);
      case "dir":
        throw new KilnError("CONTEXT_NAMED_INVALID", `build context "${name}" is a local directory and cannot be used as a base image`);
    }
  }

  private pulls = new Map<string, Promise<{ image: Image; id: Digest }>>();
  pull(ref: string): Promise<{ image: Image; id: Digest }> {
    let p = this.pulls.get(ref);
    if (!p) {
      // The registry client (undici) loads only when a build pulls something.
      p = import("../registry/pull.js").then(({ pullImage }) => pullImage(ref, {
        store: this.store,
        platform: this.platform,
        pull: this.options.pull ?? "missing",
        ...(this.options.insecureRegistries ? { insecureRegistries: this.options.insecureRegistries } : {}),
        ...(this.options.registryCa ? { caFile: this.options.registryCa } : {}),
        ...(this.options.registryTimeouts ? { timeouts: this.options.registryTimeouts } : {}),
        ...(this.options.signal ? { signal: this.options.signal } : {}),
        ...(this.options.onEvent ? { onProgress: this.options.onEvent } : {}),
      })).then((r) => ({ image: r.image, id: r.manifestDescriptor.digest }));
      this.pulls.set(ref, p);
    }
    return p;
  }

  /**
   * The file tree `COPY --from=<from>` reads, seen from stage `stageIndex`: another stage's
   * result, a named context (directory or image), or an image reference.
   */
  async sourceTree(from: string, stageIndex: number): Promise<DirContext> {
    const target = resolveStageRef(this.plan, from, stageIndex);
    switch (target.kind) {
      case "stage": {
        const result = await this.stageResult(target.index);
        if (result.rootfs) return new DirContext(result.rootfs.dir, () => false, { symlinks: "scope" });
        return this.imageTree(`stage:${target.index}`, async () => result.image);
      }
      case "context": {
        const nc = this.namedContexts.get(target.name) ?? this.namedContexts.get(target.name.toLowerCase());
        if (nc?.kind === "dir") {
          const patterns = await readIgnoreFile(nc.path);
          return new DirContext(nc.path, createIgnoreMatcher(patterns));
        }
        return this.imageTree(`context:${target.name}`, async () => (await this.contextImage(target.name)).image);
      }
      case "image":
        return this.imageTree(`image:${target.ref}`, () =>
          this.pull(target.ref).then((r) => r.image, (err: unknown) => {
            const names = this.plan.stages.flatMap((s) => (s.name ? [s.name] : []));
            const hint = suggest(from.toLowerCase(), names);
            throw new KilnError("DOCKERFILE_STAGE_REFERENCE", 
              `--from=${from}: no stage or build context has that name${hint ? ` (did you mean "${hint}"?)` : ""}, and pulling it as an image failed: ${(err as Error).message}`,
            );
          }),
        );
      case "scratch":
        throw new KilnError("DOCKERFILE_STAGE_REFERENCE", `--from=${from}: scratch has no files`);
    }
  }

  /**
   * What `COPY --from=<from>` keys on when the source is another stage or an image: that stage's
   * final cache state or the image's manifest digest. Undefined for local directory contexts,
   * whose files are hashed instead.
   */
  async sourceIdentity(from: string, stageIndex: number): Promise<Digest | undefined> {
    const target = resolveStageRef(this.plan, from, stageIndex);
    switch (target.kind) {
      case "stage":
        return (await this.stageResult(target.index)).state;
      case "context": {
        const nc = this.namedContexts.get(target.name) ?? this.namedContexts.get(target.name.toLowerCase());
        if (nc?.kind === "dir") return undefined;
        return (await this.contextImage(target.name)).id;
      }
      case "image":
        return (await this.pull(target.ref).catch(() => undefined))?.id;
      case "scratch":
        return undefined;
    }
  }

  /** An image's layers extracted into a temporary tree (once per image per build). */
  private imageTree(key: string, image: () => Promise<Image>): Promise<DirContext> {
    let p = this.trees.get(key);
    if (!p) {
      p = (async () => {
        const img = await image();
        await this.cache.ensureLayers(img.layers);
        const rootfs = await this.newRootFS();
        const origin = key.replace(/^(\w+):/, (_, kind: string) => (kind === "context" ? "build context " : `${kind} `));
        await rootfs.applyLayers(
          img.layers.map((l) => ({ diffID: l.diffID, digest: l.descriptor.digest, origin, mediaType: l.descriptor.mediaType, open: () => this.store.open(l.descriptor.digest) })),
        );
        return new DirContext(rootfs.dir, () => false, { symlinks: "scope" });
      })();
      this.trees.set(key, p);
    }
    return p;
  }

  async newRootFS(): Promise<RootFS> {
    // Without namespaces nothing (no nodev mount) would stop a RUN from opening device nodes
    // from layers: keep them in the layer data only, on the dir snapshotter (overlay needs mount).
    const noMounts = this.isolation === "plain-chroot" || this.isolation === "proot";
    const snapshotter = this.options.snapshotter ?? "auto";
    const rootfs = await createRootFS(this.cacheDir, {
      snapshotter: noMounts && snapshotter === "auto" ? "dir" : snapshotter,
      ...(noMounts ? { deviceNodes: "skip" as const } : {}),
      onWarning: (message) => this.emit({ type: "warning", message }),
    });
    this.disposables.push(() => rootfs.dispose());
    return rootfs;
  }

  runner(): Promise<Runner> {
    this.runnerPromise ??= chooseRunner(this.options.isolation ?? "auto", { workDir: join(this.cacheDir, "run") }).then((c) => {
      this.isolation = c.isolation;
      this.emit({ type: "info", message: `isolation: ${c.isolation} (${c.why})` });
      return c.runner;
    });
    return this.runnerPromise;
  }

  /** Remove every temporary tree, rootfs and mount this build made. */
  async dispose(): Promise<void> {
    const errors: unknown[] = [];
    for (const d of this.disposables.reverse()) {
      try {
        await d();
      } catch (err) {
        errors.push(err);
      }
    }
    this.disposables.length = 0;
    if (errors.length > 0) this.emit({ type: "warning", message: `clean-up: ${String(errors[0])}` });
  }
}

/** Remove `tmp/build-<pid>-*` directories whose build process is gone (killed with SIGKILL). */
export async function cleanupStaleTemp(cacheDir: string): Promise<void> {
  const base = join(cacheDir, "tmp");
  const names = await readdir(base).catch(() => [] as string[]);
  for (const name of names) {
    const m = /^build-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === "EPERM";
    }
    if (!alive) await rm(join(base, name), { recursive: true, force: true }).catch(() => undefined);
  }
}
