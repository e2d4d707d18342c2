// SLSA provenance v1 predicate (https://slsa.dev/provenance/v1) for one kiln build: what was
// built from what (Dockerfile digest, build args, target, base images by digest, ADD <url>
// downloads with their checksums) and by whom (builder id, kiln's version, start/finish).
// Secrets never enter it: they are not build args, and build args whose names look like
// credentials are left out too. `max` adds the steps (instruction text, cache hit). A context in a
// git checkout is recorded as BuildKit records it: `vcs:source`/`vcs:revision` request args (the
// revision suffixed `-dirty` for a changed work tree), the buildkit_metadata `vcs` entry, and a
// resolved dependency `git+<remote>@<commit>`.
import { redactRemote, type VcsInfo } from "../context/vcs.js";
import type { ProvenanceMode } from "./request.js";

export const SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1";
export const KILN_BUILD_TYPE = "https://kiln.dev/build/dockerfile@v1";
export const KILN_BUILDER_ID = "kiln";

export interface ResolvedDependency {
  uri: string;
  digest: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ProvenanceStep {
  stage: string;
  step: number;
  instruction: string;
  cached: boolean;
}

/** Everything a build knows that the predicate records. */
export interface ProvenanceInput {
  mode: ProvenanceMode;
  /** The Dockerfile's path as the user named it, and the sha256 (hex) of its bytes. */
  dockerfile: { path: string; sha256: string };
  buildArgs: Readonly<Record<string, string>>;
  target?: string;
  platform: string;
  dependencies: ResolvedDependency[];
  steps: ProvenanceStep[];
  version: string;
  startedOn: Date;
  finishedOn: Date;
  /** The build's id (stable for the same build inputs when SOURCE_DATE_EPOCH fixes the times). */
  invocationId: string;
  /** The context's git commit and remote, when it is a git checkout. */
  vcs?: VcsInfo;
}

/** The `vcs:revision` value: the commit, `-dirty` when the work tree had changes (as buildx writes it). */
export function vcsRevision(vcs: VcsInfo): string {
  return vcs.dirty ? `${vcs.commit}-dirty` : vcs.commit;
}

/** The context's checkout as a resolved dependency (only with a remote: a URI needs one). */
export function vcsDependency(vcs: VcsInfo): ResolvedDependency | undefined {
  if (!vcs.remote) return undefined;
  const algorithm = vcs.commit.length === 64 ? "sha256" : "sha1";
  return {
    uri: `git+${vcs.remote}@${vcs.commit}`,
    digest: { [algorithm]: vcs.commit },
    ...(vcs.dirty ? { annotations: { "kiln.dev/git-dirty": "true" } } : {}),
  };
}

/** Build-arg names never recorded: they read as credentials. */
const SECRET_LOOKING = /(SECRET|TOKEN|PASSW(OR)?D|PASSPHRASE|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY|AUTH)/i;

export function isSecretLooking(name: string): boolean {
  return SECRET_LOOKING.test(name);
}

export function provenancePredicate(input: ProvenanceInput): Record<string, unknown> {
  const args: Record<string, string> = {};
  for (const k of Object.keys(input.buildArgs).sort()) {
    if (!isSecretLooking(k)) args[`build-arg:${k}`] = input.buildArgs[k]!;
  }
  const externalParameters: Record<string, unknown> = {
    configSource: { path: input.dockerfile.path, digest: { sha256: input.dockerfile.sha256 } },
    request: {
      frontend: "dockerfile",
      args: {
        ...args,
        ...(input.target ? { target: input.target } : {}),
        ...(input.vcs?.remote ? { "vcs:source": redactRemote(input.vcs.remote) } : {}),
        ...(input.vcs ? { "vcs:revision": vcsRevision(input.vcs) } : {}),
      },
      platform: input.platform,
    },
  };
  const vcsDep = input.vcs ? vcsDependency(input.vcs) : undefined;
  const clean = [...(vcsDep ? [vcsDep] : []), ...input.dependencies].map((d) => ({ ...d, uri: redactRemote(d.uri) }));
  const deps = [...new Map(clean.map((d) => [`${d.uri} ${JSON.stringify(d.digest)}`, d])).values()];
  const internalParameters: Record<string, unknown> = { builderPlatform: input.platform };
  if (input.mode === "max") internalParameters.steps = input.steps.map((s) => ({ stage: s.stage, step: s.step, instruction: s.instruction, cacheHit: s.cached }));
  return {
    buildDefinition: {
      buildType: KILN_BUILD_TYPE,
      externalParameters,
      internalParameters,
      resolvedDependencies: deps,
    },
    runDetails: {
      builder: { id: KILN_BUILDER_ID, version: { kiln: input.version } },
      metadata: {
        invocationID: input.invocationId,
        startedOn: input.startedOn.toISOString(),
        finishedOn: input.finishedOn.toISOString(),
        "https://kiln.dev/provenance/mode": input.mode,
        ...(input.vcs
          ? { buildkit_metadata: { vcs: { ...(input.vcs.remote ? { source: redactRemote(input.vcs.remote) } : {}), revision: vcsRevision(input.vcs) } } }
          : {}),
      },
    },
  };
}
