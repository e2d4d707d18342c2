// Errors kiln reports to users: one line, naming where the problem came from.
// `KilnError` carries the exit code the CLI uses (1 = build/input error, 2 = usage error) and,
// where a caller may need to tell failures apart, a stable `code` (e.g. "ISOLATION_FAILED").

export interface KilnErrorOptions {
  exitCode?: number;
  cause?: unknown;
  /** A stable, machine-readable name of the failure (e.g. "ISOLATION_FAILED"). */
  code?: string;
}

export class KilnError extends Error {
  readonly exitCode: number;
  readonly code?: string;
  constructor(message: string, options?: KilnErrorOptions) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "KilnError";
    this.exitCode = options?.exitCode ?? 1;
    if (options?.code !== undefined) this.code = options.code;
  }
}

/** A mistake in a Dockerfile, reported as `FILE:LINE: message`. */
export class DockerfileError extends KilnError {
  readonly file: string;
  readonly line: number;
  readonly detail: string;
  constructor(detail: string, line: number, file = "Dockerfile", options?: KilnErrorOptions) {
    super(line > 0 ? `${file}:${line}: ${detail}` : `${file}: ${detail}`, options);
    this.name = "DockerfileError";
    this.file = file;
    this.line = line;
    this.detail = detail;
  }
}

/** A command-line usage mistake (exit code 2). */
export class UsageError extends KilnError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
    this.name = "UsageError";
  }
}

/**
 * An operation was cancelled through its AbortSignal. `cause` is the signal's reason; the
 * message is the reason's message when it is an Error (e.g. "build interrupted").
 */
export class AbortError extends KilnError {
  constructor(reason?: unknown) {
    super(reason instanceof Error && reason.message ? reason.message : "operation aborted", { cause: reason });
    this.name = "AbortError";
  }
}

/** The AbortError for a signal that has fired (its reason kept as the cause; an AbortError reason is returned as it is). */
export function abortError(signal: AbortSignal): AbortError {
  return signal.reason instanceof AbortError ? signal.reason : new AbortError(signal.reason);
}

/** Throw an AbortError when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** The code of a RUN whose isolation (runtime, unshare, chroot) refused to start the process. */
export const ISOLATION_FAILED = "ISOLATION_FAILED";

/**
 * The isolation could not start a RUN's process (not the command's own failure): `reason` is the
 * refusal as the tool said it (e.g. "unshare: unshare failed: Operation not permitted").
 */
export class IsolationError extends KilnError {
  readonly reason: string;
  constructor(reason: string) {
    super(`cannot start the isolated process: ${reason}`, { code: ISOLATION_FAILED });
    this.name = "IsolationError";
    this.reason = reason;
  }
}
