// Errors kiln reports to users: one line, naming where the problem came from.
// `KilnError` carries the exit code the CLI uses (1 = build/input error, 2 = usage error).

export class KilnError extends Error {
  readonly exitCode: number;
  constructor(message: string, options?: { exitCode?: number; cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "KilnError";
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** A mistake in a Dockerfile, reported as `FILE:LINE: message`. */
export class DockerfileError extends KilnError {
  readonly file: string;
  readonly line: number;
  readonly detail: string;
  constructor(detail: string, line: number, file = "Dockerfile") {
    super(line > 0 ? `${file}:${line}: ${detail}` : `${file}: ${detail}`);
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
