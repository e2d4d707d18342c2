// The registry HTTP client for one registry host: scheme/TLS choice, /v2/ ping, Basic and Bearer
// auth (token cache per scope set, refetch on 401), redirects followed by hand (Authorization
// never leaves the registry host), retries with backoff, connect/idle/total time limits on every
// request (src/registry/timeouts.ts), and registry error messages.
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import type { Readable } from "node:stream";
import { Agent, request, type Dispatcher } from "undici";
import { KilnError, RegistryError, abortError } from "../errors.js";
import { errorDetail, registryErrorCodes, repositoryOf, statusError } from "./http-error.js";
import { registryHost } from "../image/reference.js";
import { parseChallenges, type Challenge } from "./challenge.js";
import { resolveCredentials, type Credentials } from "./credentials.js";
import type { RegistryOptions } from "./options.js";
import { RETRYABLE_STATUS, RetryableStatus, isTransientNetworkError, parseRetryAfter, retryPolicy, withRetry, type RetryPolicy } from "./retry.js";
import { RegistryDeadline, resolveTimeouts, timeoutText, type RegistryTimeouts } from "./timeouts.js";

export type HttpMethod = "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";

export interface RegistryRequest {
  method: HttpMethod;
  /** "/v2/..." (relative to the registry) or an absolute URL (an upload Location). */
  url: string | URL;
  /** Token scopes this request needs, e.g. ["repository:a/b:pull"]. */
  scopes: string[];
  headers?: Record<string, string>;
  /** Called for every attempt (bodies are streams and cannot be replayed). */
  body?: () => Readable | Buffer | string;
  /** Retry transient failures inside this call (default true). */
  retry?: boolean;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The URL that produced this response (after redirects): Location resolves against it. */
  url: URL;
  body: Readable & { dump?: () => Promise<void> };
}

