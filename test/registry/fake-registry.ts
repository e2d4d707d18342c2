// A fault-injecting in-process registry (node:http) for tests: an in-memory distribution API
// (blobs, monolithic and chunked uploads, mounts, manifests) plus hooks that let a test answer
// any request itself (429s, 5xx bursts, dropped connections, redirects, lies). With `referrers`,
// it has the OCI 1.1 referrers API: a manifest put with a `subject` is answered with OCI-Subject
// and listed by GET /v2/<name>/referrers/<digest> (filtered by ?artifactType=).
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SeenRequest {
  method: string;
  path: string;
  authorization?: string;
  contentRange?: string;
  contentLength?: number;
}

export interface FakeRegistryOptions {
  host?: string;
  /** Location style for upload URLs. */
  location?: "relative" | "absolute";
  /** Require Basic auth with these credentials. */
  basic?: { user: string; password: string };
  /**
   * Require Bearer tokens from the fake's own /token endpoint. Tokens live `ttl` seconds; when
   * `extraScope` is set, manifest GETs also need that scope (answered with insufficient_scope).
   */
  bearer?: { ttl?: number; extraScope?: string };
  /** Answer a PATCH with 201 (finishing the upload) as ECR does. */
  patch201?: boolean;
  /** OCI-Chunk-Min-Length to announce on POST. */
  chunkMinLength?: number;
  /**
   * Called first for every request with its body already read (except blob upload bodies, which
   * stay unread so a hook can drop the connection mid-stream): return true when handled.
   */
  hook?: (req: IncomingMessage, res: ServerResponse, n: { count: number; path: string; method: string }) => boolean | Promise<boolean>;
  /** Offer the OCI 1.1 referrers API (see the header). */
  referrers?: boolean;
}

export interface FakeRegistry {
  host: string;
  url: string;
  requests: SeenRequest[];
  blobs: Map<string, Buffer>;
  manifests: Map<string, { bytes: Buffer; mediaType: string }>;
  /** Scopes asked for by each token request (bearer mode). */
  tokenRequests: string[][];
  close(): Promise<void>;
}

function sha(b: Buffer): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function err(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ errors: [{ code, message }] }));
}

