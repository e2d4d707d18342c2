// `build()`: the whole flow for one Dockerfile. Resolves the options into an EngineConfig, reads
// and plans the Dockerfile (once per target platform, targets.ts), rejects what kiln cannot do
// before any work starts, has a scheduler per platform build the stages the target needs
// (independent stages and platforms concurrently within --jobs, each stage at most once per
// platform), then hands the target's image (several platforms, or attestations: an image index
// over the platform images and their attestation manifests) to the outputs. `buildWith()` is the same with the RUN backends and snapshotters given
// (EngineBackends: the seam the in-process engine tests use).
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { contextFromTar } from "../context/build-context.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import { join, resolve } from "node:path";
import { buffer } from "node:stream/consumers";
import { DockerfileError, KilnError, UsageError, abortable } from "../errors.js";
import { parseDockerfile } from "../frontend/parse.js";
import type { TypedInstruction } from "../frontend/instructions.js";
import type { Image, MaterializedImage } from "../image/image.js";
import { materialize } from "../image/materialize.js";
import type { Descriptor, Digest, Platform } from "../image/oci.js";
import { isIndexSource, storeIndex, type OutputImage, type PlatformImage } from "../image/image-index.js";
import { formatPlatform } from "../image/platform.js";
import { BlobStore } from "../store/blob-store.js";
import { checkAttestationOutputs, writeOutputs } from "../output/write.js";
import { attestImage, sha256Hex } from "../attest/attest.js";
import { attestationEntry } from "../attest/store.js";
import { wantsAttestations, type AttestRequest } from "../attest/request.js";
import { VERSION } from "../version.js";
import { storeImage, type ImageSource } from "../image/source.js";
import { normalizeName } from "../images/name.js";
import { setName } from "../store/names.js";
import type { BuildPlan } from "../frontend/plan.js";
import { DEFAULT_OUTPUT_DIR, parseNamedContext, type BuildOptions, type NamedContext, type OutputSpec } from "./options.js";
import { BuildSession, DEFAULT_BACKENDS, cleanupStaleTemp, type EngineBackends } from "./session.js";
import { BuildCache } from "./cache.js";
import { resolveConfig, type EngineConfig } from "./config.js";
import { planTargets, prepareStages } from "./targets.js";
import { cleanupStale } from "../snapshot/rootfs.js";
import { JobSlots, StageScheduler } from "./scheduler.js";
import { BuildSources } from "./sources.js";
import { buildStage, type StageEnvironment } from "./stage.js";
import { isGitSource } from "./steps/copy.js";
import { SUPPORTED_MOUNTS } from "./steps/run.js";

export interface BuildResult {
  /** The (first) platform's image. */
  image: Image;
  materialized: MaterializedImage;
  /** Manifest digest, or the index digest with several platforms (what a registry reports for the image; one platform with attestations: still the image manifest's). */
  digest: Digest;
  /** The (first) platform's config digest. */
  configDigest: Digest;
  /** Each target platform's image, in --platform order. */
  platforms: Array<{ platform: string; digest: Digest; configDigest: Digest }>;
  /** The image index's descriptor, with several platforms or attestations. */
  index?: Descriptor;
  outputs: OutputSpec[];
  plan: BuildPlan;
}

/**
 * Build one Dockerfile. With `options.signal`, cancellation reaches every long operation (base
 * pulls, context hashing, RUN, ADD <url>, cache import/export, outputs and pushes) and the
 * promise rejects with an AbortError (cause: the signal's reason); outputs are written
 * atomically, so nothing half-written is left.
 */
export async function build(options: BuildOptions): Promise<BuildResult> {
  return buildWith(options, DEFAULT_BACKENDS);
}

/**
 * `build()` with the RUN backends and snapshotters given (the engine's seam: an in-process test
 * passes a fake runner and a fake root filesystem).
 */
export async function buildWith(options: BuildOptions, backends: EngineBackends): Promise<BuildResult> {
  return abortable(options.signal, () => buildAll(options, backends));
}

