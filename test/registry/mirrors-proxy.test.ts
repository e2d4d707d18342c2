// Pull mirrors and proxies (src/registry/mirrors.ts, transport.ts): two docker-registry
// instances on loopback (a mirror that has an image serves it; one that lacks it hands over to the
// origin), kaniko's --registry-mirror for docker.io names, a registries.conf and a buildkitd.toml,
// credentials never sent to a mirror (a recording fake mirror), and HTTP(S)_PROXY / NO_PROXY
// honoured by registry traffic and ADD <url> (a tiny CONNECT proxy here counts the tunnels).
import { createServer as createHttpServer, type IncomingHttpHeaders } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseRegistriesConf, pullEndpoints } from "../../src/registry/mirrors.js";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { startRegistry, type LocalRegistry } from "../helpers/registry.js";
import { serveFiles } from "../helpers/http.js";
import { makeCerts } from "./harness.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
let origin: LocalRegistry;
let mirror: LocalRegistry;

beforeAll(async () => {
  [origin, mirror] = await Promise.all([startRegistry(), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([origin?.stop(), mirror?.stop()]);
  await temps.cleanup();
});

/** Push a one-file image (FROM scratch, /which holding `text`) to REF; returns its digest. */
async function pushImage(ref: string, text: string): Promise<string> {
  const ctx = await temps.make("kiln-mirror-ctx-");
  await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY which /which\n");
  await writeFile(join(ctx, "which"), text);
  const cache = await temps.make("kiln-mirror-push-");
  return expectBuilt(await kiln(["build", "-q", "--cache-dir", cache, "-o", `type=registry,name=${ref}`, ctx]));
}

/** Build `FROM base` + `RUN`-free COPY of /which into a local tree and return /which's text. */
async function buildFrom(from: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; which?: string; stderr: string }> {
  const ctx = await temps.make("kiln-mirror-from-");
  await writeFile(join(ctx, "Dockerfile"), `FROM ${from}\n`);
  const cache = await temps.make("kiln-mirror-cache-");
  const out = join(cache, "fs");
  const r = await kiln(["build", "-q", "--cache-dir", cache, "-o", `type=local,dest=${out}`, ...args, ctx], { env });
  if (r.code !== 0) return { code: r.code, stderr: r.stderr };
  const { readFile } = await import("node:fs/promises");
  return { code: 0, which: await readFile(join(out, "which"), "utf8"), stderr: r.stderr };
}

function manifestGets(reg: LocalRegistry, repo: string): Array<{ status: number }> {
  return reg.access().filter((a) => a.method === "GET" && a.path.startsWith(`/v2/${repo}/manifests/`));
}

async function conf(text: string): Promise<string> {
  const dir = await temps.make("kiln-mirror-conf-");
  const file = join(dir, "registries.conf");
  await writeFile(file, text);
  return file;
}

describe("registry mirrors", () => {
  it("registries.conf: a mirror that has the image serves it; one that lacks it hands over to the origin", async () => {
    await pushImage(`${origin.host}/team/both:1`, "from the origin");
    await pushImage(`${mirror.host}/team/both:1`, "from the mirror");
    await pushImage(`${origin.host}/team/only-origin:1`, "only the origin has it");
    const file = await conf(`# podman's format\n[[registry]]\nlocation = "${origin.host}"\n\n[[registry.mirror]]\nlocation = "${mirror.host}"\ninsecure = true\n`);
    const both = await buildFrom(`${origin.host}/team/both:1`, ["--registries-conf", file]);
    expect(both.which, both.stderr).toBe("from the mirror");
    const only = await buildFrom(`${origin.host}/team/only-origin:1`, ["--registries-conf", file]);
    expect(only.which, only.stderr).toBe("only the origin has it");
    expect(manifestGets(mirror, "team/only-origin").map((a) => a.status)).toContain(404);
    expect(manifestGets(origin, "team/only-origin").map((a) => a.status)).toContain(200);
    // without the file, the origin's own image
    expect((await buildFrom(`${origin.host}/team/both:1`, [])).which).toBe("from the origin");
    // CONTAINERS_REGISTRIES_CONF, as podman reads it
    expect((await buildFrom(`${origin.host}/team/both:1`, [], { CONTAINERS_REGISTRIES_CONF: file })).which).toBe("from the mirror");
  });

  it("--registry-mirror (kaniko) stands in for docker.io, with a path prefix; a dead mirror hands over to the next", async () => {
    await pushImage(`${mirror.host}/library/hubimage:1`, "docker.io's, from the mirror");
    await pushImage(`${mirror.host}/hub/library/hubimage:1`, "docker.io's, under a prefix");
    const dead = `127.0.0.1:${await closedPort()}`;
    expect((await buildFrom("hubimage:1", ["--registry-mirror", dead, "--registry-mirror", mirror.host])).which).toBe("docker.io's, from the mirror");
    expect((await buildFrom("docker.io/library/hubimage:1", ["--registry-mirror", `${mirror.host}/hub`])).which).toBe("docker.io's, under a prefix");
    // kiln pull takes it too
    const cache = await temps.make();
    const r = await kiln(["pull", "-q", "--cache-dir", cache, "--registry-mirror", mirror.host, "hubimage:1"]);
    expect(r.code, r.stderr).toBe(0);
    expect((await kiln(["images", "--cache-dir", cache])).stdout).toContain("hubimage");
  });

  it("buildkitd.toml's [registry.\"HOST\"] mirrors = [...] is read too; malformed files name their line", async () => {
    await pushImage(`${mirror.host}/library/tomlimage:1`, "docker.io's, through buildkitd.toml");
    const file = await conf(`[registry."docker.io"]\n  mirrors = ["${mirror.host}"]\n  http = true\n`);
    expect((await buildFrom("tomlimage:1", ["--registries-conf", file])).which).toBe("docker.io's, through buildkitd.toml");
    expect(parseRegistriesConf(`[registry."docker.io"]\nmirrors = [\n  "a.example:5000",  # first\n  "b.example/hub",\n]\n`, "b.toml")).toEqual({
      "docker.io": [{ location: "a.example:5000" }, { location: "b.example/hub" }],
    });
    expect(pullEndpoints("docker.io", "library/x", { "docker.io": [{ location: "b.example/hub" }] })).toEqual([
      { registry: "b.example", repository: "hub/library/x", insecure: false, mirror: true },
      { registry: "docker.io", repository: "library/x", insecure: false, mirror: false },
    ]);
    expect(() => parseRegistriesConf(`[[registry]]\nlocation = "x"\n[[registry.mirror]]\nlocation = what\n`, "r.conf")).toThrow(/^r\.conf:4: unsupported value what/);
    // a rewrite is refused by name and a blocked registry refused, for those registries' pulls only:
    // never pulled from the prefix's host anyway, and no other registry's pull is affected
    const both = parseRegistriesConf(`[[registry]]\nprefix = "docker.io"\nlocation = "rewrite.example"\n[[registry]]\nlocation = "bad.example"\nblocked = true\n[[registry]]\nlocation = "quay.io"\n[[registry.mirror]]\nlocation = "q.example"\n`, "r.conf");
    expect(() => pullEndpoints("docker.io", "library/alpine", both)).toThrow(/^r\.conf: \[\[registry\]\] prefix = "docker.io" with location = "rewrite.example" \(a rewrite\) is not supported/);
    expect(() => pullEndpoints("bad.example", "app", both)).toThrow(expect.objectContaining({ code: "REGISTRY_BLOCKED", message: "pulls from bad.example are blocked by r.conf ([[registry]] blocked = true)" }));
    expect(pullEndpoints("quay.io", "app", both).map((e) => e.registry)).toEqual(["q.example", "quay.io"]);
    expect(pullEndpoints("ghcr.io", "app", both).map((e) => e.registry)).toEqual(["ghcr.io"]);
    expect(parseRegistriesConf(`[[registry]]\nprefix = "docker.io"\nlocation = "registry-1.docker.io"\n[[registry.mirror]]\nlocation = "m.example"\n`, "r.conf")).toEqual({ "docker.io": [{ location: "m.example" }] });
    const bad = await kiln(["build", "--registries-conf", "/nonexistent/registries.conf", "-o", "type=oci,dest=/tmp/x", "."]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cannot read registries config \/nonexistent\/registries.conf: ENOENT/);
  });

  it("credentials go only to the host they belong to: a mirror never sees the origin's", async () => {
    const certs = await makeCerts(await temps.make());
    const secured = await startRegistry({ tls: certs, htpasswd: { user: "ci", password: "s3cret" } });
    const fake = await recordingMirror();
    try {
      const dockerConfig = await temps.make();
      await writeFile(join(dockerConfig, "config.json"), JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from("ci:s3cret").toString("base64") } } }));
      const env = { DOCKER_CONFIG: dockerConfig, XDG_RUNTIME_DIR: await temps.make() };
      const ctx = await temps.make();
      await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY which /which\n");
      await writeFile(join(ctx, "which"), "private");
      expectBuilt(await kiln(["build", "-q", "--cache-dir", await temps.make(), "--registry-ca", certs.caCert, "-o", `type=registry,name=${secured.host}/p/app:1`, ctx], { env }));
      const file = await conf(`[[registry]]\nlocation = "${secured.host}"\n[[registry.mirror]]\nlocation = "${fake.host}"\n`);
      const r = await buildFrom(`${secured.host}/p/app:1`, ["--registries-conf", file, "--registry-ca", certs.caCert], env);
      expect(r.which, r.stderr).toBe("private");
      expect(fake.requests.some((q) => q.url.startsWith("/v2/p/app/manifests/"))).toBe(true);
      expect(fake.requests.filter((q) => q.headers.authorization !== undefined)).toEqual([]);
    } finally {
      await fake.close();
      await secured.stop();
    }
  });
});

