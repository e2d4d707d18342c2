import { describe, it, expect } from "vitest";
import { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, platformMatches, selectManifest } from "../../src/image/platform.js";
import type { Descriptor, Index } from "../../src/image/oci.js";

const d = (n: number, platform?: Descriptor["platform"], annotations?: Record<string, string>): Descriptor => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size: 100,
  ...(platform ? { platform } : {}),
  ...(annotations ? { annotations } : {}),
});

describe("platforms", () => {
  it("parses and normalises aliases", () => {
    expect(parsePlatform("linux/amd64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(parsePlatform("linux/arm64/v8")).toEqual({ os: "linux", architecture: "arm64" });
    expect(parsePlatform("linux/aarch64")).toEqual({ os: "linux", architecture: "arm64" });
    expect(parsePlatform("linux/x86_64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(normalizePlatform({ os: "linux", architecture: "x86-64" }).architecture).toBe("amd64");
    expect(parsePlatform("linux/armhf")).toEqual({ os: "linux", architecture: "arm", variant: "v7" });
    expect(parsePlatform("linux/armel")).toEqual({ os: "linux", architecture: "arm", variant: "v6" });
    expect(parsePlatform("linux/i386")).toEqual({ os: "linux", architecture: "386" });
    expect(formatPlatform(parsePlatform("linux/arm/v7"))).toBe("linux/arm/v7");
    expect(() => parsePlatform("linux")).toThrow(/invalid platform "linux"/);
    expect(() => parsePlatform("linux/amd64/v1/x")).toThrow(/invalid platform/);
  });

  it("knows the host platform", () => {
    const h = hostPlatform();
    expect(h.os).toBe("linux");
    expect(["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"]).toContain(h.architecture);
  });

  it("matches", () => {
    expect(platformMatches(parsePlatform("linux/arm64"), { os: "linux", architecture: "arm64", variant: "v8" })).toBe(true);
    expect(platformMatches(parsePlatform("linux/arm/v7"), { os: "linux", architecture: "arm", variant: "v6" })).toBe(false);
    expect(platformMatches(parsePlatform("linux/amd64"), { os: "linux", architecture: "arm64" })).toBe(false);
  });

  it("selects from an index, skipping attestations", () => {
    const index: Index = {
      schemaVersion: 2,
      manifests: [
        d(1, { os: "unknown", architecture: "unknown" }),
        d(2, { os: "linux", architecture: "amd64" }, { "vnd.docker.reference.type": "attestation-manifest" }),
        d(3, { os: "linux", architecture: "amd64" }),
        d(4, { os: "linux", architecture: "arm64", variant: "v8" }),
        d(5, { os: "linux", architecture: "arm", variant: "v6" }),
        d(6, { os: "linux", architecture: "arm", variant: "v7" }),
      ],
    };
    expect(selectManifest(index, parsePlatform("linux/amd64")).digest).toBe(index.manifests[2].digest);
    expect(selectManifest(index, parsePlatform("linux/aarch64")).digest).toBe(index.manifests[3].digest);
    expect(selectManifest(index, parsePlatform("linux/arm/v7")).digest).toBe(index.manifests[5].digest);
    expect(() => selectManifest(index, parsePlatform("linux/s390x"))).toThrow(
      "no image for platform linux/s390x (available: linux/amd64, linux/arm64, linux/arm/v6, linux/arm/v7)",
    );
  });
});
