// `build()`: the whole flow for one Dockerfile. Reads and plans it, rejects what kiln cannot do
// before any work starts, builds the stages the target needs (independent stages concurrently,
// each at most once), then hands the target's image to the outputs.
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { contextFromTar } from "../context/build-context.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { buffer } from "node:stream/consumers";
import { DockerfileError, KilnError, UsageError, abortable } from "../errors.js";
import { parseDockerfile } from "../dockerfile/parse.js";
import type { TypedInstruction } from "../dockerfile/instructions.js";
import type { Image, MaterializedImage } from "../image/image.js";
import { materialize } from "../image/materialize.js";
import type { Digest, Platform } from "../image/oci.js";
import { formatPlatform, hostPlatform, parsePlatform, platformMatches } from "../image/platform.js";
import { BlobStore, defaultCacheDir } from "../store/blob-store.js";
import { writeOutputs } from "../output/write.js";
import { storeImage } from "../image/source.js";
import { planBuild, type BuildPlan } from "../dockerfile/plan.js";
import { DEFAULT_OUTPUT_DIR, parseNamedContext, type BuildOptions, type NamedContext, type OutputSpec } from "./options.js";
import { BuildSession, cleanupStaleTemp, type StageResult } from "./session.js";
import { BuildCache } from "./cache.js";
import { cleanupStale, resolveSnapshotter } from "../fs/rootfs.js";
import { StageBuilder } from "./stage.js";
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
  return abortable(options.signal, () => buildAll(options));
}

