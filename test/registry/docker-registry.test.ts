// End-to-end against the real docker-registry (distribution 2.8) in three set-ups: plain HTTP,
// htpasswd Basic auth over TLS, and token auth with a JWT token server.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { existsSync, statSync } from "node:fs";
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BlobStore } from "../../src/store/blob-store.js";
import { pullImage } from "../../src/registry/pull.js";
import { pushLayout } from "../../src/registry/push.js";
import { login, logout } from "../../src/registry/login.js";
import type { RegistryOptions } from "../../src/registry/options.js";
import { KilnError } from "../../src/errors.js";
import { parsePlatform } from "../../src/image/platform.js";
import {
  makeCerts, makeLayout, skopeoInspect, startRegistry, startTokenServer, tempDir,
  type RunningRegistry, type TestLayout, type TokenServer,
} from "./harness.js";

const amd64 = parsePlatform("linux/amd64");

interface Setup {
  registry: RunningRegistry;
  options: RegistryOptions;
  skopeoArgs: string[];
  cleanup: string[];
  token?: TokenServer;
}

function uploadPuts(r: RunningRegistry, repo: string): number {
  return r.access().filter((a) => a.method === "PUT" && a.path.startsWith(`/v2/${repo}/blobs/uploads/`) && a.status === 201).length;
}

function blobGets(r: RunningRegistry): number {
  return r.access().filter((a) => a.method === "GET" && /\/blobs\/sha256:/.test(a.path)).length;
}

async function storeFiles(store: BlobStore): Promise<string[]> {
  try {
    return await readdir(store.blobDir);
  } catch {
    return [];
  }
}

