// The SBOM of an image kept by its layers (src/attest/sbom-cache.ts) through attestImage: a warm
// attestation opens no layer blob (in the same process, and from the store's entry in another),
// says the scan's warnings again, writes the same statement bytes as the uncached path, and a
// changed layer (a new blob) gives a new SBOM.
import { afterAll, describe, expect, it } from "vitest";
import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { attestImage, type AttestInput } from "../../src/attest/attest.js";
import { findPackages } from "../../src/attest/packages.js";
import { SPDX_PREDICATE, spdxDocument, spdxPackagesJSON, spdxStatementJSON } from "../../src/attest/spdx.js";
import { imageSubjects, statement } from "../../src/attest/statement.js";
import type { Image } from "../../src/image/image.js";
import type { Descriptor, Manifest } from "../../src/image/oci.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { makeTar } from "../snapshot/helpers.js";

const roots: string[] = [];
afterAll(async () => {
  await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
});

/** A store that counts the blobs opened (what a scan streams). */
class CountingStore extends BlobStore {
  opened = 0;
  override open(digest: `sha256:${string}`): Readable {
    this.opened++;
    return super.open(digest);
  }
}

async function newStore(): Promise<CountingStore> {
  const root = await mkdtemp(join(tmpdir(), "kiln-sbom-cache-"));
  roots.push(root);
  return new CountingStore(root);
}

async function layer(store: BlobStore, files: Record<string, string>): Promise<Descriptor> {
  const blob = makeTar(Object.entries(files).map(([name, content]) => ({ name, content: Buffer.from(content) })));
  const info = await store.ingest(Readable.from([blob]));
  return { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: info.digest, size: info.size };
}

const npm = (name: string, version: string): string => JSON.stringify({ name, version, license: "MIT" });

