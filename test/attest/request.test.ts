// buildx's attestation flags as kiln reads them, and the provenance predicate's redactions.
import { describe, expect, it } from "vitest";
import { attestRequest, parseProvenance, parseSbom } from "../../src/attest/request.js";
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
    expect(attestRequest("mode=max", "true", ["type=provenance,disabled=true", "type=sbom,disabled=true"])).toEqual({});
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
