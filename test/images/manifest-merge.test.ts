// mergeManifests (kiln manifest create): entries in the sources' order with their platforms, the
// same manifest given twice listed once, attestation manifests kept beside the images without
// the one-per-platform rule, two images for one platform refused naming both sources, and the
// default format (a Docker manifest list only when every manifest is Docker schema2); annotations
// on the index and its entries (`--annotation`, parsed as imagetools does), and --amend's merge
// (a platform given again replaces the old entry in place, and its attestation).
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseIndexAnnotations } from "../../src/cli/manifest-command.js";
import { amendManifests } from "../../src/images/manifest-amend.js";
import { defaultFormat, mergeManifests } from "../../src/images/manifest-merge.js";
import type { SourceManifest } from "../../src/images/manifest-sources.js";
import { OciLayout } from "../../src/image/layout.js";
import type { Digest, Platform } from "../../src/image/oci.js";

const OCI = "application/vnd.oci.image.manifest.v1+json";
const DOCKER = "application/vnd.docker.distribution.manifest.v2+json";
const digest = (s: string): Digest => `sha256:${createHash("sha256").update(s).digest("hex")}`;

function entry(source: string, name: string, platform: Platform, mediaType = OCI, attestation = false): SourceManifest {
  return {
    source,
    location: { kind: "layout", layout: new OciLayout("/nowhere") },
    descriptor: { mediaType, digest: digest(name), size: name.length },
    platform,
    manifest: { schemaVersion: 2, config: { mediaType: "x", digest: digest(`${name}-config`), size: 2 }, layers: [] },
    attestation,
    ...(attestation ? { annotations: { "vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": digest("amd") } } : {}),
  };
}
const amd64 = { os: "linux", architecture: "amd64" };
const arm64 = { os: "linux", architecture: "arm64" };
const unknown = { os: "unknown", architecture: "unknown" };

