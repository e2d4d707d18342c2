// Where a build's files and images come from: the main build context (with .dockerignore), the
// named contexts (`--build-context`: a directory, an OCI layout, an image reference), base images
// (scratch, another stage, a named context, a registry pull — each pulled once per build), and the
// trees `COPY --from` / `RUN --mount=from=` read (a stage's root filesystem or its layers, an
// image's layers extracted once per build) with the identities their keys use.
import { stat } from "node:fs/promises";
import { DirContext, type IgnoreFn } from "../context/build-context.js";
import { withoutGitDirs } from "../context/git.js";
import { createIgnoreMatcher, readIgnoreFile } from "../context/dockerignore.js";
import { suggestName as suggest } from "../frontend/flags.js";
import { resolveStageRef, type BuildPlan, type InheritedArgs } from "../frontend/plan.js";
import { KilnError } from "../errors.js";
import type { RootFS } from "../snapshot/rootfs.js";
import type { Image } from "../image/image.js";
import { OciLayout, importImage } from "../image/layout.js";
import type { Digest, Platform } from "../image/oci.js";
import { formatPlatform } from "../image/platform.js";
import type { BlobStore } from "../store/blob-store.js";
import type { BuildCache } from "./cache.js";
import type { EngineConfig } from "./config.js";
import type { NamedContext } from "./options.js";
import type { StageResult } from "./state.js";
import type { StepSources } from "./step.js";
import { fetchNamedGitContext } from "./git-sources.js";

/** A base image (undefined for scratch) and the identity its stage's keys start from. */
export interface BaseImage {
  image?: Image;
  id: Digest | "scratch";
  /** A stage base's ARGs after its last step (the child stage starts with them). */
  args?: InheritedArgs;
}

export interface SourcesInit {
  config: EngineConfig;
  plan: BuildPlan;
  store: BlobStore;
  cache: BuildCache;
  /** The main context directory and the Dockerfile's path (for `<Dockerfile>.dockerignore`). */
  contextDir: string;
  dockerfilePath: string | undefined;
  namedContexts: ReadonlyMap<string, NamedContext>;
  /** The main context's ignore rules wrapped (a git context leaves `.git` out). */
  contextIgnore?: (ignore: IgnoreFn) => IgnoreFn;
  /** A scheduled stage's result. */
  stageResult(index: number): Promise<StageResult>;
  /** A new root filesystem, disposed with the build. */
  newRootFS(): Promise<RootFS>;
  /** The platform stage `index` is built for (`FROM --platform=...`); default: the config's. */
  stagePlatform?(index: number): Platform;
}

export class BuildSources {
  private mainContext?: Promise<DirContext>;
  private readonly trees = new Map<string, Promise<DirContext>>();
  private readonly pulls = new Map<string, Promise<{ image: Image; id: Digest }>>();
  private readonly resolved = new Map<string, { uri: string; digest: Digest }>();
  private readonly lateGit = new Map<string, Promise<NamedContext & { kind: "dir" }>>();
  /** Layer blobs of the base images taken from outside the build (registries, named contexts). */
  readonly baseLayers = new Set<Digest>();

  constructor(private readonly init: SourcesInit) {}

  /** The trees the steps of stage `stageIndex` may read (`--from` resolved as seen from it). */
  forStage(stageIndex: number): StepSources {
    return {
      context: () => this.context(),
      tree: (from) => this.sourceTree(from, stageIndex),
      identity: (from) => this.sourceIdentity(from, stageIndex),
      recordDownload: (url, digest) => this.record(url, digest),
    };
  }

  private record(uri: string, digest: Digest): void {
    this.resolved.set(`${uri} ${digest}`, { uri, digest });
  }

  /** What the build read from outside its context: base images and `COPY --from` images by manifest digest, `ADD <url>` downloads by content digest. */
  dependencies(): Array<{ uri: string; digest: Digest }> {
    return [...this.resolved.values()];
  }

  /** The main build context (a directory; `kiln build -` extracted its tar), with .dockerignore applied. */
  context(): Promise<DirContext> {
    this.mainContext ??= (async () => {
      const dir = this.init.contextDir;
      const st = await stat(dir).catch(() => undefined);
      if (!st?.isDirectory()) throw new KilnError("CONTEXT_NOT_DIRECTORY", `build context "${dir}" is not a directory`);
      const patterns = await readIgnoreFile(dir, this.init.dockerfilePath);
      const ignore = createIgnoreMatcher(patterns);
      return new DirContext(dir, this.init.contextIgnore ? this.init.contextIgnore(ignore) : ignore);
    })();
    return this.mainContext;
  }

  /** Base image of stage `index` (undefined for scratch) and the identity its cache keys use. */
  async baseImage(index: number): Promise<BaseImage> {
    const stage = this.init.plan.stages[index]!;
    switch (stage.base.kind) {
      case "scratch":
        return { id: "scratch" };
      case "stage": {
        const r = await this.init.stageResult(stage.base.index);
        return r.args ? { image: r.image, id: r.state, args: r.args } : { image: r.image, id: r.state };
      }
      case "context":
        return this.external(await this.contextImage(stage.base.name, this.platformOf(index)));
      case "image":
        return this.external(await this.pull(stage.base.ref, this.platformOf(index)));
    }
  }

  private external<T extends { image?: Image }>(base: T): T {
    for (const l of base.image?.layers ?? []) this.baseLayers.add(l.descriptor.digest);
    return base;
  }

  private platformOf(index: number): Platform {
    return this.init.stagePlatform?.(index) ?? this.init.config.platform;
  }

