// The registry HTTP client for one registry host: one request with auth (Basic, or Bearer tokens
// cached per scope set and refetched on 401), redirects followed by hand (Authorization never
// leaves the registry host), retries with backoff, and the registry's answers as RegistryErrors.
// The parts live beside it: scheme/TLS and deadlines (transport.ts), the /v2/ ping (ping.ts),
// token auth (token.ts), redirect rules (redirects.ts), request/response shapes (response.ts).
import type { Dispatcher } from "undici";
import { request } from "undici";
import { KilnError, abortError } from "../errors.js";
import { registryHost } from "../image/reference.js";
import { parseChallenges, type Challenge } from "./challenge.js";
import { resolveCredentials, type Credentials } from "./credentials.js";
import { errorDetail, registryErrorCodes, repositoryOf, statusError } from "./http-error.js";
import type { RegistryOptions } from "./options.js";
import { ping } from "./ping.js";
import { MAX_REDIRECTS, redirectTarget } from "./redirects.js";
import { header, readBody, type HttpMethod, type RegistryRequest, type RegistryResponse } from "./response.js";
import { RETRYABLE_STATUS, RetryableStatus, parseRetryAfter, retryPolicy, withRetry, type RetryPolicy } from "./retry.js";
import { RegistryDeadline, resolveTimeouts, timeoutText, type RegistryTimeouts } from "./timeouts.js";
import { fetchToken, type CachedToken } from "./token.js";
import { errorText, holdUntilConsumed, newAgent, requestDeadline, type Deadline } from "./transport.js";

export { allowsPlainHttp } from "./transport.js";
export type { HttpMethod, RegistryRequest, RegistryResponse } from "./response.js";

export class RegistryClient {
  readonly registry: string;
  readonly host: string;
  private readonly options: RegistryOptions;
  readonly policy: RetryPolicy;
  readonly timeouts: Required<RegistryTimeouts>;
  private readonly agent: Dispatcher;
  private insecureAgent: Dispatcher | undefined;
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

  private newAgent(verify: boolean): Dispatcher {
    return newAgent({ ...(this.options.caFile ? { caFile: this.options.caFile } : {}), verify, timeouts: this.timeouts });
  }

  private deadline(what: string): Deadline {
    return requestDeadline(this.registry, what, this.timeouts.totalMs, this.options.signal);
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
    this.pinging ??= ping({
      registry: this.registry,
      host: this.host,
      policy: this.policy,
      insecureRegistries: this.options.insecureRegistries,
      dispatcher: () => this.dispatcher(),
      trustAnyCertificate: () => {
        this.insecureAgent ??= this.newAgent(false);
      },
      deadline: (what) => this.deadline(what),
      networkError: (err) => this.networkError(err),
    }).then(
      (r) => {
        this.base = r.base;
        this.challenges = r.challenges;
      },
      (err: unknown) => {
        this.pinging = undefined;
        throw err;
      },
    );
    return this.pinging;
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
      holdUntilConsumed(res.body, dl.clear);
      const response: RegistryResponse = { status: res.statusCode, headers: res.headers, url, body: res.body };
      const next = redirectTarget(res.statusCode, header(response, "location"), url, method);
      if (next) {
        await res.body.dump();
        if (hops >= MAX_REDIRECTS) throw new KilnError("REGISTRY_PROTOCOL", `registry ${this.registry}: too many redirects for ${req.method} ${url.pathname}`);
        url = next.url;
        method = next.method;
        if (!next.keepBody) body = undefined;
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
        const text = await readBody(response, 64 * 1024).catch(() => Buffer.alloc(0));
        throw new RetryableStatus(
          res.statusCode,
          parseRetryAfter(res.headers["retry-after"]),
          `registry ${this.registry}: ${method} ${url.pathname}: ${errorDetail(res.statusCode, text)}`,
          { registry: this.registry, repository: repositoryOf(url), codes: registryErrorCodes(text) },
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
      const fresh = await fetchToken(
        { registry: this.registry, policy: this.policy, signal: this.options.signal, agent: this.agent, creds: () => this.creds(), deadline: (what) => this.deadline(what) },
        bearer,
        scopes,
      );
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