describe("proxies", () => {
  it("HTTP_PROXY/HTTPS_PROXY carry registry pulls and ADD <url> through a CONNECT proxy; NO_PROXY bypasses it", async () => {
    const proxy = await connectProxy();
    const files = await serveFiles({ "/payload.txt": { body: "through the proxy\n" } });
    try {
      await pushImage(`${origin.host}/team/proxied:1`, "proxied image");
      const env = { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: "" };
      const pulled = await buildFrom(`${origin.host}/team/proxied:1`, [], env);
      expect(pulled.which, pulled.stderr).toBe("proxied image");
      expect(proxy.tunnels.filter((t) => t === origin.host).length).toBeGreaterThan(0);

      // ADD <url>
      const ctx = await temps.make();
      await writeFile(join(ctx, "Dockerfile"), `FROM scratch\nADD ${files.url}/payload.txt /payload.txt\n`);
      const before = proxy.tunnels.length;
      expectBuilt(await kiln(["build", "-q", "--cache-dir", await temps.make(), "-o", `type=oci,dest=${join(await temps.make(), "o")}`, ctx], { env }));
      expect(proxy.tunnels.slice(before)).toContain(files.url.slice("http://".length));

      // NO_PROXY names the origin: no tunnel for it
      const count = proxy.tunnels.length;
      const direct = await buildFrom(`${origin.host}/team/proxied:1`, [], { ...env, NO_PROXY: "127.0.0.1" });
      expect(direct.which).toBe("proxied image");
      expect(proxy.tunnels.length).toBe(count);
    } finally {
      await files.close();
      await proxy.close();
    }
  });
});

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createHttpServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** A fake mirror that answers /v2/ with 200 and everything else with 404, recording each request's headers. */
async function recordingMirror(): Promise<{ host: string; requests: Array<{ url: string; headers: IncomingHttpHeaders }>; close(): Promise<void> }> {
  const requests: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  const server = createHttpServer((req, res) => {
    requests.push({ url: req.url ?? "", headers: req.headers });
    if (req.url === "/v2/") {
      res.writeHead(200, { "content-type": "application/json", "docker-distribution-api-version": "registry/2.0" });
      res.end("{}");
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { host: `127.0.0.1:${port}`, requests, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A minimal HTTP CONNECT proxy on loopback: records each tunnel's target (host:port) and pipes bytes both ways. */
async function connectProxy(): Promise<{ url: string; tunnels: string[]; close(): Promise<void> }> {
  const tunnels: string[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer((_req, res) => {
    res.writeHead(405);
    res.end();
  });
  server.on("connect", (req, client: Socket, head: Buffer) => {
    const target = req.url ?? "";
    tunnels.push(target);
    const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
    const upstream = connect(port, host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tunnels,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

