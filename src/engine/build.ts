// `build()`: the whole flow for one Dockerfile. Resolves the options into an EngineConfig, reads
// and plans the Dockerfile (once per target platform, targets.ts), rejects what kiln cannot do
// before any work starts, has a scheduler per platform build the stages the target needs
// (independent stages and platforms concurrently within --jobs, each stage at most once per
// platform, and once for all of them when it is the same work for each: stage-identity.ts), then
// hands the target's image (several platforms, or attestations: an image index over the platform
// images and their attestation manifests; by default min provenance when pushing,
// attest/request.ts) to the outputs, and with --attest-referrers pushes the statements as OCI
// referrers too. `buildWith()` is the same with the RUN backends and snapshotters given
// (EngineBackends: the seam the in-process engine tests use).
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { contextFromTar } from "../context/build-context.js";
import { readVcsInfo, type VcsInfo } from "../context/vcs.js";
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
import { checkAttestationOutputs, outputCompression, writeOutputs } from "../output/write.js";
import { recompressLayers } from "../layer/recompress.js";
import { attestImage, sha256Hex, type ExtraScan } from "../attest/attest.js";
import { scansContext, scansStage } from "../attest/scan-targets.js";
import { attestationEntry, type StoredAttestations } from "../attest/store.js";
import { referrerArtifacts } from "../attest/referrers.js";
import { attestationRecords, type AttestationRecord } from "../attest/summary.js";
import type { Referrer } from "../registry/referrers.js";
import { checkReferrers, effectiveAttestations, gitInfoRequest, wantsAttestations, type AttestRequest } from "../attest/request.js";
import { VERSION } from "../version.js";
import { storeBlobs, storeImage, type ImageSource } from "../image/source.js";
import { normalizeName } from "../images/name.js";
import { setName } from "../store/names.js";
import type { BuildPlan } from "../frontend/plan.js";
import { DEFAULT_OUTPUT_DIR, parseNamedContext, type BuildOptions, type NamedContext, type OutputSpec } from "./options.js";
import { BuildSession, DEFAULT_BACKENDS, cleanupStaleTemp, type EngineBackends } from "./session.js";
import { BuildCache } from "./cache.js";
import { resolveConfig, type EngineConfig } from "./config.js";
import { planTargets, prepareStages } from "./targets.js";
import { cleanupStale } from "../snapshot/rootfs.js";
import { JobSlots, StageScheduler, type SharedStages } from "./scheduler.js";
import { stageIdentities } from "./stage-identity.js";
import { BuildSources } from "./sources.js";
import { buildStage, type StageEnvironment } from "./stage.js";
import { isGitUrl, parseGitUrl, redactUrl } from "../context/git-url.js";
import { remoteWithoutCredentials, withoutGitDirs } from "../context/git.js";
import type { IgnoreFn } from "../context/build-context.js";
import { fetchGitContext, fetchNamedGitContext, keepGitDirArg } from "./git-sources.js";
import { namedContextsUsed } from "./named-usage.js";
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
  /** Per platform, the attestation manifest and statements made (and referrers pushed), when any. */
  attestations?: AttestationRecord[];
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
  try {
    return await buildConfigured(options, config, backends);
  } finally {
    await config.ssh.dispose();
  }
}

