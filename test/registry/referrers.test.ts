// OCI 1.1 referrers pushed by kiln (registry/referrers.ts) against the in-process fake registry:
// without the referrers API, the sha256-<hex> tag's index keeps what other tools put there and
// gains kiln's artifacts (a second push adds nothing twice); a tag that is not an OCI index is
// refused, not overwritten; with the API, no tag is written.
import { afterEach, describe, expect, it } from "vitest";
import { rm } from "node:fs/promises";
import { referrerArtifacts } from "../../src/attest/referrers.js";
import { storeAttestations } from "../../src/attest/store.js";
import { statement } from "../../src/attest/statement.js";
import { storeBlobs } from "../../src/image/source.js";
import { pushReferrers, referrersTag } from "../../src/registry/referrers.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { startFakeRegistry, type FakeRegistry } from "./fake-registry.js";
import { tempDir } from "./harness.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function fixture(opts: { referrers?: boolean } = {}): Promise<{ reg: FakeRegistry; store: BlobStore; subject: string; artifacts: Awaited<ReturnType<typeof referrerArtifacts>> }> {
  const reg = await startFakeRegistry(opts);
  const dir = tempDir("kiln-referrers-");
  cleanups.push(() => reg.close(), () => rm(dir, { recursive: true, force: true }));
  const store = new BlobStore(dir);
  const image = await store.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: {}, layers: [] }));
  const subject = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: image.digest, size: image.size };
  const sub = [{ name: "_", digest: { sha256: image.digest.slice(7) } }];
  const stored = await storeAttestations(store, subject, [statement(sub, "https://slsa.dev/provenance/v1", { a: 1 }), statement(sub, "https://spdx.dev/Document", { b: 2 })]);
  return { reg, store, subject: image.digest, artifacts: await referrerArtifacts(store, [stored]) };
}

const json = (b: Buffer): any => JSON.parse(b.toString("utf8"));

describe("pushReferrers", () => {
  it("merges into the referrers tag's index, keeping other tools' entries, once per artifact", async () => {
    const { reg, store, subject, artifacts } = await fixture();
    const tag = referrersTag(subject as `sha256:${string}`);
    expect(tag).toBe(`sha256-${subject.slice(7)}`);
    const foreign = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${"ef".repeat(32)}`, size: 10, artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json" };
    reg.manifests.set(`kiln/app:${tag}`, { bytes: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [foreign] })), mediaType: "application/vnd.oci.image.index.v1+json" });
    const ref = `${reg.host}/kiln/app:1`;
    expect(await pushReferrers(storeBlobs(store), artifacts, ref)).toEqual({ api: false, tags: [tag] });
    await pushReferrers(storeBlobs(store), artifacts, ref); // again: nothing added twice
    const index = json(reg.manifests.get(`kiln/app:${tag}`)!.bytes);
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.manifests.map((d: any) => d.digest)).toEqual([foreign.digest, ...artifacts.map((a) => a.descriptor.digest)]);
    expect(index.manifests.slice(1).map((d: any) => [d.artifactType, d.annotations["in-toto.io/predicate-type"]])).toEqual([
      ["application/vnd.in-toto+json", "https://slsa.dev/provenance/v1"],
      ["application/vnd.in-toto+json", "https://spdx.dev/Document"],
    ]);
    // each artifact: its subject the image, its one layer the statement, the empty config
    for (const a of artifacts) {
      const m = json(reg.manifests.get(`kiln/app:${a.descriptor.digest}`)!.bytes);
      expect(m.subject.digest).toBe(subject);
      expect(m.config).toEqual({ mediaType: "application/vnd.oci.empty.v1+json", digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", size: 2 });
      expect(reg.blobs.has(m.layers[0].digest)).toBe(true);
    }
  });

  it("keeps one tag per image when several platforms are attested", async () => {
    const { reg, store, subject, artifacts } = await fixture();
    const other = await store.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: {}, layers: [{}] }));
    const otherSubject = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: other.digest, size: other.size };
    const stored = await storeAttestations(store, otherSubject, [statement([{ name: "_", digest: { sha256: other.digest.slice(7) } }], "https://slsa.dev/provenance/v1", { c: 3 })]);
    const more = await referrerArtifacts(store, [stored]);
    const r = await pushReferrers(storeBlobs(store), [...artifacts, ...more], `${reg.host}/kiln/app:1`);
    expect(r.tags).toEqual([referrersTag(subject as `sha256:${string}`), referrersTag(other.digest)]);
    expect(json(reg.manifests.get(`kiln/app:${referrersTag(other.digest)}`)!.bytes).manifests.map((d: any) => d.digest)).toEqual(more.map((a) => a.descriptor.digest));
    expect(json(reg.manifests.get(`kiln/app:${referrersTag(subject as `sha256:${string}`)}`)!.bytes).manifests).toHaveLength(2);
  });

  it("refuses a referrers tag that is not an OCI index, leaving it as it was", async () => {
    const { reg, store, subject, artifacts } = await fixture();
    const tag = referrersTag(subject as `sha256:${string}`);
    const other = { bytes: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: {}, layers: [] })), mediaType: "application/vnd.oci.image.manifest.v1+json" };
    reg.manifests.set(`kiln/app:${tag}`, other);
    await expect(pushReferrers(storeBlobs(store), artifacts, `${reg.host}/kiln/app:1`)).rejects.toMatchObject({ code: "MANIFEST_INVALID" });
    expect(reg.manifests.get(`kiln/app:${tag}`)).toBe(other);
  });

  it("writes no tag when the registry answers OCI-Subject (the referrers API)", async () => {
    const { reg, store, subject, artifacts } = await fixture({ referrers: true });
    expect(await pushReferrers(storeBlobs(store), artifacts, `${reg.host}/kiln/app:1`)).toEqual({ api: true, tags: [] });
    const res = await fetch(`${reg.url}/v2/kiln/app/referrers/${subject}?artifactType=${encodeURIComponent("application/vnd.in-toto+json")}`);
    expect(res.headers.get("oci-filters-applied")).toBe("artifactType");
    expect((await res.json() as any).manifests.map((d: any) => d.digest)).toEqual(artifacts.map((a) => a.descriptor.digest));
    expect(reg.requests.some((q) => q.path.includes("/manifests/sha256-"))).toBe(false);
  });
});