/** The checks every set-up runs. */
function exercise(name: string, make: () => Promise<Setup>): void {
  describe(name, () => {
    let s: Setup;
    let layout: TestLayout;
    let storeA: BlobStore;
    let pushed: string;

    beforeAll(async () => {
      s = await make();
      layout = await makeLayout({ layers: 3, layerSize: 300_000 });
      s.cleanup.push(layout.dir);
      const d = tempDir("kiln-storeA-");
      s.cleanup.push(d);
      storeA = new BlobStore(d);
    });

    afterAll(async () => {
      await s?.registry.stop();
      await s?.token?.close();
      for (const d of s?.cleanup ?? []) await rm(d, { recursive: true, force: true });
    });

    it("pushes a layout, and skopeo sees the same digest", async () => {
      const events: string[] = [];
      const res = await pushLayout(layout.dir, "v1", [`${s.registry.host}/proj/app:v1`], {
        ...s.options,
        store: storeA,
        onProgress: (e) => events.push(`${e.state}:${e.digest}`),
      });
      pushed = res.digest;
      expect(res.digest).toBe(layout.root.digest);
      expect(res.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
      // 3 layers + config uploaded, each once
      expect(uploadPuts(s.registry, "proj/app")).toBe(4);
      expect(events.filter((e) => e.startsWith("done:")).length).toBe(4);
      const info = await skopeoInspect(`${s.registry.host}/proj/app:v1`, s.skopeoArgs);
      expect(info.Digest).toBe(res.digest);
    });

    it("pulls it back into a fresh store, and a second pull downloads nothing", async () => {
      const dir = tempDir("kiln-storeB-");
      s.cleanup.push(dir);
      const storeB = new BlobStore(dir);
      const before = blobGets(s.registry);
      const r = await pullImage(`${s.registry.host}/proj/app:v1`, { ...s.options, store: storeB, platform: amd64 });
      expect(r.manifestDescriptor.digest).toBe(pushed);
      expect(r.image.layers.map((l) => l.descriptor.digest)).toEqual(layout.images[0].layers.map((l) => l.digest));
      expect(r.image.layers[0].descriptor.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
      expect(r.image.config.architecture).toBe("amd64");
      for (const l of layout.images[0].layers) expect(await storeB.has(l.digest)).toBe(true);
      expect(blobGets(s.registry) - before).toBe(4);
      const again = await pullImage(`${s.registry.host}/proj/app:v1`, { ...s.options, store: storeB, platform: amd64 });
      expect(again.manifestDescriptor.digest).toBe(pushed);
      expect(blobGets(s.registry) - before).toBe(4);
      // pull "never" answers from the store alone
      const local = await pullImage(`${s.registry.host}/proj/app:v1`, { store: storeB, platform: amd64, pull: "never" });
      expect(local.manifestDescriptor.digest).toBe(pushed);
    });

    it("pushes again without uploading any blob", async () => {
      const before = uploadPuts(s.registry, "proj/app");
      const res = await pushLayout(layout.dir, "v1", [`${s.registry.host}/proj/app:v1`, `${s.registry.host}/proj/app:v1-again`], { ...s.options, store: storeA });
      expect(res.digest).toBe(pushed);
      expect(uploadPuts(s.registry, "proj/app")).toBe(before);
      const info = await skopeoInspect(`${s.registry.host}/proj/app:v1-again`, s.skopeoArgs);
      expect(info.Digest).toBe(pushed);
    });

    it("mounts blobs across repositories instead of uploading them", async () => {
      const res = await pushLayout(layout.dir, undefined, [`${s.registry.host}/other/copy:latest`], { ...s.options, store: storeA });
      expect(res.digest).toBe(pushed);
      expect(uploadPuts(s.registry, "other/copy")).toBe(0);
      const mounts = s.registry.access().filter((a) => a.method === "POST" && a.path.startsWith("/v2/other/copy/blobs/uploads/?") && a.path.includes("mount=") && a.path.includes("from=proj%2Fapp"));
      expect(mounts.length).toBe(4);
      expect(mounts.every((m) => m.status === 201)).toBe(true);
      expect(s.registry.log()).toMatch(/mount/);
      const info = await skopeoInspect(`${s.registry.host}/other/copy:latest`, s.skopeoArgs);
      expect(info.Digest).toBe(pushed);
    });

    it("reports a missing tag in one line and leaves nothing behind", async () => {
      const dir = tempDir("kiln-storeC-");
      s.cleanup.push(dir);
      const store = new BlobStore(dir);
      const err = await pullImage(`${s.registry.host}/proj/app:nope`, { ...s.options, store, platform: amd64 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as Error).message).toMatch(/image .*proj\/app:nope not found/);
      expect((err as Error).message).not.toContain("\n");
      expect(await storeFiles(store)).toEqual([]);
    });
  });
}

exercise("docker-registry over plain HTTP", async () => {
  const registry = await startRegistry();
  return { registry, options: { retry: { baseDelayMs: 10 } }, skopeoArgs: ["--tls-verify=false"], cleanup: [] };
});

const TLS_USER = { user: "kiln", password: "s3cret-pass" };
let tlsShared: { certsDir: string } | undefined;

exercise("docker-registry with htpasswd Basic auth over TLS", async () => {
  const certsDir = tempDir("kiln-certs-");
  tlsShared = { certsDir };
  const certs = await makeCerts(certsDir);
  const registry = await startRegistry({ tls: certs, htpasswd: TLS_USER });
  const cfgDir = tempDir("kiln-dockercfg-");
  const options: RegistryOptions = { caFile: certs.caCert, dockerConfig: cfgDir, retry: { baseDelayMs: 10 } };
  await login(registry.host, TLS_USER.user, TLS_USER.password, options);
  // skopeo wants CA files named *.crt in a directory
  const skopeoCerts = tempDir("kiln-skopeo-certs-");
  await writeFile(join(skopeoCerts, "ca.crt"), await (await import("node:fs/promises")).readFile(certs.caCert));
  return {
    registry,
    options,
    skopeoArgs: ["--cert-dir", skopeoCerts, "--creds", `${TLS_USER.user}:${TLS_USER.password}`],
    cleanup: [certsDir, cfgDir, skopeoCerts],
  };
});

exercise("docker-registry with token auth", async () => {
  const dir = tempDir("kiln-token-");
  const token = await startTokenServer(dir, { kiln: "tok-pass" });
  const registry = await startRegistry({ token });
  const cfgDir = tempDir("kiln-dockercfg-");
  await writeFile(join(cfgDir, "config.json"), JSON.stringify({
    auths: { [`http://${registry.host}`]: { auth: Buffer.from("kiln:tok-pass").toString("base64") } },
  }));
  return {
    registry,
    token,
    options: { dockerConfig: cfgDir, retry: { baseDelayMs: 10 } },
    skopeoArgs: ["--tls-verify=false", "--creds", "kiln:tok-pass"],
    cleanup: [dir, cfgDir],
  };
});

describe("auth details against the real registry", () => {
  it("token auth: push scope first, a pull scope for the mount source, anonymous pull, and a refresh-token POST", async () => {
    const dir = tempDir("kiln-token2-");
    const token = await startTokenServer(dir, { kiln: "pw" }, { "refresh-abc": "kiln" });
    const registry = await startRegistry({ token });
    const cfgDir = tempDir("kiln-dockercfg-");
    const layout = await makeLayout({ layers: 1 });
    try {
      // identity token (refresh token) => OAuth2 POST
      await writeFile(join(cfgDir, "config.json"), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from("<token>:").toString("base64"), identitytoken: "refresh-abc" } } }));
      const storeDir = tempDir("kiln-store-");
      const store = new BlobStore(storeDir);
      const options: RegistryOptions = { dockerConfig: cfgDir, store } as RegistryOptions & { store: BlobStore };
      await pushLayout(layout.dir, "v1", [`${registry.host}/a/one:v1`], { ...options, store });
      expect(token.requests.some((r) => r.method === "POST" && r.scopes[0] === "repository:a/one:pull,push" && r.account === "kiln")).toBe(true);
      await pushLayout(layout.dir, "v1", [`${registry.host}/b/two:v1`], { ...options, store });
      const mountReq = token.requests.find((r) => r.scopes.includes("repository:a/one:pull") && r.scopes[0] === "repository:b/two:pull,push");
      expect(mountReq).toBeDefined();
      expect(registry.access().some((a) => a.path.includes("mount=") && a.status === 201)).toBe(true);
      // anonymous pull: the token server grants pull to anyone
      const anonStore = new BlobStore(tempDir("kiln-anon-"));
      const r = await pullImage(`${registry.host}/b/two:v1`, { dockerConfig: join(cfgDir, "none"), store: anonStore, platform: amd64 });
      expect(r.manifestDescriptor.digest).toBe(layout.root.digest);
      expect(token.requests.some((q) => q.method === "GET" && q.account === "" && q.scopes.includes("repository:b/two:pull"))).toBe(true);
      await rm(anonStore.root, { recursive: true, force: true });
      // anonymous push is refused with one line
      const err = await pushLayout(layout.dir, "v1", [`${registry.host}/c/three:v1`], { dockerConfig: join(cfgDir, "none") }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as Error).message).toMatch(/registry 127\.0\.0\.1:\d+: .*(authentication required|denied)/);
      await rm(storeDir, { recursive: true, force: true });
    } finally {
      await registry.stop();
      await token.close();
      for (const d of [dir, cfgDir, layout.dir]) await rm(d, { recursive: true, force: true });
    }
  });

  it("token server without OAuth2: POST 404 falls back to GET; wrong password is one line", async () => {
    const dir = tempDir("kiln-token3-");
    const token = await startTokenServer(dir, { kiln: "pw" }, {}, { postNotFound: true });
    const registry = await startRegistry({ token });
    const cfgDir = tempDir("kiln-dockercfg-");
    const layout = await makeLayout({ layers: 1 });
    try {
      await writeFile(join(cfgDir, "config.json"), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from("kiln:pw").toString("base64"), identitytoken: "unknown" } } }));
      const res = await pushLayout(layout.dir, "v1", [`${registry.host}/x/y:v1`], { dockerConfig: cfgDir });
      expect(res.digest).toBe(layout.root.digest);
      expect(token.requests.some((r) => r.method === "POST")).toBe(true);
      expect(token.requests.some((r) => r.method === "GET" && r.account === "kiln")).toBe(true);
      await writeFile(join(cfgDir, "config.json"), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from("kiln:wrong").toString("base64") } } }));
      const err = await pushLayout(layout.dir, "v1", [`${registry.host}/x/y:v1`], { dockerConfig: cfgDir }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as Error).message).toMatch(/authentication failed/);
      expect((err as Error).message).not.toContain("\n");
    } finally {
      await registry.stop();
      await token.close();
      for (const d of [dir, cfgDir, layout.dir]) await rm(d, { recursive: true, force: true });
    }
  });

  it("Basic over TLS: login writes config.json 0600, wrong password and untrusted CA fail in one line, logout removes", async () => {
    const certsDir = tempDir("kiln-certs-");
    const certs = await makeCerts(certsDir);
    const registry = await startRegistry({ tls: certs, htpasswd: { user: "u", password: "p" } });
    const cfgDir = tempDir("kiln-dockercfg-");
    try {
      const options: RegistryOptions = { caFile: certs.caCert, dockerConfig: cfgDir };
      const bad = await login(registry.host, "u", "wrong", options).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(KilnError);
      expect((bad as Error).message).toBe(`login to ${registry.host} failed: invalid username or password`);
      expect(existsSync(join(cfgDir, "config.json"))).toBe(false);
      await writeFile(join(cfgDir, "config.json"), JSON.stringify({ auths: { "other.example": { auth: "eDp5" } }, HttpHeaders: { "X-Keep": "1" } }));
      await login(registry.host, "u", "p", options);
      const cfg = JSON.parse(await (await import("node:fs/promises")).readFile(join(cfgDir, "config.json"), "utf8")) as { auths: Record<string, { auth: string }>; HttpHeaders: unknown };
      expect(cfg.auths[registry.host].auth).toBe(Buffer.from("u:p").toString("base64"));
      expect(cfg.auths["other.example"].auth).toBe("eDp5");
      expect(cfg.HttpHeaders).toEqual({ "X-Keep": "1" });
      expect(statSync(join(cfgDir, "config.json")).mode & 0o777).toBe(0o600);
      // without the CA, TLS is not trusted
      const layout = await makeLayout({ layers: 1 });
      const untrusted = await pushLayout(layout.dir, "v1", [`${registry.host}/t/x:v1`], { dockerConfig: cfgDir, retry: { attempts: 1 } }).catch((e: unknown) => e);
      expect(untrusted).toBeInstanceOf(KilnError);
      expect((untrusted as Error).message).toMatch(/TLS certificate not trusted/);
      // with it, the stored credentials work
      const ok = await pushLayout(layout.dir, "v1", [`${registry.host}/t/x:v1`], options);
      expect(ok.digest).toBe(layout.root.digest);
      // the CA may also come from SSL_CERT_FILE
      process.env.SSL_CERT_FILE = certs.caCert;
      try {
        const viaEnv = await pushLayout(layout.dir, "v1", [`${registry.host}/t/x:env`], { dockerConfig: cfgDir });
        expect(viaEnv.digest).toBe(layout.root.digest);
      } finally {
        delete process.env.SSL_CERT_FILE;
      }
      // an explicitly insecure registry is reached over TLS without verification
      const insecure = await pushLayout(layout.dir, "v1", [`${registry.host}/t/x:insecure`], { dockerConfig: cfgDir, insecureRegistries: [registry.host] });
      expect(insecure.digest).toBe(layout.root.digest);
      await logout(registry.host, options);
      const after = JSON.parse(await (await import("node:fs/promises")).readFile(join(cfgDir, "config.json"), "utf8")) as { auths: Record<string, unknown> };
      expect(after.auths[registry.host]).toBeUndefined();
      expect(after.auths["other.example"]).toBeDefined();
      const denied = await pushLayout(layout.dir, "v1", [`${registry.host}/t/x:v2`], options).catch((e: unknown) => e);
      expect((denied as Error).message).toMatch(/authentication required/);
      await rm(layout.dir, { recursive: true, force: true });
    } finally {
      await registry.stop();
      for (const d of [certsDir, cfgDir]) await rm(d, { recursive: true, force: true });
    }
  });

  it("multi-platform index: pushes index and manifests, pulls the right platform, unsupported platform is one line", async () => {
    const registry = await startRegistry();
    const layout = await makeLayout({ layers: 1, platforms: [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "arm64", variant: "v8" }] });
    const storeDir = tempDir("kiln-store-");
    try {
      const res = await pushLayout(layout.dir, "v1", [`${registry.host}/multi/app:v1`], {});
      expect(res.digest).toBe(layout.root.digest);
      expect(res.mediaType).toBe("application/vnd.oci.image.index.v1+json");
      const store = new BlobStore(storeDir);
      const r = await pullImage(`${registry.host}/multi/app:v1`, { store, platform: parsePlatform("linux/aarch64") });
      expect(r.manifestDescriptor.digest).toBe(layout.images[1].manifest.digest);
      expect(r.image.config.architecture).toBe("arm64");
      const err = await pullImage(`${registry.host}/multi/app:v1`, { store, platform: parsePlatform("linux/s390x") }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as Error).message).toBe(`image 127.0.0.1:${registry.host.split(":")[1]}/multi/app:v1: no image for platform linux/s390x (available: linux/amd64, linux/arm64)`);
      // by digest too
      const byDigest = await pullImage(`${registry.host}/multi/app@${layout.images[0].manifest.digest}`, { store, platform: parsePlatform("linux/amd64") });
      expect(byDigest.image.config.architecture).toBe("amd64");
    } finally {
      await registry.stop();
      await rm(storeDir, { recursive: true, force: true });
      await rm(layout.dir, { recursive: true, force: true });
    }
  });
});