async function buildConfigured(options: BuildOptions, config: EngineConfig, backends: EngineBackends): Promise<BuildResult> {
  const cacheDir = config.cacheDir;
  // Root filesystems, mounts and run directories a killed build left behind.
  await cleanupStale(cacheDir).catch(() => undefined);
  await cleanupStaleTemp(cacheDir);
  if (isGitUrl(options.context)) return buildFromGit(options, config, backends);
  // An absolute context path: it keys the stat cache, which `kiln build ctx` and `/abs/ctx` share.
  if (options.context !== "-") return buildFrom({ ...options, context: resolve(options.context) }, config, backends);
  // `kiln build -`: the context is a tar on stdin; as with docker, -f names a file inside it.
  if (options.dockerfile === "-") throw new UsageError("OPTION_INVALID", "the Dockerfile and the context cannot both come from stdin");
  await mkdir(join(cacheDir, "tmp"), { recursive: true });
  const dir = await mkdtemp(join(cacheDir, "tmp", `build-${process.pid}-context-`));
  try {
    const ctx = await contextFromTar(options.contextStream ?? process.stdin, dir, undefined, config.signal);
    const inTar = options.dockerfileText === undefined ? { dockerfile: join(ctx.root, options.dockerfile ?? "Dockerfile"), dockerfileName: options.dockerfile ?? "Dockerfile" } : {};
    return await buildFrom({ ...options, context: ctx.root, contextOnStdin: true, ...inTar }, config, backends);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `kiln build https://host/repo.git#ref:subdir`: the context is that commit's tree (fetched
 * before anything else, from the cache when fetched before), `.git` left out unless the build
 * arg BUILDKIT_CONTEXT_KEEP_GIT_DIR is set; `-f` names a file inside it; the commit is the
 * build's vcs state (provenance) and is recorded in the metadata file.
 */
async function buildFromGit(options: BuildOptions, config: EngineConfig, backends: EngineBackends): Promise<BuildResult> {
  const tree = await fetchGitContext(config, options.context, "context");
  const inside = options.dockerfileText === undefined && options.dockerfile !== "-"
    ? { dockerfile: join(tree.dir, options.dockerfile ?? "Dockerfile"), dockerfileName: options.dockerfile ?? "Dockerfile" }
    : {};
  const vcs = options.vcs ?? { commit: tree.commit, remote: remoteWithoutCredentials(tree.src.remote) };
  return buildFrom({ ...options, context: tree.dir, ...inside, vcs }, config, backends, { gitContext: true });
}

type BuildFromOptions = BuildOptions & { dockerfileName?: string; contextOnStdin?: boolean };

/** What buildFrom settles before the Dockerfile is read: the outputs, the attestations, the context's git state being read. */
interface BuildStart {
  outputs: OutputSpec[];
  attest: AttestRequest | undefined;
  vcsReading: Promise<VcsInfo | undefined>;
}

async function buildFrom(options: BuildFromOptions, config: EngineConfig, backends: EngineBackends, from: { gitContext?: boolean } = {}): Promise<BuildResult> {
  const startedOn = new Date();
  const outputs = options.outputs && options.outputs.length > 0
    ? options.outputs
    : options.load ? [] : [{ type: "oci", dest: resolve(DEFAULT_OUTPUT_DIR), tar: false } as OutputSpec];
  // What was asked for, plus buildx's default (min provenance when pushing: attest/request.ts).
  const attest = effectiveAttestations(options.attest, outputs, options.format ?? "oci");
  // The context's git state for the provenance (a context on stdin has none; BUILDX_GIT_INFO=false:
  // none recorded), read from the start beside the whole build (a git process, when one is needed:
  // BUILDX_GIT_CHECK_DIRTY, off the critical path); ended when the build ends first.
  const git = gitInfoRequest();
  if (!attest?.provenance || options.vcs || options.contextOnStdin || !git.info) {
    return buildStarted(options, config, backends, from, startedOn, { outputs, attest, vcsReading: Promise.resolve(undefined) });
  }
  const stop = new AbortController();
  const vcsReading = readVcsInfo(options.context, config.signal ? AbortSignal.any([config.signal, stop.signal]) : stop.signal, { checkDirty: git.checkDirty, cacheDir: config.cacheDir }).catch(() => undefined);
  try {
    return await buildStarted(options, config, backends, from, startedOn, { outputs, attest, vcsReading });
  } finally {
    stop.abort(); // the git process, when the build ended without waiting for it
  }
}

async function buildStarted(options: BuildFromOptions, config: EngineConfig, backends: EngineBackends, from: { gitContext?: boolean }, startedOn: Date, start: BuildStart): Promise<BuildResult> {
  const { outputs, attest, vcsReading } = start;
  const store = new BlobStore(config.cacheDir);
  const { text, file, path: dockerfilePath } = await readDockerfile(options);
  const keepGitDir = keepGitDirArg(config.buildArgs.BUILDKIT_CONTEXT_KEEP_GIT_DIR);

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
  checkSupported(plan, config);
  // named git contexts the target needs: fetched once the Dockerfile is known to plan (concurrently),
  // then read as directories; one only an unbuilt stage names is never fetched
  const used = namedContextsUsed(planned.map((p) => p.plan));
  await Promise.all([...named].map(async ([name, nc]) => {
    if (nc.kind !== "git" || (used !== "all" && !used.has(name.toLowerCase()))) return;
    named.set(name, await fetchNamedGitContext(config, name, nc.url));
  }));

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
  const compression = outputCompression(outputs, options.format ?? "oci");
  if (wantsAttestations(options.attest)) {
    checkAttestationOutputs(outputs);
    if (options.format === "docker") throw new UsageError("OPTION_INVALID", "--format docker cannot carry attestations (--provenance/--sbom/--attest need an OCI index): use --format oci");
  }
  checkReferrers(attest ?? options.attest, outputs);
  if (options.load && (options.tags ?? []).length === 0) throw new UsageError("OPTION_INVALID", "--load needs a name: give -t NAME");
  // -t names (and type=image names not pushed) go into the local image store; checked before any work
  const storeNames = [
    ...(options.tags ?? []).map((t) => normalizeName(t, "-t")),
    ...outputs.flatMap((o) => (o.type === "image" && !o.push ? o.names.map((n) => normalizeName(n, "--output name")) : [])),
  ];

  const format = options.format ?? "oci";
  const session = new BuildSession(config, backends);
  let targets: Awaited<ReturnType<typeof prepareStages>>;
  try {
    // the isolation is chosen first: under proot, emulated RUN needs no binfmt_misc handler
    if (planned.some((t) => needsRun(t.plan))) await session.preflight();
    targets = await prepareStages(planned, config, session.isolation);
  } catch (err) {
    await session.dispose();
    throw err;
  }
  const cache = new BuildCache(store, config.cache, config.registry, (message) => config.emit({ type: "warning", message }));
  // Every platform's stages share the --jobs slots: platforms build concurrently within them.
  const slots = new JobSlots(config.jobs);
  // A stage that is the same work for several targets (FROM --platform=$BUILDPLATFORM without TARGET* args) is built once.
  const sharedStages: SharedStages = new Map();
  let succeeded = false;
  try {
    await cache.open();
    const settled = await Promise.allSettled(targets.map(async (t): Promise<PlatformBuild> => {
      const stageConfig = (index: number): EngineConfig => t.stageConfigs.get(index) ?? t.config;
      const scheduler = new StageScheduler(t.plan, slots, targets.length > 1 ? { stages: sharedStages, identity: stageIdentities(t.plan, stageConfig) } : undefined);
      const sources = new BuildSources({
        config: t.config, plan: t.plan, store, cache, contextDir: options.context, dockerfilePath, namedContexts: named,
        ...(from.gitContext ? { contextIgnore: (ignore: IgnoreFn) => withoutGitDirs(ignore, keepGitDir) } : {}),
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
      // compression=... of the outputs: the layers this build wrote (all with force-compression)
      // converted; the cache keeps the layers as the steps wrote them
      const outImage = compression
        ? { ...image, layers: await recompressLayers(image.layers, store, compression, (l) => sources.baseLayers.has(l.descriptor.digest), options.signal) }
        : image;
      const materialized = await materialize(outImage, store, format, {
        ...(options.annotations ? { annotations: options.annotations } : {}),
      });
      const extraScans = attest?.sbom ? await sbomExtraScans(t.plan, scheduler, sources, cache) : [];
      return { platform: t.config.platform, image: outImage, materialized, source: await storeImage(store, materialized.manifest), sources, extraScans };
    }));
    // Every platform settles before the session's resources go: the first failure is the build's.
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const built = settled.map((r) => (r as PromiseFulfilledResult<PlatformBuild>).value);
    const first = built[0]!;
    const entries: PlatformImage[] = built.map((b) => ({ platform: b.platform, image: b.source }));
    const attestations: StoredAttestations[] = [];
    // Attestations: after the platform images, one attestation manifest per platform.
    if (attest) {
      const vcs = options.vcs ?? (await vcsReading);
      const attestation: AttestationContext = { request: attest, store, cache, config, options, text, file, startedOn, ...(vcs ? { vcs } : {}) };
      for (const b of built) {
        const stored = await attestPlatform(attestation, b, outputs);
        attestations.push(stored);
        entries.push(await attestationEntry(store, stored));
      }
    }
    const output: OutputImage = entries.length === 1 ? first.source : await storeIndex(store, entries, format);
    await writeOutputs(output, outputs, options.tags ?? [], { ...config.registry, store });
    // --attest-referrers: each statement also as an OCI 1.1 artifact about its image, in every repository pushed to
    let artifacts: Referrer[] = [];
    if (attest?.referrers && attestations.length > 0) {
      artifacts = await referrerArtifacts(store, attestations);
      const { pushReferrers } = await import("../registry/referrers.js");
      for (const o of outputs) {
        if (o.type !== "image" || !o.push) continue;
        for (const name of o.names.length > 0 ? o.names : options.tags ?? []) {
          const r = await pushReferrers(storeBlobs(store), artifacts, name, config.registry);
          const how = r.api ? "the registry's referrers API" : `the referrers tag${r.tags.length > 1 ? "s" : ""} ${r.tags.join(", ")}`;
          config.emit({ type: "info", message: `pushed ${artifacts.length} attestation referrer(s) to ${name} (${how})` });
        }
      }
    }
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
    const records = attest ? await attestationRecords(store, attestations, built.map((b) => formatPlatform(b.platform)), artifacts) : undefined;
    const result: BuildResult = {
      image: first.image,
      materialized: first.materialized,
      digest: built.length === 1 ? first.materialized.manifest.digest : output.manifest.digest,
      configDigest: first.materialized.config.digest,
      platforms: built.map((b) => ({ platform: formatPlatform(b.platform), digest: b.materialized.manifest.digest, configDigest: b.materialized.config.digest })),
      ...(isIndexSource(output) ? { index: output.manifest } : {}),
      ...(records ? { attestations: records } : {}),
      outputs,
      plan,
    };
    if (options.iidfile) await writeFileAtomic(options.iidfile, result.digest);
    if (options.metadataFile) {
      // As buildx: with attestations the image is the index (what the tag names), even for one platform.
      const top = built.length === 1 && !attest ? first.materialized.manifest : output.manifest;
      const meta = {
        "containerimage.digest": top.digest,
        // an index has no config of its own; one platform's config is still the image's (as buildx writes it)
        ...(built.length === 1 ? { "containerimage.config.digest": result.configDigest } : {}),
        "containerimage.descriptor": top,
        ...(built.length > 1 || attest ? { "kiln.platforms": result.platforms } : {}),
        ...(attest
          ? {
              "kiln.attestations.index": output.manifest,
              "kiln.attestations": records,
            }
          : {}),
        "image.name": (options.tags ?? []).join(","),
        "kiln.steps": cache.steps,
        ...(config.gitSources.length > 0 ? { "kiln.git": config.gitSources } : {}),
        ...(options.vcs ? { "vcs.revision": options.vcs.commit, ...(options.vcs.remote ? { "vcs.source": redactUrl(options.vcs.remote) } : {}) } : {}),
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
  /** BUILDKIT_SBOM_SCAN_STAGE stages and BUILDKIT_SBOM_SCAN_CONTEXT's context, scanned for the SBOM too. */
  extraScans: ExtraScan[];
}

/** The stages (other than the target) and the context the SBOM scans too, as BuildKit's frontend selects them. */
async function sbomExtraScans(plan: BuildPlan, scheduler: StageScheduler, sources: BuildSources, cache: BuildCache): Promise<ExtraScan[]> {
  const out: ExtraScan[] = [];
  const view = async (i: number): Promise<{ name: string; args: ReadonlyMap<string, string> | undefined; image: Image }> => {
    const r = await scheduler.result(i);
    return { name: plan.stages[i]!.name ?? "", args: r.args?.values, image: r.image };
  };
  for (const i of plan.order) {
    if (i === plan.target) continue;
    const s = await view(i);
    if (!scansStage(s, plan.globalValues)) continue;
    await cache.ensureLayers(s.image.layers);
    out.push({ name: s.name || `stage-${i}`, image: s.image });
  }
  if (scansContext(await view(plan.target), plan.globalValues)) {
    const ctx = await sources.context();
    out.push({ name: "context", directory: ctx.root, ignore: ctx.ignore });
  }
  return out;
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
  vcs?: VcsInfo;
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
      ...(a.vcs ? { vcs: a.vcs } : {}),
      // with SOURCE_DATE_EPOCH, an id fixed by what was built (never by the build args' values)
      invocationId: sde !== undefined ? sha256Hex(JSON.stringify([dockerfileSha, options.target ?? "", deps, manifest.digest])).slice(0, 32) : randomUUID(),
    },
    ...(sde !== undefined ? { sourceDateEpoch: sde } : {}),
    extraScans: b.extraScans,
    onWarning: (message) => config.emit({ type: "warning", message }),
    ...(config.signal ? { signal: config.signal } : {}),
  });
}

/**
 * Everything kiln cannot do yet, and what the build lacks for a step (a required ssh agent), is
 * an error naming the feature and the line, before any work.
 */
function checkSupported(plan: BuildPlan, config: EngineConfig): void {
  for (const i of plan.order) {
    for (const inst of plan.stages[i]!.instructions) checkInstruction(inst, plan.file, config);
  }
}

function checkInstruction(inst: TypedInstruction, file: string, config: EngineConfig): void {
  const fail = (msg: string): never => {
    throw new DockerfileError("FEATURE_UNSUPPORTED", msg, inst.line, file);
  };
  switch (inst.kind) {
    case "run":
      if (inst.security === "insecure") fail("RUN --security=insecure is not supported (kiln never runs steps privileged)");
      for (const m of inst.mounts) {
        if (!SUPPORTED_MOUNTS.has(m.type)) fail(`RUN --mount=type=${m.type} is not supported yet`);
        if (m.type === "cache" && m.from !== undefined) fail("RUN --mount=type=cache,from=... is not supported yet");
        if (m.type === "ssh" && m.required && !config.ssh.has(m.id ?? "default")) {
          throw new DockerfileError("RUN_SSH_MISSING", `RUN --mount=type=ssh${m.id ? `,id=${m.id}` : ""} is required but no --ssh ${m.id ?? "default"} was given`, inst.line, file);
        }
      }
      break;
    case "add": {
      const git = inst.sources.filter((s) => isGitUrl(s));
      const invalid = (msg: string): never => {
        throw new DockerfileError("DOCKERFILE_INSTRUCTION", msg, inst.line, file);
      };
      if (inst.keepGitDir && git.length === 0 && !inst.sources.some((s) => s.includes("$"))) invalid("ADD --keep-git-dir needs a git source");
      if (git.length > 0 && inst.sources.length > 1) invalid("ADD of a git repository takes one source");
      for (const s of git) {
        try {
          parseGitUrl(s);
        } catch (err) {
          throw DockerfileError.at(err, { file, line: inst.line, instruction: "ADD" });
        }
      }
      break;
    }
    case "onbuild":
      checkInstruction(inst.trigger, file, config);
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