export function header(res: { headers: RegistryResponse["headers"] }, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Read a (small) response body, failing past `limit` bytes. */
export async function readBody(res: RegistryResponse, limit = 8 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      res.body.destroy();
      throw new KilnError("REGISTRY_TIMEOUT", `response from ${res.url.host} larger than ${limit} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

export async function drain(res: RegistryResponse): Promise<void> {
  try {
    if (res.body.dump) await res.body.dump();
    else res.body.resume();
  } catch {
    // the body is unwanted; errors reading it do not matter
  }
}

/** Turn a registry error body ({"errors":[{code,message}]}) into one line. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|UNABLE_TO_GET_ISSUER/;

function isCertError(err: unknown): boolean {
  let e: unknown = err;
  for (let d = 0; d < 4 && e; d++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && CERT_ERROR.test(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function errorText(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { message?: string; code?: string } };
  const parts = [e?.message, e?.cause?.message].filter((m): m is string => typeof m === "string" && m.length > 0);
  const code = e?.code ?? e?.cause?.code;
  let msg = parts.join(": ") || String(err);
  if (code && !msg.includes(code)) msg += ` (${code})`;
  return msg.replace(/\s*\n\s*/g, " ");
}

/** Hosts that may be reached over plain HTTP: loopback always, plus configured insecure ones. */
export function allowsPlainHttp(registry: string, insecure: string[] = []): boolean {
  const host = registry.startsWith("[") ? registry.slice(0, registry.indexOf("]") + 1) : registry.split(":")[0];
  if (host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host)) return true;
  return insecure.some((i) => i === registry || i === host);
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export class RegistryClient {
  readonly registry: string;
  readonly host: string;
  private readonly options: RegistryOptions;
  readonly policy: RetryPolicy;
  readonly timeouts: Required<RegistryTimeouts>;
  private readonly agent: Agent;
  private insecureAgent: Agent | undefined;
  private base: URL | undefined;
  private pinging: Promise<void> | undefined;
  private challenges: Challenge[] = [];
  private readonly tokens = new Map<string, CachedToken>();
  private credentials: Promise<Credentials | undefined> | undefined;
  private credentialRepository: string | undefined;

  constructor(registry: string, options: RegistryOptions = {}) {
    this.registry = registry;
    this.host = registryHost(registry);
    this.options = options;
    this.policy = { ...retryPolicy(options.retry), ...(options.signal ? { signal: options.signal } : {}) };
    this.timeouts = resolveTimeouts(options.timeouts);
    this.agent = this.newAgent(true);
  }

  /** Connections for this registry (and its token server): the connect and idle limits apply to each. */
  private newAgent(verify: boolean): Agent {
    const idle = this.timeouts.idleMs;
    return new Agent({ connect: this.tlsOptions(verify), keepAliveTimeout: 10_000, headersTimeout: idle, bodyTimeout: idle });
  }

  /**
   * The total limit of one request: a signal that aborts it (body included) when the limit
   * passes; `clear` once the response is consumed or the request failed.
   */
  private deadline(what: string): { signal: AbortSignal; clear: () => void } {
    const ac = new AbortController();
    const ms = this.timeouts.totalMs;
    const timer = setTimeout(() => ac.abort(new RegistryDeadline(`registry ${this.registry}: ${what}: not finished within ${ms / 1000} s (total timeout)`)), ms);
    timer.unref();
    const signal = this.options.signal ? AbortSignal.any([ac.signal, this.options.signal]) : ac.signal;
    return { signal, clear: () => clearTimeout(timer) };
  }

  /** Keep the deadline until the body is consumed (or destroyed). */
  private holdUntilConsumed(body: Readable, clear: () => void): void {
    body.once("close", clear);
    body.once("error", clear);
  }

  private tlsOptions(verify: boolean): { ca?: string[]; rejectUnauthorized?: boolean; timeout: number } {
    const caFile = this.options.caFile ?? process.env.SSL_CERT_FILE;
    const out: { ca?: string[]; rejectUnauthorized?: boolean; timeout: number } = { timeout: this.timeouts.connectMs };
    if (caFile) {
      let pem: string;
      try {
        pem = readFileSync(caFile, "utf8");
      } catch (err) {
        throw new KilnError("REGISTRY_CA_INVALID", `cannot read CA file ${caFile}: ${(err as Error).message}`);
      }
      out.ca = [...rootCertificates, pem];
    }
    if (!verify) out.rejectUnauthorized = false;
    return out;
  }

  private dispatcher(): Dispatcher {
    return this.insecureAgent ?? this.agent;
  }

  async close(): Promise<void> {
    await this.agent.close();
    if (this.insecureAgent) await this.insecureAgent.close();
  }

  /** Which repository credentials are looked up for (auth.json may scope them per repository). */
  useRepository(repository: string): void {
    if (this.credentialRepository === undefined) this.credentialRepository = repository;
  }

  private creds(): Promise<Credentials | undefined> {
    this.credentials ??= resolveCredentials(this.registry, this.options, this.credentialRepository);
    return this.credentials;
  }

  /** Override the credentials (login verifies the ones it was given). */
  setCredentials(c: Credentials | undefined): void {
    this.credentials = Promise.resolve(c);
  }

  /** The scheme+host base URL, found by pinging /v2/. */
  async baseURL(): Promise<URL> {
    await this.ping();
    return this.base as URL;
  }

  /** GET /v2/ once: choose https or (loopback/insecure only) http, and learn the auth challenges. */
  ping(): Promise<void> {
    this.pinging ??= this.doPing().catch((err: unknown) => {
      this.pinging = undefined;
      throw err;
    });
    return this.pinging;
  }

  private async pingAt(base: URL, policy: RetryPolicy = this.policy): Promise<void> {
    const res = await withRetry(policy, async () => {
      const dl = this.deadline("GET /v2/");
      try {
        const r = await request(new URL("/v2/", base), { method: "GET", dispatcher: this.dispatcher(), signal: dl.signal });
        this.holdUntilConsumed(r.body, dl.clear);
        if (RETRYABLE_STATUS.has(r.statusCode)) {
          await r.body.dump();
          throw new RetryableStatus(r.statusCode, parseRetryAfter(r.headers["retry-after"]), `registry ${this.registry}: GET /v2/: ${r.statusCode}`, { registry: this.registry, repository: "", codes: [] });
        }
        return r;
      } catch (err) {
        dl.clear();
        throw err;
      }
    });
    const www = res.headers["www-authenticate"];
    await res.body.dump();
    if (res.statusCode === 200 || res.statusCode === 401) {
      this.challenges = res.statusCode === 401 ? parseChallenges(www) : [];
      this.base = base;
      return;
    }
    throw new RegistryError("REGISTRY_PROTOCOL", `registry ${this.registry} does not speak the registry v2 API (GET /v2/: ${res.statusCode})`, { status: res.statusCode, registry: this.registry, repository: "", codes: [] });
  }

  private async doPing(): Promise<void> {
    const plainOk = allowsPlainHttp(this.registry, this.options.insecureRegistries);
    const explicitInsecure = (this.options.insecureRegistries ?? []).some(
      (i) => i === this.registry || i === this.registry.split(":")[0],
    );
    try {
      // Where plain HTTP is allowed, a failed TLS attempt is most likely a plain-HTTP registry
      // answering: try once, then HTTP (retrying there), instead of backing off on HTTPS.
      await this.pingAt(new URL(`https://${this.host}`), plainOk ? { ...this.policy, attempts: 1 } : this.policy);
      return;
    } catch (err) {
      if (err instanceof KilnError && !isTransientNetworkError(err)) throw err;
      if (isCertError(err)) {
        if (explicitInsecure) {
          // an explicitly insecure registry: TLS without verification, as Docker does
          this.insecureAgent = this.newAgent(false);
          try {
            await this.pingAt(new URL(`https://${this.host}`));
            return;
          } catch (err2) {
            throw this.networkError(err2);
          }
        }
        throw new KilnError("REGISTRY_UNREACHABLE", 
          `registry ${this.registry}: TLS certificate not trusted (${errorText(err)}); pass a CA file or mark it insecure`,
          { cause: err },
        );
      }
      if (!plainOk) throw this.networkError(err);
      try {
        await this.pingAt(new URL(`http://${this.host}`));
      } catch (err2) {
        throw this.networkError(err2);
      }
    }
  }

  networkError(err: unknown, what?: string): Error {
    if (this.options.signal?.aborted) return abortError(this.options.signal);
    if (err instanceof KilnError) return err;
    const limit = timeoutText(err, this.timeouts);
    if (limit !== undefined) return new KilnError("REGISTRY_TIMEOUT", `registry ${this.registry}: ${what ?? "request"}: ${limit}`, { cause: err });
    return new KilnError("REGISTRY_UNREACHABLE", `cannot reach registry ${this.registry}: ${errorText(err)}`, { cause: err });
  }

  /**
   * The error for a failure while reading a response body (`what` names the request and the
   * blob): a time limit hit becomes one line naming the registry; others pass through.
   */
  bodyError(err: unknown, what: string): unknown {
    if (this.options.signal?.aborted) return abortError(this.options.signal);
    const limit = err instanceof RegistryDeadline ? undefined : timeoutText(err, this.timeouts);
    if (limit !== undefined) return new KilnError("REGISTRY_TIMEOUT", `registry ${this.registry}: ${what}: ${limit}`, { cause: err });
    return err;
  }

  /** Send a request with auth, redirects and (unless disabled) retries. Any status is returned. */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    await this.ping();
    const run = (): Promise<RegistryResponse> => this.attempt(req, true);
    try {
      return req.retry === false ? await run() : await withRetry(this.policy, run);
    } catch (err) {
      throw this.networkError(err, `${req.method} ${typeof req.url === "string" ? req.url : req.url.pathname}`);
    }
  }

  private async attempt(req: RegistryRequest, mayReauth: boolean, extraScopes: string[] = []): Promise<RegistryResponse> {
    const base = this.base as URL;
    let url = typeof req.url === "string" ? new URL(req.url, base) : new URL(req.url.href);
    let method: HttpMethod = req.method;
    let body = req.body;
    const scopes = [...new Set([...req.scopes, ...extraScopes])];
    for (let hops = 0; ; hops++) {
      const toRegistry = url.host === base.host && url.protocol === base.protocol;
      const headers: Record<string, string> = { "user-agent": "kiln/0.1", ...(req.headers ?? {}) };
      if (toRegistry) {
        const auth = await this.authorization(scopes);
        if (auth) headers.authorization = auth;
      } else {
        delete headers.authorization;
      }
      const dl = this.deadline(`${method} ${url.pathname}`);
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { method, headers, body: body ? body() : undefined, dispatcher: this.dispatcher(), signal: dl.signal });
      } catch (err) {
        dl.clear();
        throw err;
      }
      this.holdUntilConsumed(res.body, dl.clear);
      const response: RegistryResponse = { status: res.statusCode, headers: res.headers, url, body: res.body };
      const location = header(response, "location");
      if (REDIRECTS.has(res.statusCode) && location) {
        await res.body.dump();
        if (hops >= 10) throw new KilnError("REGISTRY_PROTOCOL", `registry ${this.registry}: too many redirects for ${req.method} ${url.pathname}`);
        url = new URL(location, url);
        if (res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
        continue;
      }
      if (res.statusCode === 401 && toRegistry && mayReauth) {
        const challenges = parseChallenges(res.headers["www-authenticate"]);
        await res.body.dump();
        const bearer = challenges.find((c) => c.scheme === "bearer");
        const more: string[] = [];
        if (bearer) {
          this.challenges = challenges;
          const sc = bearer.params.scope;
          if (sc) more.push(...sc.split(" ").filter((s) => s.length > 0));
        }
        // the cached token may have expired or lack a scope: forget it and ask again once
        this.tokens.delete(this.tokenKey(scopes));
        if (!challenges.some((c) => c.scheme === "basic" || c.scheme === "bearer")) return response;
        if (challenges.some((c) => c.scheme === "basic") && !bearer && (await this.creds()) === undefined) {
          return response;
        }
        this.challenges = challenges;
        return this.attempt(req, false, [...extraScopes, ...more]);
      }
      if (RETRYABLE_STATUS.has(res.statusCode)) {
        const body = await readBody(response, 64 * 1024).catch(() => Buffer.alloc(0));
        throw new RetryableStatus(
          res.statusCode,
          parseRetryAfter(res.headers["retry-after"]),
          `registry ${this.registry}: ${method} ${url.pathname}: ${errorDetail(res.statusCode, body)}`,
          { registry: this.registry, repository: repositoryOf(url), codes: registryErrorCodes(body) },
        );
      }
      return response;
    }
  }

  /**
   * Throw a RegistryError unless the response has one of the `ok` statuses: the status, the
   * repository and the registry's error codes as fields, one line naming the request.
   */
  async expect(res: RegistryResponse, ok: number[], what: string): Promise<void> {
    if (ok.includes(res.status)) return;
    const body = await readBody(res, 64 * 1024).catch(() => Buffer.alloc(0));
    const detail = errorDetail(res.status, body);
    const where = { registry: this.registry, url: res.url };
    if (res.status === 401 || res.status === 403) {
      const hasCreds = (await this.creds()) !== undefined;
      const why = hasCreds ? "access denied with the configured credentials" : "authentication required (no credentials found)";
      throw statusError(`registry ${this.registry}: ${what}: ${why} (${detail})`, res.status, body, where, hasCreds ? "REGISTRY_DENIED" : "REGISTRY_AUTH");
    }
    throw statusError(`registry ${this.registry}: ${what}: ${detail}`, res.status, body, where);
  }

  private tokenKey(scopes: string[]): string {
    return [...scopes].sort().join(" ");
  }

  /** The Authorization header for a request needing `scopes`, per the registry's challenge. */
  private async authorization(scopes: string[]): Promise<string | undefined> {
    const bearer = this.challenges.find((c) => c.scheme === "bearer");
    if (bearer) {
      const key = this.tokenKey(scopes);
      const cached = this.tokens.get(key);
      if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
      const fresh = await this.fetchToken(bearer, scopes);
      this.tokens.set(key, fresh);
      return `Bearer ${fresh.token}`;
    }
    if (this.challenges.some((c) => c.scheme === "basic")) {
      const c = await this.creds();
      if (c?.username !== undefined) {
        return `Basic ${Buffer.from(`${c.username}:${c.password ?? ""}`).toString("base64")}`;
      }
    }
    return undefined;
  }

  private async fetchToken(ch: Challenge, scopes: string[]): Promise<CachedToken> {
    const realm = ch.params.realm;
    if (!realm) throw new KilnError("REGISTRY_PROTOCOL", `registry ${this.registry}: Bearer challenge without a realm`);
    let realmURL: URL;
    try {
      realmURL = new URL(realm);
    } catch {
      throw new KilnError("REGISTRY_TOKEN_FAILED", `registry ${this.registry}: invalid token realm "${realm}"`);
    }
    if (realmURL.protocol !== "https:" && realmURL.protocol !== "http:") {
      throw new KilnError("REGISTRY_TOKEN_FAILED", `registry ${this.registry}: unsupported token realm "${realm}"`);
    }
    const service = ch.params.service;
    const creds = await this.creds();
    const started = Date.now();
    const parsed = await withRetry(this.policy, async () => {
      if (creds?.identityToken) {
        const viaPost = await this.tokenByPost(realmURL, service, scopes, creds.identityToken);
        if (viaPost !== undefined) return viaPost;
      }
      return this.tokenByGet(realmURL, service, scopes, creds);
    }).catch((err: unknown) => {
      if (err instanceof KilnError) throw err;
      if (this.options.signal?.aborted) throw abortError(this.options.signal);
      throw new KilnError("REGISTRY_TOKEN_FAILED", `token server ${realmURL.host} for registry ${this.registry}: ${errorText(err)}`, { cause: err });
    });
    const token = parsed.token ?? parsed.access_token;
    if (typeof token !== "string" || token.length === 0) {
      throw new KilnError("REGISTRY_TOKEN_FAILED", `token server ${realmURL.host} for registry ${this.registry} returned no token`);
    }
    const ttl = typeof parsed.expires_in === "number" && parsed.expires_in > 0 ? parsed.expires_in : 60;
    return { token, expiresAt: started + Math.max(1, ttl - 10) * 1000 };
  }

  private async tokenResponse(res: Dispatcher.ResponseData, realm: URL): Promise<TokenResponse> {
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
      throw new RetryableStatus(res.statusCode, parseRetryAfter(res.headers["retry-after"]), `token server ${realm.host}: ${errorDetail(res.statusCode, body)}`, { registry: this.registry, repository: "", codes: registryErrorCodes(body) });
    }
    const where = { registry: this.registry, url: "" };
    if (res.statusCode === 401 || res.statusCode === 403) {
      const code = (await this.creds()) !== undefined ? "REGISTRY_DENIED" : "REGISTRY_AUTH";
      throw statusError(`registry ${this.registry}: authentication failed at token server ${realm.host} (${errorDetail(res.statusCode, body)})`, res.statusCode, body, where, code);
    }
    if (res.statusCode !== 200) {
      throw statusError(`token server ${realm.host} for registry ${this.registry}: ${errorDetail(res.statusCode, body)}`, res.statusCode, body, where, "REGISTRY_TOKEN_FAILED");
    }
    try {
      return JSON.parse(body.toString("utf8")) as TokenResponse;
    } catch {
      throw new KilnError("REGISTRY_TOKEN_FAILED", `token server ${realm.host} for registry ${this.registry} returned invalid JSON`);
    }
  }

  /** OAuth2 POST with the refresh (identity) token; undefined when the server has no OAuth2 endpoint. */
  private async tokenByPost(realm: URL, service: string | undefined, scopes: string[], refreshToken: string): Promise<TokenResponse | undefined> {
    const form = new URLSearchParams();
    form.set("grant_type", "refresh_token");
    form.set("refresh_token", refreshToken);
    form.set("client_id", "kiln");
    if (service) form.set("service", service);
    if (scopes.length > 0) form.set("scope", scopes.join(" "));
    const dl = this.deadline(`POST token ${realm.host}`);
    const res = await request(realm, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "user-agent": "kiln/0.1" },
      body: form.toString(),
      dispatcher: this.agent,
      signal: dl.signal,
    }).catch((err: unknown) => {
      dl.clear();
      throw err;
    });
    this.holdUntilConsumed(res.body, dl.clear);
    if (res.statusCode === 404 || res.statusCode === 405) {
      await res.body.dump();
      return undefined;
    }
    return this.tokenResponse(res, realm);
  }

  private async tokenByGet(realm: URL, service: string | undefined, scopes: string[], creds: Credentials | undefined): Promise<TokenResponse> {
    const url = new URL(realm.href);
    if (service) url.searchParams.set("service", service);
    for (const s of scopes) url.searchParams.append("scope", s);
    const headers: Record<string, string> = { "user-agent": "kiln/0.1" };
    if (creds?.username !== undefined && creds.password !== undefined) {
      headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
    }
    const dl = this.deadline(`GET token ${realm.host}`);
    const res = await request(url, { method: "GET", headers, dispatcher: this.agent, signal: dl.signal }).catch((err: unknown) => {
      dl.clear();
      throw err;
    });
    this.holdUntilConsumed(res.body, dl.clear);
    return this.tokenResponse(res, realm);
  }
}

interface TokenResponse {
  token?: string;
  access_token?: string;
  expires_in?: number;
  issued_at?: string;
  refresh_token?: string;
}

/** One client per registry for an operation; closed together at the end. */
export class ClientPool {
  private readonly clients = new Map<string, RegistryClient>();
  constructor(private readonly options: RegistryOptions) {}
  get(registry: string): RegistryClient {
    let c = this.clients.get(registry);
    if (!c) {
      c = new RegistryClient(registry, this.options);
      this.clients.set(registry, c);
    }
    return c;
  }
  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close()));
  }
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}
