// Retry policy for registry traffic: which failures are transient, and exponential backoff with
// jitter that honours Retry-After.
import { AbortError, RegistryError, abortError, throwIfAborted, type RegistryErrorDetails } from "../errors.js";
import type { RetryOptions } from "./options.js";

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Once aborted, nothing is retried: an AbortError (cause: the signal's reason) is thrown. */
  signal?: AbortSignal;
}

export function retryPolicy(o: RetryOptions | undefined): RetryPolicy {
  return {
    attempts: Math.max(1, o?.attempts ?? 5),
    baseDelayMs: Math.max(0, o?.baseDelayMs ?? 200),
    maxDelayMs: Math.max(0, o?.maxDelayMs ?? 10_000),
  };
}

export const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

/** Thrown for a transient HTTP status so callers' retry loops can back off and try again. */
export class RetryableStatus extends RegistryError {
  constructor(status: number, readonly retryAfterMs: number | undefined, message: string, where: Omit<RegistryErrorDetails, "status">) {
    super("REGISTRY_RETRYABLE", message, { status, ...where });
    this.name = "RetryableStatus";
  }
}

const NET_CODES = new Set([
  "ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH",
  "UND_ERR_SOCKET", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED", "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH", "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

/** A network-level failure worth another try (not DNS "no such host", not TLS trust errors). */
export function isTransientNetworkError(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e !== undefined && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NET_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  const msg = err instanceof Error ? err.message : "";
  return /socket hang up|other side closed|premature close|aborted/i.test(msg);
}

/** Parse Retry-After (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || s.trim() === "") return undefined;
  if (/^\d+$/.test(s.trim())) return Number(s.trim()) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

/** Delay before attempt `n` (1-based count of failures so far). */
export function backoffDelay(p: RetryPolicy, failures: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, Math.max(p.maxDelayMs, 0));
  const exp = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (failures - 1));
  // full jitter in [exp/2, exp]
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal ? abortError(signal) : new AbortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Run `fn` until it succeeds, retrying transient failures with backoff. */
export async function withRetry<T>(p: RetryPolicy, fn: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(p.signal);
    try {
      return await fn(attempt);
    } catch (err) {
      if (p.signal?.aborted) throw abortError(p.signal);
      const transient = err instanceof RetryableStatus || isTransientNetworkError(err);
      if (!transient || attempt >= p.attempts) throw err;
      const ra = err instanceof RetryableStatus ? err.retryAfterMs : undefined;
      await sleep(backoffDelay(p, attempt, ra), p.signal);
    }
  }
}