export async function startFakeRegistry(opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
  const bind = opts.host ?? "127.0.0.1";
  const requests: SeenRequest[] = [];
  const blobs = new Map<string, Buffer>(); // "repo@digest" and "digest"
  const manifests = new Map<string, { bytes: Buffer; mediaType: string }>(); // "repo:ref"
  const uploads = new Map<string, { repo: string; parts: Buffer[]; size: number; state: string }>();
  const repoBlobs = new Set<string>();
  const referrers = new Map<string, Array<{ mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }>>(); // "repo@subject"
  const tokenRequests: string[][] = [];
  const fake: FakeRegistry = { host: "", url: "", requests, blobs, manifests, tokenRequests, close: async () => undefined };

  /** Whether the bearer token grants `need` (e.g. "repository:a/b:push"). */
  const grants = (auth: string | undefined, need: string[]): "ok" | "missing" | "insufficient" => {
    if (!auth?.startsWith("Bearer ")) return "missing";
    let tok: { scopes: string[]; exp: number };
    try {
      tok = JSON.parse(Buffer.from(auth.slice(7), "base64url").toString("utf8")) as { scopes: string[]; exp: number };
    } catch {
      return "missing";
    }
    if (tok.exp < Date.now()) return "missing";
    const have = new Set<string>();
    for (const sc of tok.scopes) {
      const i = sc.lastIndexOf(":");
      for (const a of sc.slice(i + 1).split(",")) have.add(`${sc.slice(0, i)}:${a}`);
    }
    return need.every((n) => have.has(n)) ? "ok" : "insufficient";
  };
  let count = 0;

  const uploadLocation = (id: string, repo: string, state: string): string => {
    const path = `/v2/${repo}/blobs/uploads/${id}?_state=${state}`;
    return opts.location === "absolute" ? `${fake.url}${path}` : path;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://x");
    const method = req.method ?? "GET";
    requests.push({
      method,
      path: url.pathname + url.search,
      authorization: req.headers.authorization,
      contentRange: req.headers["content-range"] as string | undefined,
      contentLength: req.headers["content-length"] !== undefined ? Number(req.headers["content-length"]) : undefined,
    });
    count++;
    if (opts.hook && (await opts.hook(req, res, { count, path: url.pathname + url.search, method }))) return;
    if (opts.bearer) {
      if (url.pathname === "/token") {
        const scopes = url.searchParams.getAll("scope");
        tokenRequests.push(scopes);
        const token = Buffer.from(JSON.stringify({ scopes, exp: Date.now() + (opts.bearer.ttl ?? 300) * 1000 })).toString("base64url");
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(JSON.stringify({ token, expires_in: opts.bearer.ttl ?? 300 }));
      }
      const rm = /^\/v2\/(.+?)\/(blobs|manifests)\//.exec(url.pathname);
      const need: string[] = [];
      if (rm) {
        need.push(`repository:${rm[1]}:${method === "GET" || method === "HEAD" ? "pull" : "push"}`);
        if (rm[2] === "manifests" && method === "GET" && opts.bearer.extraScope) need.push(opts.bearer.extraScope);
        const from = url.searchParams.get("from");
        if (from) need.push(`repository:${from}:pull`);
      }
      const g = grants(req.headers.authorization, need);
      if (g !== "ok") {
        const scopeParam = need.length > 0 ? `,scope="${need.map((n) => n).join(" ")}"` : "";
        res.setHeader("www-authenticate", `Bearer realm="${fake.url}/token",service="fake"${scopeParam}${g === "insufficient" ? ',error="insufficient_scope"' : ""}`);
        await readAll(req).catch(() => undefined);
        return err(res, 401, "UNAUTHORIZED", "authentication required");
      }
    }
    if (opts.basic) {
      const want = `Basic ${Buffer.from(`${opts.basic.user}:${opts.basic.password}`).toString("base64")}`;
      if (req.headers.authorization !== want) {
        res.setHeader("www-authenticate", 'Basic realm="fake"');
        return err(res, 401, "UNAUTHORIZED", "authentication required");
      }
    }
    if (url.pathname === "/v2/" || url.pathname === "/v2") {
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end("{}");
    }
    let m = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(url.pathname);
    if (m) {
      const repo = m[1];
      const id = m[2];
      if (method === "POST" && id === "") {
        await readAll(req);
        const mount = url.searchParams.get("mount");
        const from = url.searchParams.get("from");
        if (mount && from && repoBlobs.has(`${from}@${mount}`)) {
          repoBlobs.add(`${repo}@${mount}`);
          res.writeHead(201, { location: `/v2/${repo}/blobs/${mount}`, "docker-content-digest": mount });
          return void res.end();
        }
        const nid = randomBytes(8).toString("hex");
        const state = randomBytes(4).toString("hex");
        uploads.set(nid, { repo, parts: [], size: 0, state });
        const headers: Record<string, string> = { location: uploadLocation(nid, repo, state), range: "0-0", "docker-upload-uuid": nid };
        if (opts.chunkMinLength) headers["oci-chunk-min-length"] = String(opts.chunkMinLength);
        res.writeHead(202, headers);
        return void res.end();
      }
      const up = uploads.get(id);
      if (!up) {
        await readAll(req).catch(() => undefined);
        return err(res, 404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
      }
      if (url.searchParams.get("_state") !== up.state) {
        await readAll(req).catch(() => undefined);
        return err(res, 400, "BLOB_UPLOAD_INVALID", "missing or stale _state (Location query dropped?)");
      }
      const nextState = (): string => {
        up.state = randomBytes(4).toString("hex");
        return up.state;
      };
      if (method === "GET") {
        res.writeHead(204, { location: uploadLocation(id, repo, up.state), range: `0-${Math.max(0, up.size - 1)}` });
        return void res.end();
      }
      let body: Buffer;
      try {
        body = await readAll(req);
      } catch {
        return; // connection dropped mid-body
      }
      if (method === "PATCH") {
        const cr = req.headers["content-range"] as string | undefined;
        if (cr) {
          const start = Number(cr.split("-")[0]);
          if (start !== up.size) {
            res.writeHead(416, { location: uploadLocation(id, repo, up.state), range: `0-${Math.max(0, up.size - 1)}` });
            return void res.end();
          }
        }
        up.parts.push(body);
        up.size += body.length;
        if (opts.patch201) {
          const data = Buffer.concat(up.parts);
          const d = sha(data);
          blobs.set(d, data);
          repoBlobs.add(`${repo}@${d}`);
          uploads.delete(id);
          res.writeHead(201, { location: `/v2/${repo}/blobs/${d}`, "docker-content-digest": d });
          return void res.end();
        }
        res.writeHead(202, { location: uploadLocation(id, repo, nextState()), range: `0-${up.size - 1}` });
        return void res.end();
      }
      if (method === "PUT") {
        up.parts.push(body);
        const data = Buffer.concat(up.parts);
        const d = sha(data);
        const want = url.searchParams.get("digest");
        if (want !== d) {
          uploads.delete(id);
          return err(res, 400, "DIGEST_INVALID", `digest mismatch: got ${d}`);
        }
        blobs.set(d, data);
        repoBlobs.add(`${repo}@${d}`);
        uploads.delete(id);
        res.writeHead(201, { location: `/v2/${repo}/blobs/${d}`, "docker-content-digest": d });
        return void res.end();
      }
    }
    m = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (m) {
      await readAll(req);
      const data = repoBlobs.has(`${m[1]}@${m[2]}`) ? blobs.get(m[2]) : undefined;
      if (!data) return err(res, 404, "BLOB_UNKNOWN", "blob unknown");
      res.writeHead(200, { "content-length": String(data.length), "docker-content-digest": m[2], "content-type": "application/octet-stream" });
      return void res.end(method === "HEAD" ? undefined : data);
    }
    m = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (m && opts.referrers && method === "GET") {
      await readAll(req);
      const want = url.searchParams.get("artifactType");
      const list = (referrers.get(`${m[1]}@${m[2]}`) ?? []).filter((d) => want === null || d.artifactType === want);
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: list }));
      res.writeHead(200, { "content-type": "application/vnd.oci.image.index.v1+json", "content-length": String(body.length), ...(want !== null ? { "oci-filters-applied": "artifactType" } : {}) });
      return void res.end(body);
    }
    m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
    if (m) {
      const key = `${m[1]}:${m[2]}`;
      if (method === "PUT") {
        const bytes = await readAll(req);
        const d = sha(bytes);
        const v = { bytes, mediaType: String(req.headers["content-type"]) };
        manifests.set(key, v);
        manifests.set(`${m[1]}:${d}`, v);
        const headers: Record<string, string> = { location: `/v2/${m[1]}/manifests/${d}`, "docker-content-digest": d };
        const doc = JSON.parse(bytes.toString("utf8")) as { subject?: { digest: string }; artifactType?: string; config?: { mediaType: string }; annotations?: Record<string, string> };
        if (opts.referrers && doc.subject) {
          const list = referrers.get(`${m[1]}@${doc.subject.digest}`) ?? [];
          list.push({ mediaType: v.mediaType, digest: d, size: bytes.length, artifactType: doc.artifactType ?? doc.config?.mediaType, ...(doc.annotations ? { annotations: doc.annotations } : {}) });
          referrers.set(`${m[1]}@${doc.subject.digest}`, list);
          headers["oci-subject"] = doc.subject.digest;
        }
        res.writeHead(201, headers);
        return void res.end();
      }
      await readAll(req);
      const v = manifests.get(key);
      if (!v) return err(res, 404, "MANIFEST_UNKNOWN", "manifest unknown");
      res.writeHead(200, { "content-type": v.mediaType, "docker-content-digest": sha(v.bytes), "content-length": String(v.bytes.length) });
      return void res.end(method === "HEAD" ? undefined : v.bytes);
    }
    await readAll(req);
    err(res, 404, "NOT_FOUND", "not found");
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) err(res, 500, "INTERNAL", String(e));
      else res.destroy();
    });
  });
  const port = await new Promise<number>((resolve) => server.listen(0, bind, () => resolve((server.address() as AddressInfo).port)));
  fake.host = `${bind}:${port}`;
  fake.url = `http://${fake.host}`;
  fake.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return fake;
}
