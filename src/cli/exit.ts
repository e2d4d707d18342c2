// How a failure looks to a CLI user: the exit code (0 success, 1 build or input error, 2 usage
// error) and the one line printed, with the hints that
// belong to the command line ("run kiln login ...") added here, never in library errors.
import { KilnError, RegistryError, UsageError } from "../errors.js";

/** The process exit code for an error that ended a command: 2 for a caller's mistake, else 1. */
export function exitCodeFor(err: unknown): number {
  return err instanceof UsageError ? 2 : 1;
}

/** The line printed for an error (without the "error: " prefix). */
export function describeError(err: unknown): string {
  if (!(err instanceof KilnError)) {
    const e = err as Error | undefined;
    return e?.message ?? String(err);
  }
  const hint = hintFor(err);
  return hint ? `${err.message}; ${hint}` : err.message;
}

function hintFor(err: KilnError): string | undefined {
  const registry = findRegistryError(err);
  if (registry?.code === "REGISTRY_AUTH") return `run kiln login ${registry.registry}`;
  return undefined;
}

function findRegistryError(err: unknown): RegistryError | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof RegistryError) return e;
  }
  return undefined;
}
