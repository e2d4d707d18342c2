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