describe("Docker schema2 images", () => {
  it("pushes and pulls a Docker manifest list, keeping Docker media types", async () => {
    const registry = await startRegistry();
    const layout = await makeLayout({ docker: true, layers: 2, platforms: [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "arm", variant: "v7" }] });
    const storeDir = tempDir("kiln-store-");
    try {
      const res = await pushLayout(layout.dir, "v1", [`${registry.host}/docker/app:v1`], {});
      expect(res).toEqual({ digest: layout.root.digest, size: layout.root.size, mediaType: "application/vnd.docker.distribution.manifest.list.v2+json" });
      const info = await skopeoInspect(`${registry.host}/docker/app:v1`, ["--tls-verify=false", "--override-arch", "arm", "--override-variant", "v7"]);
      expect(info.Digest).toBe(res.digest);
      const store = new BlobStore(storeDir);
      const r = await pullImage(`${registry.host}/docker/app:v1`, { store, platform: parsePlatform("linux/armhf") });
      expect(r.manifestDescriptor).toEqual({ mediaType: "application/vnd.docker.distribution.manifest.v2+json", digest: layout.images[1].manifest.digest, size: layout.images[1].manifest.size });
      expect(r.image.layers.every((l) => l.descriptor.mediaType === "application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe(true);
      expect(r.image.config.variant).toBe("v7");
    } finally {
      await registry.stop();
      await rm(storeDir, { recursive: true, force: true });
      await rm(layout.dir, { recursive: true, force: true });
    }
  });
});

void tlsShared;
