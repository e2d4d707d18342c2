// What a build is asked to do: the library's BuildOptions, and the parsing of the buildx-style
// values the CLI passes through (`--output type=...`, `--build-context NAME=...`).
import type { AttestRequest } from "../attest/request.js";
import type { VcsInfo } from "../context/vcs.js";
import type { Snapshotter } from "../snapshot/rootfs.js";
import type { Readable } from "node:stream";
import { resolve } from "node:path";
import { UsageError } from "../errors.js";
import { isGitUrl, parseGitUrl } from "../context/git-url.js";
import type { ImageFormat } from "../image/oci.js";
import { splitLayoutRef } from "../image/layout.js";
import { parseCompression } from "../layer/recompress.js";
import type { BuildListener } from "./events.js";
import type { RegistryTimeouts } from "../registry/timeouts.js";

import type { OutputSpec } from "../output/spec.js";
export type { OutputSpec } from "../output/write.js";

export type NamedContext =
  | { kind: "oci-layout"; path: string; selector?: string }
  | { kind: "dir"; path: string; /** a fetched git context: `.git` left out */ withoutGit?: boolean }
  | { kind: "git"; url: string }
  | { kind: "image"; ref: string };

export type { Isolation } from "../run/types.js";
import type { Isolation } from "../run/types.js";
import type { Ulimit } from "../run/limits.js";

/** Where a `RUN --mount=type=secret` reads a secret from: a file, or an environment variable. */
export interface SecretSource {
  src?: string;
  env?: string;
}

export interface BuildOptions {
  /** Build context directory; "-" = a tar read from `contextStream` (default: stdin). */
  context: string;
  contextStream?: Readable;
  /** Dockerfile path (default `<context>/Dockerfile`); "-" = `dockerfileText` (or stdin). */
  dockerfile?: string;
  dockerfileText?: string;
  /** Names for the image, recorded in the local image store (and written into layouts and archives). */
  tags?: string[];
  /** Store the image by its -t names only: no default ./kiln-out layout when no output is given. */
  load?: boolean;
  buildArgs?: Record<string, string>;
  target?: string;
  /** Target platforms, buildx syntax: "linux/amd64" or "linux/amd64,linux/arm64" (default: the host's); several give an image index. */
  platform?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** `--build-context NAME=VALUE` (values as buildx takes them). */
  buildContexts?: Record<string, string>;
  outputs?: OutputSpec[];
  format?: ImageFormat;
  iidfile?: string;
  metadataFile?: string;
  cacheDir?: string;
  isolation?: Isolation;
  /** How RUN root filesystems are kept: overlayfs layers (overlay), one plain tree (dir), or auto. */
  snapshotter?: Snapshotter;
  network?: "host" | "none";
  /** `--ulimit`: resource limits of every RUN step's processes. */
  ulimits?: Ulimit[];
  /** `--shm-size`: /dev/shm's size in RUN steps, bytes (default 64 MiB). */
  shmSize?: number;
  /** `--add-host HOST:IP` (or HOST:host-gateway) entries for RUN steps' /etc/hosts. */
  addHosts?: string[];
  jobs?: number;
  /** gzip level for new layers (default 6). */
  compressionLevel?: number;
  /** Overrides SOURCE_DATE_EPOCH from the environment / build args. */
  sourceDateEpoch?: number;
  onEvent?: BuildListener;
  signal?: AbortSignal;
  /** `--insecure-registry` hosts, `--registry-ca`, pull policy. */
  insecureRegistries?: string[];
  registryCa?: string;
  /** kaniko's `--registry-mirror`: docker.io mirrors tried in order before docker.io. */
  registryMirrors?: string[];
  /** `--registries-conf`: a registries.conf / buildkitd.toml whose mirrors pulls try first (default $CONTAINERS_REGISTRIES_CONF, else the files podman reads: registry/mirrors.ts registriesConfFiles). */
  registriesConf?: string;
  /** podman/buildah `--authfile`: an auth.json read before Docker's config. */
  authFile?: string;
  /** podman/buildah `--creds USER:PASS`, given only to the registries listed (the push names' hosts). */
  credentials?: { username: string; password: string; registries: string[] };
  /** `--registry-timeout`: connect, idle and total limits of every registry request. */
  registryTimeouts?: RegistryTimeouts;
  pull?: "always" | "missing" | "never";
  /** `RUN --mount=type=secret` sources by id: a file, or an environment variable. */
  secrets?: Record<string, SecretSource>;
  /** `--ssh ID=PATH,...`: agent sockets or key files by id (an empty list: $SSH_AUTH_SOCK), for RUN --mount=type=ssh and SSH git sources. */
  ssh?: Record<string, string[]>;
  /** Run every step (results are still recorded in the cache). */
  noCache?: boolean;
  /** Stages whose steps never reuse the cache. */
  noCacheFilter?: string[];
  /** buildx syntax: `type=registry,ref=REF` / `type=local,src=DIR`. */
  cacheFrom?: string[];
  /** buildx syntax: `type=registry,ref=REF[,mode=min|max]` / `type=local,dest=DIR`. */
  cacheTo?: string[];
  /**
   * `--provenance`, `--sbom`, `--attest`, `--attest-referrers`: attestations stored with the image.
   * Absent (or without `provenance`), buildx's default applies: min provenance when an output
   * pushes, unless BUILDX_NO_DEFAULT_ATTESTATIONS is set in the environment; `provenance: false`
   * turns it off (attest/request.ts effectiveAttestations).
   */
  attest?: AttestRequest;
  /**
   * The context's git commit and remote for the provenance; absent, they are read with the host's
   * `git` when the context directory is in a checkout (context/vcs.ts), never for a context on
   * stdin; a git URL context sets them from the commit it fetched.
   */
  vcs?: VcsInfo;
}