async function buildAll(options: BuildOptions, backends: EngineBackends): Promise<BuildResult> {
  const config = resolveConfig(options);
  const cacheDir = config.cacheDir;
  // Root filesystems, mounts and run directories a killed build left behind.
  await cleanupStale(cacheDir).catch(() => undefined);
  await cleanupStaleTemp(cacheDir);
  // An absolute context path: it keys the stat cache, which `kiln build ctx` and `/abs/ctx` share.
  if (options.context !== "-") return buildFrom({ ...options, context: resolve(options.context) }, config, backends);
  // `kiln build -`: the context is a tar on stdin; as with docker, -f names a file inside it.
  if (options.dockerfile === "-") throw new UsageError("OPTION_INVALID", "the Dockerfile and the context cannot both come from stdin");
  await mkdir(join(cacheDir, "tmp"), { recursive: true });
  const dir = await mkdtemp(join(cacheDir, "tmp", `build-${process.pid}-context-`));
  try {
    const ctx = await contextFromTar(options.contextStream ?? process.stdin, dir, undefined, config.signal);
    const inTar = options.dockerfileText === undefined ? { dockerfile: join(ctx.root, options.dockerfile ?? "Dockerfile"), dockerfileName: options.dockerfile ?? "Dockerfile" } : {};
    return await buildFrom({ ...options, context: ctx.root, ...inTar }, config, backends);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function buildFrom(options: BuildOptions & { dockerfileName?: string }, config: EngineConfig, backends: EngineBackends): Promise<BuildResult> {
  const startedOn = new Date();
  const store = new BlobStore(config.cacheDir);
  const { text, file, path: dockerfilePath } = await readDockerfile(options);

  const named = new Map<string, NamedContext>();
  for (const [name, value] of Object.entries(options.buildContexts ?? {})) named.set(name, parseNamedContext(name, value));

  const ast = parseDockerfile(text, { file });
  const planned = planTargets(ast, config, {
    file,
    namedContexts: [...named.keys()],
    ...(options.target ? { target: options.target } : {}),
  });
  const plan = planned[0]!.plan;
  for (const w of plan.warnings) config.emit({ type: "warning", message: `${w.file}:${w.line}: ${w.message}` });
  checkSupported(plan);

  const outputs = options.outputs && options.outputs.length > 0
    ? options.outputs
    : options.load ? [] : [{ type: "oci", dest: resolve(DEFAULT_OUTPUT_DIR), tar: false } as OutputSpec];
  for (const o of outputs) {
    if (o.type === "image" && o.names.length === 0 && (options.tags ?? []).length === 0) {
      throw new UsageError("OPTION_INVALID", "--output type=image needs name=REF (or -t REF)");
    }
    if (o.type === "tar" && planned.length > 1) {
      throw new UsageError("OPTION_INVALID", `--output type=tar takes one platform, not ${planned.length}; use type=local (a directory per platform)`);
    }
    if (o.type === "docker" && planned.length > 1) {
      throw new UsageError("OPTION_INVALID", `--output type=docker takes one platform, not ${planned.length} (${config.platforms.map(formatPlatform).join(",")}); use type=oci for an image index`);
    }
  }
  const attest = wantsAttestations(options.attest) ? options.attest : undefined;
  if (attest) {
    checkAttestationOutputs(outputs);
    if (options.format === "docker") throw new UsageError("OPTION_INVALID", "--format docker cannot carry attestations (--provenance/--sbom/--attest need an OCI index): use --format oci");
  }
  if (options.load && (options.tags ?? []).length === 0) throw new UsageError("OPTION_INVALID", "--load needs a name: give -t NAME");
  // -t names (and type=image names not pushed) go into the local image store; checked before any work
  const storeNames = [
    ...(options.tags ?? []).map((t) => normalizeName(t, "-t")),
    ...outputs.flatMap((o) => (o.type === "image" && !o.push ? o.names.map((n) => normalizeName(n, "--output name")) : [])),
  ];

  const targets = await prepareStages(planned, config);
  const format = options.format ?? "oci";
  const cache = new BuildCache(store, config.cache, config.registry, (message) => config.emit({ type: "warning", message }));
  const session = new BuildSession(config, backends);
  // Every platform's stages share the --jobs slots: platforms build concurrently within them.
  const slots = new JobSlots(config.jobs);
  let succeeded = false;
  try {
    await cache.open();
    if (targets.some((t) => needsRun(t.plan))) await session.preflight();
    const settled = await Promise.allSettled(targets.map(async (t): Promise<PlatformBuild> => {
      const scheduler = new StageScheduler(t.plan, slots);
      const sources = new BuildSources({
        config: t.config, plan: t.plan, store, cache, contextDir: options.context, dockerfilePath, namedContexts: named,
        stageResult: (index) => scheduler.result(index),
        newRootFS: () => session.newRootFS(),
        stagePlatform: (index) => (t.stageConfigs.get(index) ?? t.config).platform,
      });
      const env: StageEnvironment = { config: t.config, plan: t.plan, store, cache, session, sources };
      const target = await scheduler.run((index) => buildStage({ ...env, config: t.stageConfigs.get(index) ?? t.config }, t.plan.stages[index]!));
      const image = target.image;
      const cfg = image.config;
      if (options.labels && Object.keys(options.labels).length > 0) {
        cfg.config ??= {};
        cfg.config.Labels = { ...(cfg.config.Labels ?? {}), ...options.labels };
      }
      await cache.ensureLayers(image.layers);
      const materialized = await materialize(image, store, format, {
        ...(options.annotations ? { annotations: options.annotations } : {}),
      });
      return { platform: t.config.platform, image, materialized, source: await storeImage(store, materialized.manifest), sources };
    }));
    // Every platform settles before the session's resources go: the first failure is the build's.
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const built = settled.map((r) => (r as PromiseFulfilledResult<PlatformBuild>).value);
    const first = built[0]!;
    const entries: PlatformImage[] = built.map((b) => ({ platform: b.platform, image: b.source }));
    // Attestations: after the platform images, one attestation manifest per platform.
    if (attest) {
      const attestation = { request: attest, store, cache, config, options, text, file, startedOn };
      for (const b of built) entries.push(await attestationEntry(store, await attestPlatform(attestation, b, outputs)));
    }
    const output: OutputImage = entries.length === 1 ? first.source : await storeIndex(store, entries, format);
    await writeOutputs(output, outputs, options.tags ?? [], { ...config.registry, store });
    for (const o of outputs) {
      if (o.type !== "local" && o.type !== "tar") continue;
      const { exportToDirectory, exportToTar } = await import("../container/export.js");
      const exportOptions = { onWarning: (message: string) => config.emit({ type: "warning", message }), ...(options.signal ? { signal: options.signal } : {}) };
      if (o.type === "tar") await exportToTar(first.source, o.dest, join(config.cacheDir, "tmp"), exportOptions);
      // several platforms: one subdirectory each, named as buildx names them (linux_arm64)
      else if (built.length === 1) await exportToDirectory(first.source, o.dest, exportOptions);
      else for (const b of built) await exportToDirectory(b.source, join(o.dest, formatPlatform(b.platform).replaceAll("/", "_")), exportOptions);
    }
    for (const name of new Set(storeNames)) await setName(config.cacheDir, name, output.manifest);
    await cache.finish(plan.target);
    const result: BuildResult = {
      image: first.image,
      materialized: first.materialized,
      digest: built.length === 1 ? first.materialized.manifest.digest : output.manifest.digest,
      configDigest: first.materialized.config.digest,
      platforms: built.map((b) => ({ platform: formatPlatform(b.platform), digest: b.materialized.manifest.digest, configDigest: b.materialized.config.digest })),
      ...(isIndexSource(output) ? { index: output.manifest } : {}),
      outputs,
      plan,
    };
    if (options.iidfile) await writeFileAtomic(options.iidfile, result.digest);
    if (options.metadataFile) {
      const meta = {
        "containerimage.digest": result.digest,
        // an index has no config of its own (as buildx writes it)
        ...(built.length === 1 ? { "containerimage.config.digest": result.configDigest } : {}),
        "containerimage.descriptor": built.length === 1 ? first.materialized.manifest : output.manifest,
        ...(built.length > 1 ? { "kiln.platforms": result.platforms } : {}),
        ...(attest ? { "kiln.attestations.index": output.manifest } : {}),
        "image.name": (options.tags ?? []).join(","),
        "kiln.steps": cache.steps,
        ...(session.isolation ? { "kiln.isolation": session.isolation } : {}),
      };
      await writeFileAtomic(options.metadataFile, JSON.stringify(meta, null, 2) + "\n");
    }
    succeeded = true;
    return result;
  } finally {
    await cache.close();
    // a build that succeeded leaves its root filesystems' removal to a detached process: tens of
    // thousands of unlinks (the dir snapshotter, as in a pod) are off the build's wall time
    await session.dispose({ background: succeeded });
  }
}

/** One target platform's built image. */
interface PlatformBuild {
  platform: Platform;
  image: Image;
  materialized: MaterializedImage;
  source: ImageSource;
  /** What this platform's build read (its provenance's resolved dependencies). */
  sources: BuildSources;
}

/** What every platform's attestations share. */
interface AttestationContext {
  request: AttestRequest;
  store: BlobStore;
  cache: BuildCache;
  config: EngineConfig;
  options: BuildOptions;
  /** The Dockerfile's text and name. */
  text: string;
  file: string;
  startedOn: Date;
}

/** Provenance and/or SBOM statements about one platform's image manifest, stored as an attestation manifest. */
async function attestPlatform(a: AttestationContext, b: PlatformBuild, outputs: OutputSpec[]): ReturnType<typeof attestImage> {
  const { config, options } = a;
  const names = [...(options.tags ?? []), ...outputs.flatMap((o) => (o.type === "image" ? o.names : []))];
  const deps = b.sources.dependencies().map((d) => ({ uri: d.uri, digest: { sha256: d.digest.slice("sha256:".length) } }));
  const dockerfileSha = sha256Hex(a.text);
  const sde = config.sourceDateEpoch;
  const manifest = b.materialized.manifest;
  const platform = formatPlatform(b.platform);
  return attestImage({
    request: a.request, store: a.store, image: b.image, manifest, platform: b.platform, names,
    provenance: {
      dockerfile: { path: a.file, sha256: dockerfileSha },
      buildArgs: config.buildArgs,
      ...(options.target ? { target: options.target } : {}),
      dependencies: deps,
      // a build for several platforms records each step with its platform: this one's only
      steps: a.cache.steps
        .filter((s) => s.platform === undefined || s.platform === platform)
        .map((s) => ({ stage: s.stage, step: s.step, instruction: s.instruction, cached: s.cached })),
      version: VERSION,
      startedOn: a.startedOn,
      // with SOURCE_DATE_EPOCH, an id fixed by what was built (never by the build args' values)
      invocationId: sde !== undefined ? sha256Hex(JSON.stringify([dockerfileSha, options.target ?? "", deps, manifest.digest])).slice(0, 32) : randomUUID(),
    },
    ...(sde !== undefined ? { sourceDateEpoch: sde } : {}),
    ...(config.signal ? { signal: config.signal } : {}),
  });
}

/** Everything kiln cannot do yet is an error naming the feature and the line, before any work. */
function checkSupported(plan: BuildPlan): void {
  for (const i of plan.order) {
    for (const inst of plan.stages[i]!.instructions) checkInstruction(inst, plan.file);
  }
}

function checkInstruction(inst: TypedInstruction, file: string): void {
  const fail = (msg: string): never => {
    throw new DockerfileError("FEATURE_UNSUPPORTED", msg, inst.line, file);
  };
  switch (inst.kind) {
    case "run":
      if (inst.security === "insecure") fail("RUN --security=insecure is not supported (kiln never runs steps privileged)");
      for (const m of inst.mounts) {
        if (!SUPPORTED_MOUNTS.has(m.type)) fail(`RUN --mount=type=${m.type} is not supported yet`);
        if (m.type === "cache" && m.from !== undefined) fail("RUN --mount=type=cache,from=... is not supported yet");
      }
      break;
    case "add":
      if (inst.keepGitDir) fail("ADD --keep-git-dir is not supported yet (git sources are not supported)");
      for (const s of inst.sources) if (isGitSource(s)) fail(`ADD: git sources are not supported yet ("${s}")`);
      break;
    case "onbuild":
      checkInstruction(inst.trigger, file);
      break;
    default:
      break;
  }
}

/** Whether the stages to build have RUN steps (ONBUILD RUN triggers of a base surface later). */
function needsRun(plan: BuildPlan): boolean {
  return plan.order.some((i) => plan.stages[i]!.instructions.some((t) => t.kind === "run"));
}

async function readDockerfile(options: BuildOptions & { dockerfileName?: string }): Promise<{ text: string; file: string; path?: string }> {
  if (options.dockerfile === "-" || (options.dockerfileText !== undefined && options.dockerfile === undefined)) {
    if (options.dockerfileText !== undefined) return { text: options.dockerfileText, file: "Dockerfile" };
    return { text: (await buffer(process.stdin)).toString("utf8"), file: "Dockerfile" };
  }
  const path = resolve(options.dockerfile ?? join(options.context, "Dockerfile"));
  const file = options.dockerfileName ?? options.dockerfile ?? "Dockerfile";
  try {
    return { text: await readFile(path, "utf8"), file, path };
  } catch (err) {
    throw new KilnError("DOCKERFILE_READ", `cannot read Dockerfile ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}
