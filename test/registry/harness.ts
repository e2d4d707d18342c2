// Test harness for registry tests: temp dirs, hand-written OCI layouts, the real docker-registry
// (distribution 2.8) in plain-HTTP, htpasswd+TLS and token-auth set-ups, a JWT token server,
// certificates made with openssl, and skopeo.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash, createSign, randomBytes } from "node:crypto";
import { mkdtempSync, openSync, closeSync, readFileSync } from "node:fs";
import { mkdir, rm, writeFile, readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as netServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";
import type { Descriptor, Digest } from "../../src/image/oci.js";

export const run = promisify(execFile);

export function tempDir(prefix = "kiln-reg-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function sha256(b: Buffer | string): Digest {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.on("error", reject);
    s.listen(0, host, () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) {
    pack.entry({ name, size: content.length, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, content);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export interface LayoutImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

export interface TestLayout {
  dir: string;
  /** The descriptor index.json names with the tag. */
  root: Descriptor;
  images: LayoutImage[];
  /** Every blob digest (layers, configs, manifests, index). */
  blobs: Digest[];
}

async function putBlob(dir: string, data: Buffer): Promise<{ digest: Digest; size: number }> {
  const digest = sha256(data);
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await writeFile(join(dir, "blobs", "sha256", digest.slice(7)), data);
  return { digest, size: data.length };
}

/**
 * Write a small OCI layout by hand: `layers` gzip'd tar layers of random files (each `layerSize`
 * bytes of content), one image per platform; several platforms make an index.
 */
export async function makeLayout(opts: {
  dir?: string;
  tag?: string;
  layers?: number;
  layerSize?: number;
  platforms?: Array<{ os: string; architecture: string; variant?: string }>;
  shareLayers?: Buffer[];
  /** Docker schema2 media types instead of OCI ones. */
  docker?: boolean;
} = {}): Promise<TestLayout> {
  const mt = opts.docker
    ? { layer: "application/vnd.docker.image.rootfs.diff.tar.gzip", config: "application/vnd.docker.container.image.v1+json", manifest: "application/vnd.docker.distribution.manifest.v2+json", index: "application/vnd.docker.distribution.manifest.list.v2+json" }
    : { layer: "application/vnd.oci.image.layer.v1.tar+gzip", config: "application/vnd.oci.image.config.v1+json", manifest: "application/vnd.oci.image.manifest.v1+json", index: "application/vnd.oci.image.index.v1+json" };
  const dir = opts.dir ?? tempDir("kiln-layout-");
  const tag = opts.tag ?? "v1";
  const platforms = opts.platforms ?? [{ os: "linux", architecture: "amd64" }];
  const blobs: Digest[] = [];
  const images: LayoutImage[] = [];
  for (const p of platforms) {
    const layers: Descriptor[] = [];
    const diffIDs: Digest[] = [];
    const raws = [...(opts.shareLayers ?? [])];
    for (let i = 0; i < (opts.layers ?? 2); i++) raws.push(randomBytes(opts.layerSize ?? 2048));
    for (const [i, raw] of raws.entries()) {
      const t = await tarOf({ [`file-${i}.bin`]: raw });
      diffIDs.push(sha256(t));
      const gz = gzipSync(t);
      const b = await putBlob(dir, gz);
      blobs.push(b.digest);
      layers.push({ mediaType: mt.layer, ...b });
    }
    const config = Buffer.from(JSON.stringify({
      architecture: p.architecture,
      os: p.os,
      ...(p.variant ? { variant: p.variant } : {}),
      config: { Env: ["PATH=/usr/bin:/bin"], Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: diffIDs },
      history: diffIDs.map(() => ({ created_by: "test" })),
    }));
    const cb = await putBlob(dir, config);
    blobs.push(cb.digest);
    const configDesc: Descriptor = { mediaType: mt.config, ...cb };
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: mt.manifest,
      config: configDesc,
      layers,
    }));
    const mb = await putBlob(dir, manifest);
    blobs.push(mb.digest);
    images.push({
      manifest: { mediaType: mt.manifest, ...mb, platform: p },
      config: configDesc,
      layers,
    });
  }
  let root: Descriptor;
  if (images.length === 1) {
    root = { ...images[0].manifest, annotations: { "org.opencontainers.image.ref.name": tag } };
    delete root.platform;
  } else {
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: mt.index,
      manifests: images.map((i) => i.manifest),
    }));
    const ib = await putBlob(dir, index);
    blobs.push(ib.digest);
    root = { mediaType: mt.index, ...ib, annotations: { "org.opencontainers.image.ref.name": tag } };
  }
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [root] }));
  return { dir, root, images, blobs };
}

// ---------------------------------------------------------------- certificates

export interface Certs {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** A CA and a server certificate for 127.0.0.1/localhost, made with openssl. */
export async function makeCerts(dir: string): Promise<Certs> {
  await mkdir(dir, { recursive: true });
  const p = (f: string): string => join(dir, f);
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "2", "-subj", "/CN=kiln test CA"]);
  await run("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=127.0.0.1"]);
  await writeFile(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n");
  await run("openssl", ["x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial", "-out", p("server.crt"), "-days", "2", "-extfile", p("ext.cnf")]);
  return { dir, caCert: p("ca.crt"), serverCert: p("server.crt"), serverKey: p("server.key") };
}

// ---------------------------------------------------------------- token server

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Every token request seen: method, scopes asked for, the account (or "" when anonymous). */
  requests: Array<{ method: string; scopes: string[]; account: string }>;
  close(): Promise<void>;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString("base64url");
}