/** Where `kiln build` writes when no --output is given. */
export const DEFAULT_OUTPUT_DIR = "kiln-out";

export function parseOutput(input: Record<string, string>, raw: string): OutputSpec {
  const fields = { ...input };
  const compression = parseCompression(fields, raw);
  const withCompression = <T extends OutputSpec>(spec: T): T => (compression ? { ...spec, compression } : spec);
  if (compression && !["oci", "docker", "image", "registry", undefined].includes(fields.type ?? (fields.dest !== undefined ? "oci" : undefined))) {
    throw new UsageError("OPTION_INVALID", `--output ${raw}: compression= applies to image outputs (type=oci, docker, image, registry), not type=${fields.type}`);
  }
  if (compression?.type === "zstd" && fields.type === "docker") {
    throw new UsageError("OPTION_INVALID", `--output ${raw}: Docker media types have no zstd layers; use type=oci (or compression=gzip)`);
  }
  const type = fields.type ?? (fields.dest !== undefined ? "oci" : undefined);
  const bool = (v: string | undefined, name: string): boolean => {
    if (v === undefined || v === "" ) return false;
    if (v === "true" || v === "1") return true;
    if (v === "false" || v === "0") return false;
    throw new UsageError("OPTION_INVALID", `--output ${raw}: ${name} must be true or false`);
  };
  switch (type) {
    case "oci": {
      if (!fields.dest) throw new UsageError("OPTION_INVALID", `--output ${raw}: type=oci needs dest=DIR (or dest=FILE.tar,tar=true)`);
      return withCompression({ type: "oci", dest: resolve(fields.dest), tar: bool(fields.tar, "tar") });
    }
    case "docker": {
      if (!fields.dest) throw new UsageError("OPTION_INVALID", `--output ${raw}: type=docker needs dest=FILE.tar (kiln has no daemon to load into)`);
      return withCompression({ type: "docker", dest: resolve(fields.dest) });
    }
    case "image":
    case "registry": {
      const names = (fields.name ?? "").split(",").filter((n) => n !== "");
      return withCompression({ type: "image", names, push: type === "registry" ? true : bool(fields.push, "push") });
    }
    case "local":
    case "tar": {
      if (!fields.dest || fields.dest === "-") throw new UsageError("OPTION_INVALID", `--output ${raw}: type=${type} needs dest=${type === "local" ? "DIR" : "FILE"}`);
      return { type, dest: resolve(fields.dest) };
    }
    default:
      throw new UsageError("OPTION_INVALID", `--output ${raw}: unsupported type "${type ?? ""}" (kiln supports type=oci, type=docker, type=image, type=local, type=tar)`);
  }
}

export function parseNamedContext(name: string, value: string): NamedContext {
  if (value.startsWith("oci-layout://")) {
    const { dir, selector } = splitLayoutRef(value.slice("oci-layout://".length));
    if (dir === "") throw new UsageError("OPTION_INVALID", `--build-context ${name}=${value}: missing layout path`);
    return { kind: "oci-layout", path: resolve(dir), ...(selector ? { selector } : {}) };
  }
  if (value.startsWith("docker-image://")) return { kind: "image", ref: value.slice("docker-image://".length) };
  if (isGitUrl(value)) {
    parseGitUrl(value); // a malformed one fails here, before any work
    return { kind: "git", url: value };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !value.startsWith("file://")) {
    throw new UsageError("OPTION_INVALID", `--build-context ${name}=${value}: unsupported source (kiln supports oci-layout://, docker-image://, git URLs and local directories)`);
  }
  return { kind: "dir", path: resolve(value.replace(/^file:\/\//, "")) };
}

/** buildx `--secret id=ID[,src=FILE|,env=VAR][,type=file|env]`. */
export function parseSecret(value: string, fields: Record<string, string>): [string, SecretSource] {
  const id = fields.id;
  if (!id) throw new UsageError("OPTION_INVALID", `--secret ${value}: id= is required`);
  const src = fields.src ?? fields.source;
  if (fields.type === "env" || (fields.env !== undefined && src === undefined)) return [id, { env: fields.env ?? id }];
  if (src === undefined) return [id, { env: id }];
  return [id, { src: resolve(src) }];
}
