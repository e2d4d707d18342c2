// buildx's attestation flags as kiln reads them, and the provenance predicate's redactions.
import { describe, expect, it } from "vitest";
import { attestRequest, checkReferrers, effectiveAttestations, noDefaultAttestations, parseProvenance, parseSbom } from "../../src/attest/request.js";
import type { OutputSpec } from "../../src/output/write.js";
import { provenancePredicate } from "../../src/attest/provenance.js";

describe("attestation flags", () => {
  it("reads --provenance, --sbom and --attest as buildx spells them", () => {
    expect(parseProvenance("true")).toBe("min");
    expect(parseProvenance("false")).toBeUndefined();
    expect(parseProvenance("mode=max")).toBe("max");
    expect(parseProvenance("mode=min,disabled=true")).toBeUndefined();
    expect(parseSbom("true")).toBe(true);
    expect(parseSbom("false")).toBe(false);
    expect(attestRequest(undefined, undefined, ["type=provenance,mode=max", "type=sbom"])).toEqual({ provenance: "max", sbom: true });
    // turned off explicitly: false, so that the push default does not turn it back on
    expect(attestRequest("mode=max", "true", ["type=provenance,disabled=true", "type=sbom,disabled=true"])).toEqual({ provenance: false });
    expect(attestRequest("false", undefined, [])).toEqual({ provenance: false });
  });

  it("adds buildx's default, min provenance, only when the build pushes and nothing turned it off", () => {
    const push: OutputSpec = { type: "image", names: ["r/x:1"], push: true };
    const stored: OutputSpec = { type: "image", names: ["r/x:1"], push: false };
    const oci: OutputSpec = { type: "oci", dest: "/tmp/x", tar: false };
    const docker: OutputSpec = { type: "docker", dest: "/tmp/x.tar" };
    const env = {};
    expect(effectiveAttestations(undefined, [push], "oci", env)).toEqual({ provenance: "min" });
    expect(effectiveAttestations(undefined, [oci, push], "oci", env)).toEqual({ provenance: "min" });
    expect(effectiveAttestations({ sbom: true }, [push], "oci", env)).toEqual({ provenance: "min", sbom: true });
    expect(effectiveAttestations({ provenance: "max" }, [push], "oci", env)).toEqual({ provenance: "max" });
    for (const outputs of [[oci], [stored], [{ type: "local", dest: "/tmp/d" } as OutputSpec], []]) {
      expect(effectiveAttestations(undefined, outputs, "oci", env)).toBeUndefined();
    }
    expect(effectiveAttestations({ provenance: false }, [push], "oci", env)).toBeUndefined();
    expect(effectiveAttestations({ provenance: false, sbom: true }, [push], "oci", env)).toEqual({ provenance: false, sbom: true });
    expect(effectiveAttestations(undefined, [push], "oci", { BUILDX_NO_DEFAULT_ATTESTATIONS: "1" })).toBeUndefined();
    expect(effectiveAttestations(undefined, [push], "oci", { BUILDX_NO_DEFAULT_ATTESTATIONS: "false" })).toEqual({ provenance: "min" });
    // an output or format that cannot hold attestations gets no default (asked for, they are refused)
    expect(effectiveAttestations(undefined, [push], "docker", env)).toBeUndefined();
    expect(effectiveAttestations(undefined, [push, docker], "oci", env)).toBeUndefined();
    expect([noDefaultAttestations({ BUILDX_NO_DEFAULT_ATTESTATIONS: "yes" }), noDefaultAttestations({ BUILDX_NO_DEFAULT_ATTESTATIONS: "" }), noDefaultAttestations({})]).toEqual([true, false, false]);
    expect(() => checkReferrers({ provenance: "min", referrers: true }, [oci])).toThrow(/--attest-referrers needs a push/);
    expect(() => checkReferrers({ provenance: false, referrers: true }, [push])).toThrow(/no attestation to push/);
    expect(() => checkReferrers({ provenance: "min", referrers: true }, [push])).not.toThrow();
  });

  it("refuses what it does not understand, naming the flag", () => {
    expect(() => parseProvenance("mode=full")).toThrow(/--provenance: mode must be min or max/);
    expect(() => parseProvenance("yes")).toThrow(/--provenance: "yes" is not true or false/);
    expect(() => parseSbom("generator=docker/scout")).toThrow(/--sbom: unsupported SBOM option "generator"/);
    expect(() => attestRequest(undefined, undefined, ["type=vex"])).toThrow(/--attest: type must be provenance or sbom/);
    expect(() => attestRequest(undefined, undefined, ["mode=max"])).toThrow(/--attest: type must be/);
  });
});

describe("provenancePredicate", () => {
  const base = {
    dockerfile: { path: "Dockerfile", sha256: "ab".repeat(32) },
    platform: "linux/amd64",
    steps: [{ stage: "0", step: 1, instruction: "RUN make", cached: true }],
    version: "0.1.0",
    startedOn: new Date(0),
    finishedOn: new Date(1000),
    invocationId: "id",
  };

  it("leaves out secret-looking build args and URL credentials; min has no steps, max has them", () => {
    const p = provenancePredicate({
      ...base,
      mode: "min",
      buildArgs: { VERSION: "1", GITHUB_TOKEN: "t0k", DB_PASSWORD: "pw", AWS_SECRET_ACCESS_KEY: "k", NPM_AUTH: "a" },
      target: "app",
      dependencies: [{ uri: "https://user:hunter2@example.com/f.tgz", digest: { sha256: "cd".repeat(32) } }],
    }) as any;
    const text = JSON.stringify(p);
    for (const s of ["t0k", "pw\"", "hunter2", "user:", "NPM_AUTH"]) expect(text).not.toContain(s);
    expect(p.buildDefinition.externalParameters.request.args).toEqual({ "build-arg:VERSION": "1", target: "app" });
    expect(p.buildDefinition.resolvedDependencies[0].uri).toBe("https://example.com/f.tgz");
    expect(p.buildDefinition.internalParameters.steps).toBeUndefined();
    const max = provenancePredicate({ ...base, mode: "max", buildArgs: {}, dependencies: [] }) as any;
    expect(max.buildDefinition.internalParameters.steps).toEqual([{ stage: "0", step: 1, instruction: "RUN make", cacheHit: true }]);
  });
});
