// The errors kiln's library throws: every one is a `KilnError` with a stable `code` (the list and
// what each code means live here, in ERROR_CODES) and a one-line message naming where the problem
// came from. Subclasses add structure: `DockerfileError` (file, line, instruction), `UsageError`
// (a caller's option value is wrong), `RegistryError` (HTTP status, registry, repository and the
// registry's own error codes), `IsolationError` (a RUN's isolation refused to start the process),
// `AbortError` (cancelled through an AbortSignal). Exit codes and
// hints such as "run kiln login" are the CLI's business (src/cli/exit.ts), never carried here.

/** Every code a KilnError can carry, grouped by domain, with what it means. */
export const ERROR_CODES = {
  // invocation and options
  USAGE: "the command line is wrong (unknown command or option, missing argument)",
  OPTION_INVALID: "an option value is invalid (output, cache, secret, size, duration, timeout, SOURCE_DATE_EPOCH, ...)",
  TAG_INVALID: "an image tag is not a valid name[:tag]",
  ABORTED: "the operation was cancelled through its AbortSignal",
  INTERNAL: "an internal invariant failed (a kiln bug)",
  IO_FAILED: "a file operation on the host failed during a step (the system error's code is in the message)",
  FEATURE_UNSUPPORTED: "the Dockerfile or image uses something kiln does not support yet",
  HOST_TOOL_MISSING: "a host program kiln needs is not installed",
  // Dockerfile
  DOCKERFILE_READ: "the Dockerfile cannot be read",
  DOCKERFILE_SYNTAX: "the Dockerfile does not parse (line too long, unterminated heredoc, no instructions)",
  DOCKERFILE_INSTRUCTION: "an instruction's arguments or flags are invalid",
  DOCKERFILE_EXPANSION: "a variable reference cannot be expanded, or an ARG is invalid",
  DOCKERFILE_PLAN: "the stages do not form a build (no FROM, duplicate stage names, cycles)",
  DOCKERFILE_STAGE_REFERENCE: "--from or FROM names a stage, context or image that does not fit",
  DOCKERFILE_TARGET_UNKNOWN: "--target names no stage",
  // build context and COPY/ADD sources
  CONTEXT_NOT_DIRECTORY: "the build context is not a directory",
  CONTEXT_READ: "a context file, directory, .dockerignore or the context tar cannot be read",
  CONTEXT_CHANGED: "the context changed while the build read it",
  CONTEXT_TAR_INVALID: "the context tar has an entry kiln refuses (outside the context, through a symlink, broken hard link)",
  CONTEXT_NAMED_INVALID: "a named build context is unknown or cannot be used this way",
  CONTEXT_SOURCE_NOT_FOUND: "a COPY/ADD source is not in the context",
  CONTEXT_SOURCE_OUTSIDE: "a COPY/ADD source resolves outside the context",
  CONTEXT_SOURCE_INVALID: "a COPY/ADD source pattern is invalid",
  DOCKERIGNORE_INVALID: "a .dockerignore pattern is invalid",
  COPY_DESTINATION_INVALID: "a COPY/ADD destination cannot be written (not a directory, several sources into a file)",
  COPY_CHOWN_INVALID: "a --chown value is invalid",
  COPY_CHMOD_INVALID: "a --chmod value is invalid",
  USER_UNKNOWN: "a user or group name is not in the image's passwd/group files",
  ADD_URL_INVALID: "an ADD URL or --checksum is invalid",
  ADD_DOWNLOAD_FAILED: "an ADD URL cannot be downloaded",
  ADD_CHECKSUM_MISMATCH: "an ADD download does not match its --checksum",
  ADD_ARCHIVE_INVALID: "an ADD archive cannot be unpacked or has a member kiln refuses",
  GIT_URL_INVALID: "a git context or ADD git source is malformed (scheme, ref, subdirectory, query)",
  GIT_REF_NOT_FOUND: "a git ref (branch, tag, commit) does not exist on the server",
  GIT_FETCH_FAILED: "git could not list, fetch or check out a repository (the server, auth, a time limit)",
  GIT_CHECKSUM_MISMATCH: "a git ref does not resolve to the commit its --checksum names",
  WORKDIR_NOT_DIRECTORY: "WORKDIR names a path that exists and is not a directory",
  // RUN
  RUN_FAILED: "a RUN command exited with a non-zero code",
  RUN_MOUNT_INVALID: "a RUN --mount is invalid or cannot be set up",
  RUN_SECRET_MISSING: "a required secret was not given",
  RUN_SECRET_UNREADABLE: "a secret's source file cannot be read, or its environment variable is not set",
  RUN_SSH_MISSING: "a required RUN --mount=type=ssh names an agent id that --ssh did not give",
  SSH_AGENT_FAILED: "an --ssh socket or key cannot be used (not a socket, unreadable key, ssh-agent failed)",
  ISOLATION_UNAVAILABLE: "the RUN isolation asked for (or any) cannot work on this host",
  ISOLATION_FAILED: "the RUN isolation (unshare, chroot, the OCI runtime) refused to start the process: not the command's own failure",
  OWNER_UNMAPPED: "a RUN step created a file whose owner has no id inside the container",
  OWNER_UNRECORDABLE: "a RUN step set an owner (chown) that its isolation cannot record in the layer",
  // root filesystems
  SNAPSHOTTER_UNAVAILABLE: "the snapshotter asked for cannot work here",
  SNAPSHOT_MOUNT_FAILED: "an overlay mount or unmount failed",
  PATH_UNRESOLVABLE: "a path inside a root cannot be resolved (symlink loops, escapes)",
  XATTR_FAILED: "extended attributes cannot be read or set",
  LAYER_APPLY_FAILED: "a layer cannot be unpacked into a root filesystem",
  // layers
  LAYER_ENTRY_INVALID: "a layer entry is invalid (path, link, mode, ids, duplicates)",
  LAYER_CONTENT_MISMATCH: "a layer file's content does not have the size its entry gives",
  LAYER_READ_FAILED: "a layer or one of its files cannot be read",
  LAYER_DIGEST_MISMATCH: "a layer's content does not match its diff_id",
  FORMAT_UNSUPPORTED: "a media type or compression kiln cannot read or express",
  // images, blobs, layouts, outputs
  REFERENCE_INVALID: "an image reference or registry name is invalid",
  DIGEST_INVALID: "a digest is malformed",
  PLATFORM_INVALID: "a platform string is invalid",
  PLATFORM_MISMATCH: "no image for the wanted platform",
  PLATFORM_DUPLICATE: "two sources of an index give different images for the same platform",
  EMULATION_UNAVAILABLE: "RUN for a foreign platform needs qemu-user-static and a binfmt_misc handler that kiln cannot set up",
  MANIFEST_INVALID: "a manifest, index or image config is malformed or inconsistent",
  BLOB_MISSING: "a blob is not where it should be (store, layout, cache)",
  BLOB_DIGEST_MISMATCH: "a blob's content does not hash to its digest",
  BLOB_SIZE_MISMATCH: "a blob's size differs from its descriptor",
  BLOB_TOO_LARGE: "a blob is larger than kiln accepts for its kind",
  LAYOUT_INVALID: "a directory is not a valid OCI layout",
  LAYOUT_IMAGE_NOT_FOUND: "a layout holds no image (or several) for the selector",
  IMAGE_NOT_LOCAL: "an image is not in the local store and the pull policy forbids pulling",
  OUTPUT_DEST_INVALID: "an output destination cannot be written (wrong kind of path, foreign index.json)",
  VERIFY_FAILED: "kiln verify found a problem in a layout",
  ATTESTATION_INVALID: "an attestation does not match the image it is attached to (subject digest, or a reference outside its index)",
  // containers (kiln run)
  CONTAINER_MOUNT_INVALID: "a kiln run -v/--mount spec is invalid, or its source does not exist",
  CONTAINER_ENV_INVALID: "a kiln run -e value or --env-file line is invalid, or the file cannot be read",
  CONTAINER_COMMAND_NOT_FOUND: "kiln run has no command to start, or the command is not an executable in the image",
  // cache
  CACHE_KEY_INVALID: "a cache key is malformed",
  CACHE_RECORD_INVALID: "a cache record is malformed",
  CACHE_FORMAT_INVALID: "an imported cache is not a kiln build cache of a supported version",
  CACHE_LAYER_MISSING: "a cache record names a layer that is nowhere to be found",
  CACHE_IMPORT_FAILED: "a cache cannot be imported",
  CACHE_EXPORT_FAILED: "a cache cannot be exported",
  // registries
  REGISTRY_UNREACHABLE: "the registry cannot be reached (DNS, connection, TLS trust)",
  REGISTRY_BLOCKED: "registries.conf blocks pulls from the registry (blocked = true)",
  REGISTRY_CA_INVALID: "the registry CA file cannot be read",
  REGISTRY_TIMEOUT: "a registry request ran past a time limit",
  REGISTRY_AUTH: "the registry wants credentials and none were found",
  REGISTRY_DENIED: "the registry refused the configured credentials",
  REGISTRY_TOKEN_FAILED: "the token server failed or answered badly",
  REGISTRY_MANIFEST_UNKNOWN: "the registry has no such image",
  REGISTRY_HTTP: "the registry answered with an unexpected HTTP status",
  REGISTRY_RETRYABLE: "the registry answered with a transient status (retried, then given up)",
  REGISTRY_PROTOCOL: "the registry broke the distribution protocol (no v2 API, redirects, missing headers, oversized answers)",
  CREDENTIALS_INVALID: "Docker's config.json cannot be read or has a malformed entry",
  CREDENTIAL_HELPER_FAILED: "a docker-credential helper failed",
  CREDENTIALS_NOT_FOUND: "a docker-credential helper holds no credentials for the registry",
} as const;

