// GET /v2/ once per registry: choose the scheme (https; plain http only for loopback and
// insecure hosts, TLS without verification only for explicitly insecure ones) and learn the
// auth challenges the registry answers with.
import { request, type Dispatcher } from "undici";
import { KilnError, RegistryError } from "../errors.js";
import { parseChallenges, type Challenge } from "./challenge.js";
import { RETRYABLE_STATUS, RetryableStatus, isTransientNetworkError, parseRetryAfter, withRetry, type RetryPolicy } from "./retry.js";
import { allowsPlainHttp, errorText, holdUntilConsumed, isCertError, isExplicitlyInsecure, type Deadline } from "./transport.js";

/** What pinging needs from the client. */
export interface PingContext {
  registry: string;
  host: string;
  policy: RetryPolicy;
  insecureRegistries: string[] | undefined;
  /** The agent requests go through now (after `trustAnyCertificate`, the unverified one). */
  dispatcher(): Dispatcher;
  /** Switch to TLS without certificate verification (explicitly insecure registries only). */
  trustAnyCertificate(): void;
  deadline(what: string): Deadline;
  networkError(err: unknown): Error;
}

export interface PingResult {
  /** The scheme+host every request of this registry goes to. */
  base: URL;
  challenges: Challenge[];
}

export async function ping(ctx: PingContext): Promise<PingResult> {
  const plainOk = allowsPlainHttp(ctx.registry, ctx.insecureRegistries);
  const https = new URL(`https://${ctx.host}`);
  try {
    // Where plain HTTP is allowed, a failed TLS attempt is most likely a plain-HTTP registry
    // answering: try once, then HTTP (retrying there), instead of backing off on HTTPS.
    return await pingAt(ctx, https, plainOk ? { ...ctx.policy, attempts: 1 } : ctx.policy);
  } catch (err) {
    if (err instanceof KilnError && !isTransientNetworkError(err)) throw err;
    if (isCertError(err)) {
      if (isExplicitlyInsecure(ctx.registry, ctx.insecureRegistries)) {
        // an explicitly insecure registry: TLS without verification, as Docker does
        ctx.trustAnyCertificate();
        try {
          return await pingAt(ctx, https, ctx.policy);
        } catch (err2) {
          throw ctx.networkError(err2);
        }
      }
      throw new KilnError("REGISTRY_UNREACHABLE", `registry ${ctx.registry}: TLS certificate not trusted (${errorText(err)}); pass a CA file or mark it insecure`, { cause: err });
    }
    if (!plainOk) throw ctx.networkError(err);
    try {
      return await pingAt(ctx, new URL(`http://${ctx.host}`), ctx.policy);
    } catch (err2) {
      throw ctx.networkError(err2);
    }
  }
}

async function pingAt(ctx: PingContext, base: URL, policy: RetryPolicy): Promise<PingResult> {
  const res = await withRetry(policy, async () => {
    const dl = ctx.deadline("GET /v2/");
    try {
      const r = await request(new URL("/v2/", base), { method: "GET", dispatcher: ctx.dispatcher(), signal: dl.signal });
      holdUntilConsumed(r.body, dl.clear);
      if (RETRYABLE_STATUS.has(r.statusCode)) {
        await r.body.dump();
        throw new RetryableStatus(r.statusCode, parseRetryAfter(r.headers["retry-after"]), `registry ${ctx.registry}: GET /v2/: ${r.statusCode}`, { registry: ctx.registry, repository: "", codes: [] });
      }
      return r;
    } catch (err) {
      dl.clear();
      throw err;
    }
  });
  const www = res.headers["www-authenticate"];
  await res.body.dump();
  if (res.statusCode === 200 || res.statusCode === 401) return { base, challenges: res.statusCode === 401 ? parseChallenges(www) : [] };
  throw new RegistryError("REGISTRY_PROTOCOL", `registry ${ctx.registry} does not speak the registry v2 API (GET /v2/: ${res.statusCode})`, { status: res.statusCode, registry: ctx.registry, repository: "", codes: [] });
}