/**
 * A loopback token server issuing RS256 JWTs (x5c = a self-signed cert the registry trusts via
 * rootcertbundle). `users` may push and pull; anonymous callers may only pull; a POST with
 * grant_type=refresh_token and a known refresh token acts as that user.
 */
export async function startTokenServer(dir: string, users: Record<string, string>, refreshTokens: Record<string, string> = {}, opts: { postNotFound?: boolean } = {}): Promise<TokenServer> {
  await mkdir(dir, { recursive: true });
  const key = join(dir, "token.key");
  const cert = join(dir, "token.crt");
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=kiln token issuer"]);
  const keyPem = readFileSync(key, "utf8");
  const der = Buffer.from(readFileSync(cert, "utf8").replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  const service = "kiln-test-registry";
  const issuer = "kiln-test-issuer";
  const requests: TokenServer["requests"] = [];

  const issue = (account: string, scopes: string[], canPush: boolean): string => {
    const access = scopes.map((s) => {
      const [type, ...rest] = s.split(":");
      const actions = rest.pop() ?? "";
      const name = rest.join(":");
      const allowed = actions.split(",").filter((a) => a === "pull" || (a === "push" && canPush));
      return { type, name, actions: allowed };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [der.toString("base64")] };
    const claims = { iss: issuer, sub: account, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString("hex"), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign("RSA-SHA256").update(input).sign(keyPem);
    return `${input}.${b64url(sig)}`;
  };

  const reply = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "POST") {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
        const scopes = (form.get("scope") ?? "").split(" ").filter((s) => s);
        requests.push({ method: "POST", scopes, account: "" });
        if (opts.postNotFound) return reply(res, 404, { error: "not found" });
        const user = form.get("grant_type") === "refresh_token" ? refreshTokens[form.get("refresh_token") ?? ""] : undefined;
        if (!user) return reply(res, 401, { error: "invalid_grant" });
        requests[requests.length - 1].account = user;
        reply(res, 200, { access_token: issue(user, scopes, true), expires_in: 300, scope: scopes.join(" ") });
      });
      return;
    }
    const scopes = url.searchParams.getAll("scope");
    let account = "";
    const auth = req.headers.authorization;
    if (auth?.startsWith("Basic ")) {
      const [u, ...p] = Buffer.from(auth.slice(6), "base64").toString("utf8").split(":");
      if (users[u] === undefined || users[u] !== p.join(":")) {
        requests.push({ method: "GET", scopes, account: `!${u}` });
        return reply(res, 401, { errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] });
      }
      account = u;
    }
    requests.push({ method: "GET", scopes, account });
    reply(res, 200, { token: issue(account, scopes, account !== ""), expires_in: 300, issued_at: new Date().toISOString() });
  });
  const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile: cert,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

// ---------------------------------------------------------------- docker-registry

export interface RunningRegistry {
  host: string;
  dir: string;
  logFile: string;
  log(): string;
  /** Access-log lines ("METHOD PATH STATUS") since the registry started. */
  access(): Array<{ method: string; path: string; status: number }>;
  stop(): Promise<void>;
}

export interface RegistrySetup {
  tls?: Certs;
  htpasswd?: { user: string; password: string };
  token?: TokenServer;
}

/** Start /usr/bin/docker-registry on a free loopback port with a config written for `setup`. */
export async function startRegistry(setup: RegistrySetup = {}): Promise<RunningRegistry> {
  const dir = tempDir("kiln-registry-");
  const port = await freePort();
  const lines = [
    "version: 0.1",
    "log:",
    "  level: debug",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(dir, "data")}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
  ];
  if (setup.tls) {
    lines.push("  tls:", `    certificate: ${setup.tls.serverCert}`, `    key: ${setup.tls.serverKey}`);
  }
  if (setup.htpasswd) {
    const { stdout } = await run("htpasswd", ["-Bbn", setup.htpasswd.user, setup.htpasswd.password]);
    await writeFile(join(dir, "htpasswd"), stdout);
    lines.push("auth:", "  htpasswd:", "    realm: kiln-test", `    path: ${join(dir, "htpasswd")}`);
  } else if (setup.token) {
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${setup.token.realm}`,
      `    service: ${setup.token.service}`,
      `    issuer: ${setup.token.issuer}`,
      `    rootcertbundle: ${setup.token.certFile}`,
    );
  }
  const config = join(dir, "config.yml");
  await writeFile(config, `${lines.join("\n")}\n`);
  const logFile = join(dir, "registry.log");
  const fd = openSync(logFile, "a");
  const child: ChildProcess = spawn("/usr/bin/docker-registry", ["serve", config], { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const log = (): string => readFileSync(logFile, "utf8");
  // wait until it listens
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (/listening on/.test(log())) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`docker-registry did not start:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    dir,
    logFile,
    log,
    access: () => {
      const out: Array<{ method: string; path: string; status: number }> = [];
      for (const m of log().matchAll(/^\S+ - \S* \[[^\]]+\] "(\w+) (\S+) HTTP\/[\d.]+" (\d+) /gm)) {
        out.push({ method: m[1], path: m[2], status: Number(m[3]) });
      }
      return out;
    },
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `skopeo inspect` the raw manifest digest of `ref` (docker://...). */
export async function skopeoDigest(ref: string, args: string[]): Promise<string> {
  const { stdout } = await run("skopeo", ["inspect", "--raw", ...args, `docker://${ref}`], { maxBuffer: 16 * 1024 * 1024 });
  return sha256(Buffer.from(stdout));
}

export async function skopeoInspect(ref: string, args: string[]): Promise<{ Digest: string }> {
  const { stdout } = await run("skopeo", ["inspect", ...args, `docker://${ref}`], { maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout) as { Digest: string };
}

export async function readText(path: string): Promise<string> {
  return readFile(path, "utf8");
}
