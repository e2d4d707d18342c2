// mergeManifests (kiln manifest create): entries in the sources' order with their platforms, the
// same manifest given twice listed once, attestation manifests kept beside the images without
// the one-per-platform rule, two images for one platform refused naming both sources, and the
// default format (a Docker manifest list only when every manifest is Docker schema2).
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
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
