// Time limits for registry traffic: how long a connection may take to open (connect), how long
// a response may stay silent — before its headers and between body chunks (idle) — and how long
// one request may take in all (total). Defaults, the `--registry-timeout` syntax, and the one-line
// text for a request that hit a limit.
import { KilnError, UsageError } from "../errors.js";
import { parseDuration } from "../units.js";

export interface RegistryTimeouts {
  /** Opening a connection, TLS included (default 30 s). */
  connectMs?: number;
  /** Silence before the response headers or between body chunks (default 30 s). */
  idleMs?: number;
  /** One request from start to the end of its body (default 1 h; a large layer on a slow link). */
  totalMs?: number;
}

export const DEFAULT_TIMEOUTS: Required<RegistryTimeouts> = { connectMs: 30_000, idleMs: 30_000, totalMs: 3_600_000 };

export function resolveTimeouts(t: RegistryTimeouts | undefined): Required<RegistryTimeouts> {
  return { ...DEFAULT_TIMEOUTS, ...Object.fromEntries(Object.entries(t ?? {}).filter(([, v]) => v !== undefined)) };
}

/** A request that ran past the total limit (not retried: the limit is the caller's budget). */
export class RegistryDeadline extends KilnError {
  constructor(message: string) {
    super("REGISTRY_TIMEOUT", message);
    this.name = "RegistryDeadline";
  }
}

/** "1s500ms" -> "1.5 s". */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** What limit `err` (an undici error, possibly wrapped) hit, as text; undefined when none. */
export function timeoutText(err: unknown, t: Required<RegistryTimeouts>): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e !== undefined && e !== null; depth++) {
    switch ((e as { code?: unknown }).code) {
      case "UND_ERR_CONNECT_TIMEOUT":
        return `could not connect within ${seconds(t.connectMs)} (connect timeout)`;
      case "UND_ERR_HEADERS_TIMEOUT":
        return `no response within ${seconds(t.idleMs)} (idle timeout)`;
      case "UND_ERR_BODY_TIMEOUT":
        return `no data for ${seconds(t.idleMs)} (idle timeout)`;
    }
    if (e instanceof RegistryDeadline) return e.message;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * `--registry-timeout`: a duration sets the idle limit (`30s`); `connect=`, `idle=` and `total=`
 * set each (`connect=10s,idle=1m,total=2h`).
 */
export function parseRegistryTimeout(spec: string): RegistryTimeouts {
  const out: RegistryTimeouts = {};
  for (const part of spec.split(",")) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? "idle" : part.slice(0, eq).trim();
    const value = eq < 0 ? part : part.slice(eq + 1);
    const ms = parseDuration(value);
    if (ms <= 0) throw new UsageError("OPTION_INVALID", `--registry-timeout: ${key} must be longer than 0`);
    if (key === "connect") out.connectMs = ms;
    else if (key === "idle") out.idleMs = ms;
    else if (key === "total") out.totalMs = ms;
    else throw new UsageError("OPTION_INVALID", `--registry-timeout: unknown limit "${key}" (connect, idle, total)`);
  }
  return out;
}