function input(store: BlobStore, layers: Descriptor[], warnings: string[] = []): AttestInput {
  return {
    request: { sbom: true },
    store,
    image: { layers: layers.map((descriptor) => ({ descriptor })) } as unknown as Image,
    manifest: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${"12".repeat(32)}`, size: 100 },
    platform: { os: "linux", architecture: "amd64" },
    names: ["example.com/app:1"],
    provenance: { dockerfile: { path: "Dockerfile", sha256: "ab".repeat(32) }, buildArgs: {}, dependencies: [], steps: [], version: "9.9.9", startedOn: new Date(0), invocationId: "i" },
    sourceDateEpoch: 1700000000,
    onWarning: (w) => warnings.push(w),
  };
}

/** The SBOM statement's JSON text of an attestation made from `i`. */
async function sbomText(i: AttestInput): Promise<string> {
  const stored = await attestImage(i);
  const m = await i.store.readJSON<Manifest>(stored.manifest.digest);
  return (await i.store.readBytes(m.layers[0]!.digest)).toString("utf8");
}

const packagesOf = (text: string): string[] => (JSON.parse(text).predicate.packages as Array<{ name: string; versionInfo: string }>).map((p) => `${p.name}@${p.versionInfo}`);

describe("the image SBOM cache", () => {
  it("scans an image once: a warm attestation opens no layer, here and from the store's entry in a fresh process's view, and says the warnings again", async () => {
    const store = await newStore();
    const layers = [
      await layer(store, { "var/lib/rpm/Packages": "berkeley", "app/node_modules/a/package.json": npm("a", "1.0.0") }),
      await layer(store, { "app/node_modules/b/package.json": npm("b", "2.0.0") }),
    ];
    const warned: string[] = [];
    const first = await sbomText(input(store, layers, warned));
    expect(packagesOf(first)).toEqual(["a@1.0.0", "b@2.0.0"]);
    expect(store.opened).toBe(2);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain("BerkeleyDB");

    const again: string[] = [];
    expect(await sbomText(input(store, layers, again))).toBe(first);
    expect(store.opened).toBe(2);
    expect(again).toEqual(warned);

    // another store root holding only the entries (no layer blobs): the entry alone answers
    const copy = await newStore();
    await cp(join(store.root, "sbom-scan"), join(copy.root, "sbom-scan"), { recursive: true });
    const fromDisk: string[] = [];
    expect(await sbomText(input(copy, layers, fromDisk))).toBe(first);
    expect(copy.opened).toBe(0);
    expect(fromDisk).toEqual(warned);
  });

  it("attesting the same image again reads neither the findings nor the statement (the stored blob is remembered); a blob gone is made again", async () => {
    const store = await newStore();
    const layers = [await layer(store, { "var/lib/rpm/Packages": "berkeley", "app/node_modules/a/package.json": npm("a", "1.0.0") })];
    const warned: string[] = [];
    const first = await attestImage(input(store, layers, warned));
    const sbomLayer = (await store.readJSON<Manifest>(first.manifest.digest)).layers[0]!;
    const scanDir = join(store.root, "sbom-scan");
    const entries = (await readdir(scanDir)).filter((n) => n.startsWith("image-v1-"));
    expect(entries.filter((n) => n.endsWith(".txt"))).toHaveLength(1);
    expect(entries.filter((n) => /\.statement-[0-9a-f]{32}\.json$/.test(n))).toHaveLength(1);
    // the findings' entry gone: the remembered statement still answers, warnings included
    await rm(join(scanDir, entries.find((n) => n.endsWith(".txt"))!));
    const again: string[] = [];
    const second = await attestImage(input(store, layers, again));
    expect(second.manifest.digest).toBe(first.manifest.digest);
    expect(store.opened).toBe(1);
    expect(again).toEqual(warned);
    // the statement's blob gone (a prune): made again from the findings (this process's memory of them), the same bytes
    await rm(store.path(sbomLayer.digest));
    const third = await attestImage(input(store, layers, []));
    expect(third.manifest.digest).toBe(first.manifest.digest);
    expect(await store.has(sbomLayer.digest)).toBe(true);
  });

  it("gives a changed layer (a new blob) a new SBOM, and keeps the old image's for its layers", async () => {
    const store = await newStore();
    const base = await layer(store, { "app/node_modules/a/package.json": npm("a", "1.0.0") });
    const v1 = await layer(store, { "app/node_modules/b/package.json": npm("b", "1.0.0") });
    const v2 = await layer(store, { "app/node_modules/b/package.json": npm("b", "1.0.1") });
    expect(packagesOf(await sbomText(input(store, [base, v1])))).toEqual(["a@1.0.0", "b@1.0.0"]);
    expect(packagesOf(await sbomText(input(store, [base, v2])))).toEqual(["a@1.0.0", "b@1.0.1"]);
    expect(packagesOf(await sbomText(input(store, [base])))).toEqual(["a@1.0.0"]);
    expect(packagesOf(await sbomText(input(store, [base, v1])))).toEqual(["a@1.0.0", "b@1.0.0"]);
  });

  it("spdxStatementJSON writes the bytes JSON.stringify writes for the whole statement", () => {
    const files = new Map([
      ["var/lib/dpkg/status", Buffer.from("Package: pü€\nStatus: install ok installed\nVersion: 1\"q\nArchitecture: amd64\n\n")],
      ["app/node_modules/@s/x/package.json", Buffer.from(npm("@s/x", "3.0.0"))],
    ]);
    const found = findPackages(files);
    const subjects = imageSubjects(`sha256:${"34".repeat(32)}`, ['we"ird/name:"packages":[]'], "linux/arm64");
    const head = { name: 'n "packages":[],"relationships":[]}}', namespace: "https://kiln.dev/spdx/x", created: new Date(1700000000000), toolVersion: "1" };
    expect(Buffer.concat(spdxStatementJSON(subjects, head, spdxPackagesJSON(found))).toString("utf8")).toBe(JSON.stringify(statement(subjects, SPDX_PREDICATE, spdxDocument({ ...head, packages: found }))));
    expect(Buffer.concat(spdxStatementJSON(subjects, head, spdxPackagesJSON([]))).toString("utf8")).toBe(JSON.stringify(statement(subjects, SPDX_PREDICATE, spdxDocument({ ...head, packages: [] }))));
  });
});