  /** `--build-context NAME=...` as the Dockerfile names it (names match case-insensitively, as stages do). */
  private named(name: string): NamedContext | undefined {
    const named = this.init.namedContexts;
    return named.get(name) ?? named.get(name.toLowerCase());
  }

  /**
   * The named context, a git one fetched now if the build did not (only an ONBUILD trigger of a
   * base image names it: the plan could not know), once per build.
   */
  private async namedFetched(name: string): Promise<NamedContext | undefined> {
    const nc = this.named(name);
    if (nc?.kind !== "git") return nc;
    let p = this.lateGit.get(nc.url);
    if (!p) {
      p = fetchNamedGitContext(this.init.config, name, nc.url);
      this.lateGit.set(nc.url, p);
    }
    return p;
  }

  private async contextImage(name: string, platform: Platform): Promise<{ image: Image; id: Digest }> {
    const nc = this.named(name);
    if (!nc) throw new KilnError("CONTEXT_NAMED_INVALID", `no build context named "${name}"`);
    switch (nc.kind) {
      case "oci-layout": {
        const layout = await OciLayout.open(nc.path);
        const desc = await layout.resolve(nc.selector);
        const imported = await importImage(layout, desc, this.init.store, platform);
        this.record(`oci-layout://${nc.path}${nc.selector ? `:${nc.selector}` : ""}`, imported.manifestDescriptor.digest);
        return { image: imported.image, id: imported.manifestDescriptor.digest };
      }
      case "image":
        return this.pull(nc.ref, platform);
      case "dir":
        throw new KilnError("CONTEXT_NAMED_INVALID", `build context "${name}" is a ${nc.withoutGit ? "git repository" : "local directory"} and cannot be used as a base image`);
      case "git":
        throw new KilnError("INTERNAL", `internal: git context "${name}" was not fetched`);
    }
  }

  /** `ref` pulled for `platform`, once per build. */
  private pull(ref: string, platform: Platform): Promise<{ image: Image; id: Digest }> {
    const key = `${formatPlatform(platform)} ${ref}`;
    let p = this.pulls.get(key);
    if (!p) {
      const { config, store } = this.init;
      // The registry client (undici) loads only when a build pulls something.
      p = import("../registry/pull.js")
        .then(({ pullImage }) => pullImage(ref, { ...config.registry, store, platform, pull: config.pull }))
        .then((r) => {
          this.record(`pkg:docker/${ref}`, r.manifestDescriptor.digest);
          return { image: r.image, id: r.manifestDescriptor.digest };
        });
      this.pulls.set(key, p);
    }
    return p;
  }

  /**
   * The file tree `COPY --from=<from>` reads, seen from stage `stageIndex`: another stage's
   * result, a named context (directory or image), or an image reference.
   */
  private async sourceTree(from: string, stageIndex: number): Promise<DirContext> {
    const target = resolveStageRef(this.init.plan, from, stageIndex);
    switch (target.kind) {
      case "stage": {
        const result = await this.init.stageResult(target.index);
        if (result.rootfs) return new DirContext(result.rootfs.dir, () => false, { symlinks: "scope" });
        return this.imageTree(`stage:${target.index}`, async () => result.image);
      }
      case "context": {
        const nc = await this.namedFetched(target.name);
        if (nc?.kind === "dir") {
          const patterns = await readIgnoreFile(nc.path);
          const ignore = createIgnoreMatcher(patterns);
          return new DirContext(nc.path, nc.withoutGit ? withoutGitDirs(ignore) : ignore);
        }
        const platform = this.platformOf(stageIndex);
        return this.imageTree(`context:${target.name}\u0000${formatPlatform(platform)}`, async () => (await this.contextImage(target.name, platform)).image);
      }
      case "image":
        return this.imageTree(`image:${target.ref}\u0000${formatPlatform(this.platformOf(stageIndex))}`, () =>
          this.pull(target.ref, this.platformOf(stageIndex)).then((r) => r.image, (err: unknown) => {
            const names = this.init.plan.stages.flatMap((s) => (s.name ? [s.name] : []));
            const hint = suggest(from.toLowerCase(), names);
            throw new KilnError(
              "DOCKERFILE_STAGE_REFERENCE",
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
  private async sourceIdentity(from: string, stageIndex: number): Promise<Digest | undefined> {
    const target = resolveStageRef(this.init.plan, from, stageIndex);
    switch (target.kind) {
      case "stage":
        return (await this.init.stageResult(target.index)).state;
      case "context": {
        if ((await this.namedFetched(target.name))?.kind === "dir") return undefined;
        return (await this.contextImage(target.name, this.platformOf(stageIndex))).id;
      }
      case "image":
        return (await this.pull(target.ref, this.platformOf(stageIndex)).catch(() => undefined))?.id;
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
        const { cache, store } = this.init;
        await cache.ensureLayers(img.layers);
        const rootfs = await this.init.newRootFS();
        // the key is "kind:name", then NUL and the platform for images
        const origin = key.split("\u0000")[0]!.replace(/^(\w+):/, (_, kind: string) => (kind === "context" ? "build context " : `${kind} `));
        await rootfs.applyLayers(
          img.layers.map((l) => ({ diffID: l.diffID, digest: l.descriptor.digest, origin, mediaType: l.descriptor.mediaType, open: () => store.open(l.descriptor.digest) })),
        );
        return new DirContext(rootfs.dir, () => false, { symlinks: "scope" });
      })();
      this.trees.set(key, p);
    }
    return p;
  }
}