describe("mergeManifests", () => {
  it("lists each manifest once, in order, with its platform; attestations ride along", () => {
    const m = mergeManifests([entry("a", "amd", amd64), entry("a", "att", unknown, OCI, true), entry("b", "arm", arm64), entry("c", "amd", amd64)]);
    const doc = JSON.parse(m.bytes.toString()) as { mediaType: string; manifests: Array<{ digest: string; platform: Platform; annotations?: Record<string, string> }> };
    expect(doc.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(doc.manifests.map((d) => d.digest)).toEqual([digest("amd"), digest("att"), digest("arm")]);
    expect(doc.manifests.map((d) => d.platform.architecture)).toEqual(["amd64", "unknown", "arm64"]);
    expect(doc.manifests[1]!.annotations?.["vnd.docker.reference.type"]).toBe("attestation-manifest");
    expect(m.descriptor.digest).toBe(`sha256:${createHash("sha256").update(m.bytes).digest("hex")}`);
    expect(m.descriptor.size).toBe(m.bytes.length);
  });

  it("refuses two different images for one platform, naming both sources and digests", () => {
    expect(() => mergeManifests([entry("reg/a:1", "one", amd64), entry("oci-layout:///l:2", "two", amd64)])).toThrow(
      expect.objectContaining({ code: "PLATFORM_DUPLICATE", message: `platform linux/amd64 is in two sources: reg/a:1 (${digest("one")}) and oci-layout:///l:2 (${digest("two")})` }),
    );
  });

  it("defaults to a Docker manifest list only when every manifest is Docker schema2; --format wins", () => {
    expect(defaultFormat([entry("a", "x", amd64, DOCKER), entry("b", "y", arm64, DOCKER)])).toBe("docker");
    expect(defaultFormat([entry("a", "x", amd64, DOCKER), entry("b", "y", arm64, OCI)])).toBe("oci");
    const m = mergeManifests([entry("a", "x", amd64, OCI)], "docker");
    expect(m.descriptor.mediaType).toBe("application/vnd.docker.distribution.manifest.list.v2+json");
  });
});

describe("index annotations", () => {
  it("reads K=V and index: for the index, manifest-descriptor[PLATFORMS]: for entries; refuses the other forms by name", () => {
    const a = parseIndexAnnotations(["org.opencontainers.image.title=app", "index:org.opencontainers.image.authors=me=you", "manifest-descriptor:all=yes", "manifest-descriptor[linux/arm64,linux/amd64]:pair=1"]);
    expect(a).toEqual({
      index: { "org.opencontainers.image.title": "app", "org.opencontainers.image.authors": "me=you" },
      descriptors: [{ key: "all", value: "yes" }, { key: "pair", value: "1", platforms: [arm64, amd64] }],
    });
    expect(() => parseIndexAnnotations(["manifest:k=v"])).toThrow(/manifest: annotations are not supported by manifest create/);
    expect(() => parseIndexAnnotations(["index-descriptor:k=v"])).toThrow(/index-descriptor: annotations are not supported/);
    expect(() => parseIndexAnnotations(["index[linux/amd64]:k=v"])).toThrow(/takes no platform/);
    expect(() => parseIndexAnnotations(["bogus:k=v"])).toThrow(/unknown annotation type "bogus"/);
    expect(() => parseIndexAnnotations(["novalue"])).toThrow(/expected \[TYPE:\]KEY=VALUE/);
    expect(() => parseIndexAnnotations(["index:=v"])).toThrow(/missing key in "index:=v"/);
    expect(() => parseIndexAnnotations(["=v"])).toThrow(/missing key/);
  });

  it("reads several types at once as buildx writes them (index,manifest-descriptor[PLATFORM]:K=V); a key with a colon after a non-type is plain", () => {
    expect(parseIndexAnnotations(["index,manifest-descriptor:both=1", "manifest-descriptor[linux/amd64],manifest-descriptor[linux/arm64,linux/arm/v7]:some=2", "com.example:x=3", "index:a:b=4"])).toEqual({
      index: { both: "1", "com.example:x": "3", "a:b": "4" },
      descriptors: [
        { key: "both", value: "1" },
        { key: "some", value: "2", platforms: [amd64] },
        { key: "some", value: "2", platforms: [arm64, { os: "linux", architecture: "arm", variant: "v7" }] },
      ],
    });
    expect(() => parseIndexAnnotations(["index,manifest:k=v"])).toThrow(/manifest: annotations are not supported/);
    expect(() => parseIndexAnnotations(["index,bogus:k=v"])).toThrow(/unknown annotation type "bogus"/);
  });

  it("puts them on the index and on image entries (not attestations); makes the default format OCI; a Docker list refuses them", () => {
    const entries = [entry("a", "amd", amd64, DOCKER), entry("a", "att", unknown, DOCKER, true), entry("b", "arm", arm64, DOCKER)];
    const annotations = parseIndexAnnotations(["k=v", "manifest-descriptor:all=yes", "manifest-descriptor[linux/arm64]:arch=arm"]);
    expect(defaultFormat(entries, annotations)).toBe("oci");
    const doc = JSON.parse(mergeManifests(entries, "oci", annotations).bytes.toString()) as { annotations: Record<string, string>; manifests: Array<{ annotations?: Record<string, string> }> };
    expect(doc.annotations).toEqual({ k: "v" });
    expect(doc.manifests.map((d) => d.annotations)).toEqual([
      { all: "yes" },
      { "vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": digest("amd") },
      { all: "yes", arch: "arm" },
    ]);
    expect(() => mergeManifests(entries, "docker", annotations)).toThrow(/a Docker manifest list cannot carry annotations/);
    expect(() => mergeManifests(entries, "oci", parseIndexAnnotations(["manifest-descriptor[linux/s390x]:k=v"]))).toThrow(/no image for platform linux\/s390x/);
  });
});

describe("amendManifests", () => {
  const s390x = { os: "linux", architecture: "s390x" };
  const attOf = (source: string, name: string, image: string): SourceManifest => ({
    ...entry(source, name, unknown, OCI, true),
    annotations: { "vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": digest(image) },
  });
  const names = (list: SourceManifest[]): string[] => list.map((m) => m.descriptor.digest);

  it("replaces a platform's entry in place (docker manifest create --amend's order), its attestation with the new one's; new platforms follow", () => {
    const existing = [entry("old", "amd", amd64), entry("old", "att", unknown, OCI, true), entry("old", "arm", arm64)];
    const out = amendManifests(existing, [entry("new", "amd2", amd64), entry("new", "s390x", s390x)]);
    expect(names(out)).toEqual([digest("amd2"), digest("arm"), digest("s390x")]);
    expect(names(amendManifests(existing, [entry("new", "s390x", s390x)]))).toEqual([digest("amd"), digest("att"), digest("arm"), digest("s390x")]);
    // the last of three replaced: still where it was
    const three = [entry("old", "amd", amd64), entry("old", "arm", arm64), entry("old", "s390x", s390x)];
    expect(names(amendManifests(three, [entry("new", "s390x-2", s390x), entry("new", "arm2", arm64)]))).toEqual([digest("amd"), digest("arm2"), digest("s390x-2")]);
  });

  it("the new image's attestation takes the place of the replaced one's; one without an old place follows the new entries", () => {
    const existing = [entry("old", "amd", amd64), entry("old", "arm", arm64), attOf("old", "att-amd", "amd"), attOf("old", "att-arm", "arm")];
    const added = [entry("new", "arm2", arm64), entry("new", "amd2", amd64), attOf("new", "att-arm2", "arm2"), attOf("new", "att-amd2", "amd2")];
    expect(names(amendManifests(existing, added))).toEqual([digest("amd2"), digest("arm2"), digest("att-amd2"), digest("att-arm2")]);
    // an old image without attestations, replaced by one with: the image in place, its attestation at the end
    const plain = [entry("old", "amd", amd64), entry("old", "arm", arm64)];
    expect(names(amendManifests(plain, [entry("new", "amd2", amd64), attOf("new", "att-amd2", "amd2")]))).toEqual([digest("amd2"), digest("arm"), digest("att-amd2")]);
    // a replaced image's attestation goes with it when the new image has none
    expect(names(amendManifests(existing, [entry("new", "arm2", arm64)]))).toEqual([digest("amd"), digest("arm2"), digest("att-amd")]);
  });
});
