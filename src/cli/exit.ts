// How a failure looks to a CLI user: the exit code (0 success, 1 build or input error, 2 usage
// error; 125 for kiln run's own failures, as docker run) and the one line printed, with the hints that
// belong to the command line ("run kiln login ...") added here, never in library errors.
import { KilnError, RegistryError, UsageError } from "../errors.js";

/** Commands whose own failures exit 125, as docker's do, so they differ from the process's status. */
const CONTAINER_COMMANDS = new Set(["run"]);

/** The process exit code for an error that ended `command`: 2 for a caller's mistake, else 1 (kiln run: 125 for both). */
export function exitCodeFor(err: unknown, command?: string): number {
  if (command !== undefined && CONTAINER_COMMANDS.has(command)) return 125;
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
  if (err.code === "RUN_SECRET_MISSING") return "give it with --secret id=ID,src=FILE (or env=VAR)";
  return undefined;
}

function findRegistryError(err: unknown): RegistryError | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof RegistryError) return e;
  }
  return undefined;
}