export type KilnErrorCode = keyof typeof ERROR_CODES;

export interface KilnErrorOptions {
  cause?: unknown;
}

export class KilnError extends Error {
  readonly code: KilnErrorCode;
  constructor(code: KilnErrorCode, message: string, options?: KilnErrorOptions) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "KilnError";
    this.code = code;
  }
}

/** Where in a Dockerfile a problem is. */
export interface DockerfileLocation {
  file: string;
  /** 1-based; 0 when the problem is the file as a whole. */
  line: number;
  /** The instruction keyword (COPY, RUN, ...), when the problem belongs to one step. */
  instruction?: string;
}

/**
 * A mistake in a Dockerfile, or a step's failure, with its location as fields. The message is
 * composed from them (`FILE:LINE: [KEYWORD: ]problem`) so a printed error names the line;
 * `detail` is the message without the location, `problem` the text without the keyword too.
 * A step's failure keeps the original error as `cause` and its `code`.
 */
export class DockerfileError extends KilnError {
  readonly file: string;
  readonly line: number;
  readonly instruction: string | undefined;
  readonly problem: string;
  readonly detail: string;
  constructor(code: KilnErrorCode, problem: string, line: number, file = "Dockerfile", options?: KilnErrorOptions & { instruction?: string }) {
    const detail = options?.instruction ? `${options.instruction}: ${problem}` : problem;
    super(code, line > 0 ? `${file}:${line}: ${detail}` : `${file}: ${detail}`, options);
    this.name = "DockerfileError";
    this.file = file;
    this.line = line;
    this.instruction = options?.instruction;
    this.problem = problem;
    this.detail = detail;
  }

