// `build()`: the whole flow for one Dockerfile. Resolves the options into an EngineConfig, reads
// and plans the Dockerfile, rejects what kiln cannot do before any work starts, has the scheduler
// build the stages the target needs (independent stages concurrently, each at most once), then
// hands the target's image to the outputs. `buildWith()` is the same with the RUN backends and
// snapshotters given (EngineBackends: the seam the in-process engine tests use).
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { contextFromTar } from "../context/build-context.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import { join, resolve } from "node:path";
import { buffer } from "node:stream/consumers";
import { DockerfileError, KilnError, UsageError, abortable } from "../errors.js";
import { parseDockerfile } from "../dockerfile/parse.js";
import type { TypedInstruction } from "../dockerfile/instructions.js";
import type { Image, MaterializedImage } from "../image/image.js";
import { materialize } from "../image/materialize.js";
import type { Digest, Platform } from "../image/oci.js";
import { formatPlatform, hostPlatform, platformMatches } from "../image/platform.js";
import { BlobStore } from "../store/blob-store.js";
import { writeOutputs } from "../output/write.js";
import { storeImage } from "../image/source.js";
import { normalizeName } from "../images/name.js";
import { setName } from "../store/names.js";
import { planBuild, type BuildPlan } from "../dockerfile/plan.js";
import { DEFAULT_OUTPUT_DIR, parseNamedContext, type BuildOptions, type NamedContext, type OutputSpec } from "./options.js";
import { BuildSession, DEFAULT_BACKENDS, cleanupStaleTemp, type EngineBackends } from "./session.js";
import { BuildCache } from "./cache.js";
import { resolveConfig, type EngineConfig } from "./config.js";
import { cleanupStale } from "../fs/rootfs.js";
import { StageScheduler } from "./scheduler.js";
import { BuildSources } from "./sources.js";
import { buildStage, type StageEnvironment } from "./stage.js";
import { isGitSource } from "./steps/copy.js";
import { SUPPORTED_MOUNTS } from "./steps/run.js";

export interface BuildResult {
  image: Image;
  materialized: MaterializedImage;
  /** Manifest digest (what a registry reports for the image). */
  digest: Digest;
  configDigest: Digest;
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
  const store = new BlobStore(config.cacheDir);
  const { text, file, path: dockerfilePath } = await readDockerfile(options);

  const named = new Map<string, NamedContext>();
  for (const [name, value] of Object.entries(options.buildContexts ?? {})) named.set(name, parseNamedContext(name, value));

  const ast = parseDockerfile(text, { file });
  const plan = planBuild(ast, {
    file,
    buildArgs: { ...config.buildArgs },
    targetPlatform: config.platform,
    namedContexts: [...named.keys()],
    ...(options.target ? { target: options.target } : {}),
  });
  for (const w of plan.warnings) config.emit({ type: "warning", message: `${w.file}:${w.line}: ${w.message}` });
  checkSupported(plan);
  checkRunPlatform(plan, config.platform);

  const outputs = options.outputs && options.outputs.length > 0
    ? options.outputs
    : options.load ? [] : [{ type: "oci", dest: resolve(DEFAULT_OUTPUT_DIR), tar: false } as OutputSpec];
  for (const o of outputs) {
    if (o.type === "image" && o.names.length === 0 && (options.tags ?? []).length === 0) {
      throw new UsageError("OPTION_INVALID", "--output type=image needs name=REF (or -t REF)");
    }
  }
  if (options.load && (options.tags ?? []).length === 0) throw new UsageError("OPTION_INVALID", "--load needs a name: give -t NAME");
  // -t names (and type=image names not pushed) go into the local image store; checked before any work
  const storeNames = [
    ...(options.tags ?? []).map((t) => normalizeName(t, "-t")),
    ...outputs.flatMap((o) => (o.type === "image" && !o.push ? o.names.map((n) => normalizeName(n, "--output name")) : [])),
  ];

  const cache = new BuildCache(store, config.cache, config.registry, (message) => config.emit({ type: "warning", message }));
  const session = new BuildSession(config, backends);
  const scheduler = new StageScheduler(plan, config.jobs);
  const sources = new BuildSources({
    config, plan, store, cache, contextDir: options.context, dockerfilePath, namedContexts: named,
    stageResult: (index) => scheduler.result(index),
    newRootFS: () => session.newRootFS(),
  });
  const env: StageEnvironment = { config, plan, store, cache, session, sources };
  try {
    await cache.open();
    if (needsRun(plan)) await session.preflight();
    const target = await scheduler.run((index) => buildStage(env, plan.stages[index]!));
    const image = target.image;
    const cfg = image.config;
    if (options.labels && Object.keys(options.labels).length > 0) {
      cfg.config ??= {};
      cfg.config.Labels = { ...(cfg.config.Labels ?? {}), ...options.labels };
    }
    await cache.ensureLayers(image.layers);
    const materialized = await materialize(image, store, options.format ?? "oci", {
      ...(options.annotations ? { annotations: options.annotations } : {}),
    });
    await writeOutputs(await storeImage(store, materialized.manifest), outputs, options.tags ?? [], { ...config.registry, store });
    for (const o of outputs) {
      if (o.type !== "local" && o.type !== "tar") continue;
      const { exportToDirectory, exportToTar } = await import("../container/export.js");
      const img = await storeImage(store, materialized.manifest);
      const exportOptions = { onWarning: (message: string) => config.emit({ type: "warning", message }), ...(options.signal ? { signal: options.signal } : {}) };
      if (o.type === "local") await exportToDirectory(img, o.dest, exportOptions);
      else await exportToTar(img, o.dest, join(config.cacheDir, "tmp"), exportOptions);
    }
    for (const name of new Set(storeNames)) await setName(config.cacheDir, name, materialized.manifest);
    await cache.finish(plan.target);
    const result: BuildResult = {
      image,
      materialized,
      digest: materialized.manifest.digest,
      configDigest: materialized.config.digest,
      outputs,
      plan,
    };
    if (options.iidfile) await writeFileAtomic(options.iidfile, result.digest);
    if (options.metadataFile) {
      const meta = {
        "containerimage.digest": result.digest,
        "containerimage.config.digest": result.configDigest,
        "containerimage.descriptor": materialized.manifest,
        "image.name": (options.tags ?? []).join(","),
        "kiln.steps": cache.steps,
        ...(session.isolation ? { "kiln.isolation": session.isolation } : {}),
      };
      await writeFileAtomic(options.metadataFile, JSON.stringify(meta, null, 2) + "\n");
    }
    return result;
  } finally {
    await cache.close();
    await session.dispose();
  }
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

/** RUN executes the image's binaries on this machine: another architecture would need emulation. */
function checkRunPlatform(plan: BuildPlan, platform: Platform): void {
  const host = hostPlatform();
  if (platformMatches(platform, host) || platformMatches(host, platform)) return;
  for (const i of plan.order) {
    const run = plan.stages[i]!.instructions.find((t) => t.kind === "run");
    if (run) {
      throw new DockerfileError(
        "FEATURE_UNSUPPORTED",
        `RUN for platform ${formatPlatform(platform)} on a ${formatPlatform(host)} machine needs emulation, which kiln does not support yet`,
        run.line,
        plan.file,
      );
    }
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
