// Bearer token auth (the distribution token spec): ask the challenge's realm for a token for a
// set of scopes, by OAuth2 POST with an identity token when there is one, else by GET with Basic
// credentials; retries transient answers; failures become one-line RegistryErrors naming the
// token server. Caching the tokens is the client's job.
import { request, type Dispatcher } from "undici";
import { KilnError, abortError } from "../errors.js";
import type { Challenge } from "./challenge.js";
import type { Credentials } from "./credentials.js";
import { errorDetail, registryErrorCodes, statusError } from "./http-error.js";
import { RETRYABLE_STATUS, RetryableStatus, parseRetryAfter, withRetry, type RetryPolicy } from "./retry.js";
import { errorText, holdUntilConsumed, type Deadline } from "./transport.js";

/** What fetching a token needs from the client. */
export interface TokenContext {
  registry: string;
  policy: RetryPolicy;
  signal: AbortSignal | undefined;
  agent: Dispatcher;
  creds(): Promise<Credentials | undefined>;
  deadline(what: string): Deadline;
}

export interface CachedToken {
  token: string;
  expiresAt: number;
}

interface TokenResponse {
  token?: string;
  access_token?: string;
  expires_in?: number;
  issued_at?: string;
  refresh_token?: string;
}

/** A token for `scopes` from the realm of the Bearer challenge `ch`. */
export async function fetchToken(ctx: TokenContext, ch: Challenge, scopes: string[]): Promise<CachedToken> {
  const realm = ch.params.realm;
  if (!realm) throw new KilnError("REGISTRY_PROTOCOL", `registry ${ctx.registry}: Bearer challenge without a realm`);
  let realmURL: URL;
  try {
    realmURL = new URL(realm);
  } catch {
    throw new KilnError("REGISTRY_TOKEN_FAILED", `registry ${ctx.registry}: invalid token realm "${realm}"`);
  }
  if (realmURL.protocol !== "https:" && realmURL.protocol !== "http:") {
    throw new KilnError("REGISTRY_TOKEN_FAILED", `registry ${ctx.registry}: unsupported token realm "${realm}"`);
  }
  const service = ch.params.service;
  const creds = await ctx.creds();
  const started = Date.now();
  const parsed = await withRetry(ctx.policy, async () => {
    if (creds?.identityToken) {
      const viaPost = await tokenByPost(ctx, realmURL, service, scopes, creds.identityToken);
      if (viaPost !== undefined) return viaPost;
    }
    return tokenByGet(ctx, realmURL, service, scopes, creds);
  }).catch((err: unknown) => {
    if (err instanceof KilnError) throw err;
    if (ctx.signal?.aborted) throw abortError(ctx.signal);
    throw new KilnError("REGISTRY_TOKEN_FAILED", `token server ${realmURL.host} for registry ${ctx.registry}: ${errorText(err)}`, { cause: err });
  });
  const token = parsed.token ?? parsed.access_token;
  if (typeof token !== "string" || token.length === 0) {
    throw new KilnError("REGISTRY_TOKEN_FAILED", `token server ${realmURL.host} for registry ${ctx.registry} returned no token`);
  }
  const ttl = typeof parsed.expires_in === "number" && parsed.expires_in > 0 ? parsed.expires_in : 60;
  return { token, expiresAt: started + Math.max(1, ttl - 10) * 1000 };
}

async function tokenResponse(ctx: TokenContext, res: Dispatcher.ResponseData, realm: URL): Promise<TokenResponse> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    n += (c as Buffer).length;
    if (n > 1024 * 1024) {
      res.body.destroy();
      throw new KilnError("REGISTRY_TOKEN_FAILED", `token server ${realm.host} sent more than 1 MiB`);
    }
    chunks.push(c as Buffer);
  }
  const body = Buffer.concat(chunks);
  if (RETRYABLE_STATUS.has(res.statusCode)) {
    throw new RetryableStatus(res.statusCode, parseRetryAfter(res.headers["retry-after"]), `token server ${realm.host}: ${errorDetail(res.statusCode, body)}`, { registry: ctx.registry, repository: "", codes: registryErrorCodes(body) });
  }
  const where = { registry: ctx.registry, url: "" };
  if (res.statusCode === 401 || res.statusCode === 403) {
    const code = (await ctx.creds()) !== undefined ? "REGISTRY_DENIED" : "REGISTRY_AUTH";
    throw statusError(`registry ${ctx.registry}: authentication failed at token server ${realm.host} (${errorDetail(res.statusCode, body)})`, res.statusCode, body, where, code);
  }
  if (res.statusCode !== 200) {
    throw statusError(`token server ${realm.host} for registry ${ctx.registry}: ${errorDetail(res.statusCode, body)}`, res.statusCode, body, where, "REGISTRY_TOKEN_FAILED");
  }
  try {
    return JSON.parse(body.toString("utf8")) as TokenResponse;
  } catch {
    throw new KilnError("REGISTRY_TOKEN_FAILED", `token server ${realm.host} for registry ${ctx.registry} returned invalid JSON`);
  }
}

/** OAuth2 POST with the refresh (identity) token; undefined when the server has no OAuth2 endpoint. */
async function tokenByPost(ctx: TokenContext, realm: URL, service: string | undefined, scopes: string[], refreshToken: string): Promise<TokenResponse | undefined> {
  const form = new URLSearchParams();
  form.set("grant_type", "refresh_token");
  form.set("refresh_token", refreshToken);
  form.set("client_id", "kiln");
  if (service) form.set("service", service);
  if (scopes.length > 0) form.set("scope", scopes.join(" "));
  const dl = ctx.deadline(`POST token ${realm.host}`);
  const res = await request(realm, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "user-agent": "kiln/0.1" },
    body: form.toString(),
    dispatcher: ctx.agent,
    signal: dl.signal,
  }).catch((err: unknown) => {
    dl.clear();
    throw err;
  });
  holdUntilConsumed(res.body, dl.clear);
  if (res.statusCode === 404 || res.statusCode === 405) {
    await res.body.dump();
    return undefined;
  }
  return tokenResponse(ctx, res, realm);
}

async function tokenByGet(ctx: TokenContext, realm: URL, service: string | undefined, scopes: string[], creds: Credentials | undefined): Promise<TokenResponse> {
  const url = new URL(realm.href);
  if (service) url.searchParams.set("service", service);
  for (const s of scopes) url.searchParams.append("scope", s);
  const headers: Record<string, string> = { "user-agent": "kiln/0.1" };
  if (creds?.username !== undefined && creds.password !== undefined) {
    headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
  }
  const dl = ctx.deadline(`GET token ${realm.host}`);
  const res = await request(url, { method: "GET", headers, dispatcher: ctx.agent, signal: dl.signal }).catch((err: unknown) => {
    dl.clear();
    throw err;
  });
  holdUntilConsumed(res.body, dl.clear);
  return tokenResponse(ctx, res, realm);
}