  /** `err` (a step's failure) located at an instruction; a DockerfileError or AbortError is returned as it is. */
  static at(err: unknown, location: DockerfileLocation): Error {
    if (err instanceof DockerfileError || err instanceof AbortError) return err;
    const where = { cause: err, ...(location.instruction ? { instruction: location.instruction } : {}) };
    if (err instanceof KilnError) return new DockerfileError(err.code, err.message, location.line, location.file, where);
    const errno = err as NodeJS.ErrnoException;
    if (errno instanceof Error && typeof errno.code === "string") return new DockerfileError("IO_FAILED", errno.message, location.line, location.file, where);
    return err instanceof Error ? err : new Error(String(err));
  }
}

/**
 * The isolation could not start a RUN's process (not the command's own failure): `reason` is the
 * refusal as the tool said it (e.g. "unshare: unshare failed: Operation not permitted").
 */
export class IsolationError extends KilnError {
  readonly reason: string;
  constructor(reason: string) {
    super("ISOLATION_FAILED", `cannot start the isolated process: ${reason}`);
    this.name = "IsolationError";
    this.reason = reason;
  }
}

/** A caller's option or argument value is wrong (the CLI reports these as usage errors). */
export class UsageError extends KilnError {
  constructor(code: KilnErrorCode, message: string, options?: KilnErrorOptions) {
    super(code, message, options);
    this.name = "UsageError";
  }
}

/** What a registry answered: the HTTP status and the error codes of its JSON error body. */
export interface RegistryErrorDetails {
  status: number;
  registry: string;
  /** The repository the request was for ("" for registry-wide requests such as /v2/ or a token). */
  repository: string;
  /** The `errors[].code` values of the registry's answer (e.g. MANIFEST_UNKNOWN, DENIED). */
  codes: string[];
}

/** A registry (or its token server) answered with a status kiln cannot continue with. */
export class RegistryError extends KilnError implements RegistryErrorDetails {
  readonly status: number;
  readonly registry: string;
  readonly repository: string;
  readonly codes: string[];
  constructor(code: KilnErrorCode, message: string, details: RegistryErrorDetails, options?: KilnErrorOptions) {
    super(code, message, options);
    this.name = "RegistryError";
    this.status = details.status;
    this.registry = details.registry;
    this.repository = details.repository;
    this.codes = details.codes;
  }
}

/**
 * An operation was cancelled through its AbortSignal. `cause` is the signal's reason; the
 * message is the reason's message when it is an Error (e.g. "build interrupted").
 */
export class AbortError extends KilnError {
  constructor(reason?: unknown) {
    super("ABORTED", reason instanceof Error && reason.message ? reason.message : "operation aborted", { cause: reason });
    this.name = "AbortError";
  }
}

/** The AbortError for a signal that has fired (an AbortError reason is returned as it is). */
export function abortError(signal: AbortSignal): AbortError {
  return signal.reason instanceof AbortError ? signal.reason : new AbortError(signal.reason);
}

/** `work`'s result; once `signal` has fired, any rejection becomes the signal's AbortError. */
export async function abortable<T>(signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  throwIfAborted(signal);
  try {
    return await work();
  } catch (err) {
    if (signal?.aborted) throw abortError(signal);
    throw err;
  }
}

/** Throw an AbortError when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** The code of `err` when it is a KilnError, else `fallback`. */
export function codeOf(err: unknown, fallback: KilnErrorCode): KilnErrorCode {
  return err instanceof KilnError ? err.code : fallback;
}
