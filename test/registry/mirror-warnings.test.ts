// A pull that falls back from a failing mirror says so: one warning per failed mirror and pull
// ("mirror HOST failed for REPO (REASON); using the next mirror|the origin HOST"), on `kiln pull`'s
// stderr and as the library's warning events (pullImage's onWarning, a build's "warning" events).
// Loopback servers: the real docker-registry as the origin and a working mirror; the fault-injecting
// fake as failing mirrors (503s, a 404 for the manifest, a 401 refusing the credentials given, a
// proxy of the origin whose every blob fails), and a closed port. The reasons never carry a URL or
// a credential.
import { writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build } from "../../src/engine/build.js";
import type { BuildEvent } from "../../src/engine/events.js";
import { pullImage } from "../../src/registry/pull.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { startRegistry, type LocalRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";
import { startFakeRegistry, type FakeRegistry } from "./fake-registry.js";

const temps = new TempDirs();
let origin: LocalRegistry;
let good: LocalRegistry;
const fakes: FakeRegistry[] = [];
const REPO = "team/warned";
let ref: string;

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function fake(hook: Parameters<typeof startFakeRegistry>[0]): Promise<FakeRegistry> {
  const f = await startFakeRegistry(hook);
  fakes.push(f);
  return f;
}

/** A registries.conf naming `mirrors` (in order) for the origin. */
async function conf(mirrors: string[]): Promise<string> {
  const file = join(await temps.make("kiln-mirror-warn-conf-"), "registries.conf");
  await writeFile(file, `[[registry]]\nlocation = "${origin.host}"\n${mirrors.map((m) => `[[registry.mirror]]\nlocation = "${m}"\n`).join("")}`);
  return file;
}

function warnings(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith("WARNING: ")).map((l) => l.slice("WARNING: ".length));
}

beforeAll(async () => {
  [origin, good] = await Promise.all([startRegistry(), startRegistry()]);
  const ctx = await temps.make("kiln-mirror-warn-ctx-");
  await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY a /a\nCOPY b /b\nCOPY c /c\n");
  for (const f of ["a", "b", "c"]) await writeFile(join(ctx, f), `file ${f}\n`);
  ref = `${origin.host}/${REPO}:1`;
  for (const host of [origin.host, good.host]) {
    expectBuilt(await kiln(["build", "-q", "--cache-dir", await temps.make(), "-o", `type=registry,name=${host}/${REPO}:1`, ctx]));
  }
}, 120_000);
afterAll(async () => {
  await Promise.all([origin?.stop(), good?.stop(), ...fakes.map((f) => f.close())]);
  await temps.cleanup();
});

describe("mirror fallback warnings", () => {
  it("kiln pull: one line per failed mirror (network error, 5xx, 404 manifest, auth refused, failing blobs), no credentials", async () => {
    const dead = `127.0.0.1:${await closedPort()}`;
    const unavailable = await fake({ hook: (_req, res) => (res.writeHead(503).end(), true) });
    const empty = await fake({}); // has no such manifest: 404 MANIFEST_UNKNOWN
    const locked = await fake({ basic: { user: "ci", password: "right-password" } });
    // serves the origin's manifests, fails every blob
    const blobless = await fake({
      hook: async (req, res, n) => {
        if (n.path.includes("/blobs/")) return (res.writeHead(500).end(), true);
        if (!n.path.includes("/manifests/")) return false;
        const r = await fetch(`http://${origin.host}${n.path}`, { headers: { accept: String(req.headers.accept ?? "") } });
        res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/json" });
        res.end(Buffer.from(await r.arrayBuffer()));
        return true;
      },
    });
    const dockerConfig = await temps.make("kiln-mirror-warn-auth-");
    const secret = Buffer.from("ci:wrong-s3cret").toString("base64");
    await writeFile(join(dockerConfig, "config.json"), JSON.stringify({ auths: { [locked.host]: { auth: secret } } }));
    const file = await conf([dead, unavailable.host, empty.host, locked.host, blobless.host]);
    const r = await kiln(["pull", "-q", "--cache-dir", await temps.make(), "--registries-conf", file, ref], { env: { DOCKER_CONFIG: dockerConfig } });
    expect(r.code, r.stderr).toBe(0);
    expect(warnings(r.stderr)).toEqual([
      `mirror ${dead} failed for ${REPO} (unreachable: ECONNREFUSED); using the next mirror ${unavailable.host}`,
      `mirror ${unavailable.host} failed for ${REPO} (HTTP 503); using the next mirror ${empty.host}`,
      `mirror ${empty.host} failed for ${REPO} (HTTP 404 MANIFEST_UNKNOWN); using the next mirror ${locked.host}`,
      `mirror ${locked.host} failed for ${REPO} (HTTP 401 UNAUTHORIZED: access denied); using the next mirror ${blobless.host}`,
      `mirror ${blobless.host} failed for ${REPO} (HTTP 500); using the origin ${origin.host}`,
    ]);
    expect(r.stderr).not.toMatch(/s3cret|right-password/);
    expect(r.stderr).not.toContain(secret);
    // the blob-failing mirror was asked for blobs more than once (several layers), warned about once
    expect(blobless.requests.filter((q) => q.path.includes("/blobs/")).length).toBeGreaterThan(1);
  });

  it("the library: pullImage's onWarning and a build's warning events; a working mirror warns nothing", async () => {
    const empty = await fake({});
    const got: string[] = [];
    const store = new BlobStore(await temps.make("kiln-mirror-warn-store-"));
    const mirrors = { [origin.host]: [{ location: empty.host }] };
    await pullImage(ref, { store, platform: { os: "linux", architecture: "amd64" }, mirrors, onWarning: (m) => got.push(m) });
    expect(got).toEqual([`mirror ${empty.host} failed for ${REPO} (HTTP 404 MANIFEST_UNKNOWN); using the origin ${origin.host}`]);

    const ctx = await temps.make("kiln-mirror-warn-from-");
    await writeFile(join(ctx, "Dockerfile"), `FROM ${ref}\n`);
    const events = async (mirrorHost: string): Promise<string[]> => {
      const seen: BuildEvent[] = [];
      await build({
        context: ctx,
        cacheDir: await temps.make("kiln-mirror-warn-cache-"),
        outputs: [{ type: "oci", dest: join(await temps.make(), "out") }],
        registriesConf: await conf([mirrorHost]),
        onEvent: (e) => seen.push(e),
      });
      return seen.flatMap((e) => (e.type === "warning" ? [e.message] : []));
    };
    expect(await events(empty.host)).toEqual([`mirror ${empty.host} failed for ${REPO} (HTTP 404 MANIFEST_UNKNOWN); using the origin ${origin.host}`]);
    expect(await events(good.host)).toEqual([]);

    const quiet: string[] = [];
    await pullImage(ref, { store: new BlobStore(await temps.make()), platform: { os: "linux", architecture: "amd64" }, mirrors: { [origin.host]: [{ location: good.host }] }, onWarning: (m) => quiet.push(m) });
    expect(quiet).toEqual([]);
    const r = await kiln(["pull", "--cache-dir", await temps.make(), "--registries-conf", await conf([good.host]), ref]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("WARNING");
    expect(good.access().filter((a) => a.method === "GET" && a.path.startsWith(`/v2/${REPO}/manifests/`)).length).toBeGreaterThan(0);
  });
});
