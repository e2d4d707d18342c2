// Scheme and TLS for one registry host: which hosts may be reached over plain HTTP or without
// certificate checks, the undici agents (CA bundle, connect/idle limits), the total-time
// deadline of one request (joined with the caller's AbortSignal), and a network failure as text.
// With HTTP_PROXY / HTTPS_PROXY (or their lower-case forms) set, connections go through that
// proxy (undici's EnvHttpProxyAgent: CONNECT tunnels, NO_PROXY honoured), with the registry's own
// TLS settings inside the tunnel.
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import type { Readable } from "node:stream";
import { Agent, EnvHttpProxyAgent, type Dispatcher } from "undici";
import { KilnError } from "../errors.js";
import { RegistryDeadline, type RegistryTimeouts } from "./timeouts.js";

/** Hosts that may be reached over plain HTTP: loopback always, plus configured insecure ones. */
export function allowsPlainHttp(registry: string, insecure: string[] = []): boolean {
  const host = registry.startsWith("[") ? registry.slice(0, registry.indexOf("]") + 1) : registry.split(":")[0];
  if (host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host)) return true;
  return insecure.some((i) => i === registry || i === host);
}

/** Whether `registry` is named insecure explicitly (then TLS without verification is allowed, as Docker does). */
export function isExplicitlyInsecure(registry: string, insecure: string[] = []): boolean {
  return insecure.some((i) => i === registry || i === registry.split(":")[0]);
}

const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|UNABLE_TO_GET_ISSUER/;

export function isCertError(err: unknown): boolean {
  let e: unknown = err;
  for (let d = 0; d < 4 && e; d++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && CERT_ERROR.test(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** A network error (and its cause) as one line, with its system code. */
export function errorText(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { message?: string; code?: string } };
  const parts = [e?.message, e?.cause?.message].filter((m): m is string => typeof m === "string" && m.length > 0);
  const code = e?.code ?? e?.cause?.code;
  let msg = parts.join(": ") || String(err);
  if (code && !msg.includes(code)) msg += ` (${code})`;
  return msg.replace(/\s*\n\s*/g, " ");
}

/** Whether the environment names a proxy (HTTP_PROXY, HTTPS_PROXY, either case). */
export function proxyConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"].some((k) => (env[k] ?? "") !== "");
}

/** The environment's proxy settings as a dispatcher (undefined when none is set: direct connections). */
export function envProxyDispatcher(): Dispatcher | undefined {
  return proxyConfigured() ? new EnvHttpProxyAgent() : undefined;
}

/** Connections for a registry (and its token server): the connect and idle limits apply to each. */
export function newAgent(options: { caFile?: string; verify: boolean; timeouts: Required<RegistryTimeouts> }): Dispatcher {
  const idle = options.timeouts.idleMs;
  const tls = tlsOptions(options);
  const common = { keepAliveTimeout: 10_000, headersTimeout: idle, bodyTimeout: idle };
  if (proxyConfigured()) return new EnvHttpProxyAgent({ ...common, connect: tls, requestTls: tls });
  return new Agent({ connect: tls, ...common });
}

function tlsOptions(options: { caFile?: string; verify: boolean; timeouts: Required<RegistryTimeouts> }): { ca?: string[]; rejectUnauthorized?: boolean; timeout: number } {
  const caFile = options.caFile ?? process.env.SSL_CERT_FILE;
  const out: { ca?: string[]; rejectUnauthorized?: boolean; timeout: number } = { timeout: options.timeouts.connectMs };
  if (caFile) {
    let pem: string;
    try {
      pem = readFileSync(caFile, "utf8");
    } catch (err) {
      throw new KilnError("REGISTRY_CA_INVALID", `cannot read CA file ${caFile}: ${(err as Error).message}`, { cause: err });
    }
    out.ca = [...rootCertificates, pem];
  }
  if (!options.verify) out.rejectUnauthorized = false;
  return out;
}

export interface Deadline {
  signal: AbortSignal;
  /** Stop the timer: once the response is consumed or the request failed. */
  clear: () => void;
}

/**
 * The total limit of one request: a signal that aborts it (body included) when `totalMs`
 * passes or the caller's `signal` fires.
 */
export function requestDeadline(registry: string, what: string, totalMs: number, signal?: AbortSignal): Deadline {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new RegistryDeadline(`registry ${registry}: ${what}: not finished within ${totalMs / 1000} s (total timeout)`)), totalMs);
  timer.unref();
  return { signal: signal ? AbortSignal.any([ac.signal, signal]) : ac.signal, clear: () => clearTimeout(timer) };
}

/** Keep the deadline until the body is consumed (or destroyed). */
export function holdUntilConsumed(body: Readable, clear: () => void): void {
  body.once("close", clear);
  body.once("error", clear);
}