async function buildAll(options: BuildOptions): Promise<BuildResult> {
  const cacheDir = resolve(options.cacheDir ?? defaultCacheDir());
  // Root filesystems, mounts and run directories a killed build left behind.
  await cleanupStale(cacheDir).catch(() => undefined);
  await cleanupStaleTemp(cacheDir);
  // An absolute context path: it keys the stat cache, which `kiln build ctx` and `/abs/ctx` share.
  if (options.context !== "-") return buildFrom({ ...options, context: resolve(options.context) }, cacheDir);
  // `kiln build -`: the context is a tar on stdin; as with docker, -f names a file inside it.
  if (options.dockerfile === "-") throw new UsageError("OPTION_INVALID", "the Dockerfile and the context cannot both come from stdin");
  await mkdir(join(cacheDir, "tmp"), { recursive: true });
  const dir = await mkdtemp(join(cacheDir, "tmp", `build-${process.pid}-context-`));
  try {
    const ctx = await contextFromTar(options.contextStream ?? process.stdin, dir, undefined, options.signal);
    const inTar = options.dockerfileText === undefined ? { dockerfile: join(ctx.root, options.dockerfile ?? "Dockerfile"), dockerfileName: options.dockerfile ?? "Dockerfile" } : {};
    return await buildFrom({ ...options, context: ctx.root, ...inTar }, cacheDir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function buildFrom(options: BuildOptions & { dockerfileName?: string }, cacheDir: string): Promise<BuildResult> {
  const store = new BlobStore(cacheDir);
  const { text, file, path: dockerfilePath } = await readDockerfile(options);
  const platform: Platform = options.platform ? parsePlatform(options.platform) : hostPlatform();
  const buildArgs = { ...(options.buildArgs ?? {}) };

  const named = new Map<string, NamedContext>();
  for (const [name, value] of Object.entries(options.buildContexts ?? {})) named.set(name, parseNamedContext(name, value));

  const ast = parseDockerfile(text, { file });
  const plan = planBuild(ast, {
    file,
    buildArgs,
    targetPlatform: platform,
    namedContexts: [...named.keys()],
    ...(options.target ? { target: options.target } : {}),
  });
  for (const w of plan.warnings) options.onEvent?.({ type: "warning", message: `${w.file}:${w.line}: ${w.message}` });
  checkSupported(plan);
  checkRunPlatform(plan, platform);

  const outputs = options.outputs && options.outputs.length > 0
    ? options.outputs
    : [{ type: "oci", dest: resolve(DEFAULT_OUTPUT_DIR), tar: false } as OutputSpec];
  for (const o of outputs) {
    if (o.type === "image" && o.names.length === 0 && (options.tags ?? []).length === 0) {
      throw new UsageError("OPTION_INVALID", "--output type=image needs name=REF (or -t REF)");
    }
  }

  const sde = sourceDateEpoch(options, buildArgs);
  const created = rfc3339(sde !== undefined ? new Date(sde * 1000) : new Date());
  const registry = {
    ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
    ...(options.registryCa ? { caFile: options.registryCa } : {}),
    ...(options.registryTimeouts ? { timeouts: options.registryTimeouts } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    // pulls and pushes (base images, outputs, cache import/export) report pull-progress/push-progress events
    ...(options.onEvent ? { onProgress: options.onEvent } : {}),
  };
  const cache = new BuildCache(
    store,
    {
      ...(options.noCache ? { noCache: true } : {}),
      ...(options.noCacheFilter ? { noCacheFilter: options.noCacheFilter } : {}),
      ...(options.cacheFrom ? { cacheFrom: options.cacheFrom } : {}),
      ...(options.cacheTo ? { cacheTo: options.cacheTo } : {}),
    },
    registry,
    (message) => options.onEvent?.({ type: "warning", message }),
  );
  const session = new BuildSession(options, plan, store, cacheDir, platform, named, dockerfilePath, created, sde, cache);
  try {
    await cache.open();
    if (needsRun(plan)) {
      // isolation and snapshotter problems surface before any work
      await session.runner();
      await resolveSnapshotter(cacheDir, options.snapshotter ?? "auto");
    }
    const target = await runStages(session, plan, options.jobs);
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
    await writeOutputs(await storeImage(store, materialized.manifest), outputs, options.tags ?? [], { ...registry, store });
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

/** Builds the stages in `plan.order`: each after its dependencies, at most `jobs` at once. */
async function runStages(session: BuildSession, plan: BuildPlan, jobs?: number): Promise<StageResult> {
  const limit = Math.max(1, jobs ?? availableParallelism());
  let running = 0;
  const waiting: Array<() => void> = [];
  const acquire = async (): Promise<void> => {
    if (running < limit) {
      running++;
      return;
    }
    await new Promise<void>((r) => waiting.push(r));
  };
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };
  const schedule = (index: number): Promise<StageResult> => {
    const existing = session.stageResults.get(index);
    if (existing) return existing;
    const stage = plan.stages[index]!;
    const p = (async () => {
      for (const d of stage.dependsOn) await schedule(d);
      await acquire();
      try {
        return await new StageBuilder(session, stage, () => session.baseImage(index)).build();
      } finally {
        release();
      }
    })();
    session.stageResults.set(index, p);
    p.catch(() => undefined); // observed through the target's promise
    return p;
  };
  for (const i of plan.order) schedule(i);
  const results = await Promise.allSettled(plan.order.map((i) => session.stageResults.get(i)!));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return session.stageResults.get(plan.target)!;
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
/** RUN executes the image's binaries on this machine: another architecture would need emulation. */
function checkRunPlatform(plan: BuildPlan, platform: Platform): void {
  const host = hostPlatform();
  if (platformMatches(platform, host) || platformMatches(host, platform)) return;
  for (const i of plan.order) {
    const run = plan.stages[i]!.instructions.find((t) => t.kind === "run");
    if (run) {
      throw new DockerfileError("FEATURE_UNSUPPORTED", 
        `RUN for platform ${formatPlatform(platform)} on a ${formatPlatform(host)} machine needs emulation, which kiln does not support yet`,
        run.line,
        plan.file,
      );
    }
  }
}

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
    throw new KilnError("DOCKERFILE_READ", `cannot read Dockerfile ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function sourceDateEpoch(options: BuildOptions, buildArgs: Record<string, string>): number | undefined {
  if (options.sourceDateEpoch !== undefined) return options.sourceDateEpoch;
  const raw = buildArgs.SOURCE_DATE_EPOCH ?? process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === "") return undefined;
  if (!/^\d+$/.test(raw)) throw new UsageError("OPTION_INVALID", `SOURCE_DATE_EPOCH must be a number of seconds, not "${raw}"`);
  return Number(raw);
}

function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}
