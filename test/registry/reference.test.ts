import { describe, it, expect } from "vitest";
import { familiarName, formatReference, parseReference, registryHost } from "../../src/image/reference.js";
import { KilnError } from "../../src/errors.js";

const D = `sha256:${"ab".repeat(32)}`;

describe("parseReference", () => {
  it("applies Docker Hub defaults", () => {
    expect(parseReference("alpine")).toEqual({ registry: "docker.io", repository: "library/alpine", tag: "latest" });
    expect(parseReference("user/app:1.0")).toEqual({ registry: "docker.io", repository: "user/app", tag: "1.0" });
    expect(parseReference("docker.io/alpine:3")).toEqual({ registry: "docker.io", repository: "library/alpine", tag: "3" });
    expect(parseReference("index.docker.io/library/alpine").registry).toBe("docker.io");
  });

  it("recognises registry hosts by dot, colon or localhost", () => {
    expect(parseReference("ghcr.io/o/app:v1")).toEqual({ registry: "ghcr.io", repository: "o/app", tag: "v1" });
    expect(parseReference("localhost/app")).toEqual({ registry: "localhost", repository: "app", tag: "latest" });
    expect(parseReference("localhost:5000/a/b/c:t")).toEqual({ registry: "localhost:5000", repository: "a/b/c", tag: "t" });
    expect(parseReference("127.0.0.1:5000/x")).toEqual({ registry: "127.0.0.1:5000", repository: "x", tag: "latest" });
    expect(parseReference("[::1]:5000/x:y")).toEqual({ registry: "[::1]:5000", repository: "x", tag: "y" });
    // "foo/bar": foo is a namespace on Docker Hub, not a host
    expect(parseReference("foo/bar").registry).toBe("docker.io");
  });

  it("keeps tag and digest; a digest alone means no default tag", () => {
    expect(parseReference(`alpine:3@${D}`)).toEqual({ registry: "docker.io", repository: "library/alpine", tag: "3", digest: D });
    expect(parseReference(`h.io:443/a@${D}`)).toEqual({ registry: "h.io:443", repository: "a", digest: D });
  });

  it("rejects invalid names with one clear line", () => {
    expect(() => parseReference("Foo")).toThrow(new KilnError("REFERENCE_INVALID", 'invalid reference "Foo": repository name must be lowercase'));
    expect(() => parseReference("ghcr.io/Org/app")).toThrow(/repository name must be lowercase/);
    for (const bad of ["", "a:b:c", "a@sha256:xyz", "a/", "-a", "a//b", "a:tag with space", "a:" + "t".repeat(129), "ghcr.io/", ":tag"]) {
      expect(() => parseReference(bad)).toThrow(KilnError);
    }
  });

  it("formats full and familiar names and the API host", () => {
    const r = parseReference("alpine");
    expect(formatReference(r)).toBe("docker.io/library/alpine:latest");
    expect(familiarName(r)).toBe("alpine:latest");
    expect(familiarName(parseReference("user/app:1"))).toBe("user/app:1");
    expect(familiarName(parseReference("ghcr.io/o/a:1"))).toBe("ghcr.io/o/a:1");
    expect(registryHost(r)).toBe("registry-1.docker.io");
    expect(registryHost(parseReference("localhost:5000/a"))).toBe("localhost:5000");
    expect(parseReference(formatReference(parseReference(`x.io/a/b:c@${D}`)))).toEqual(parseReference(`x.io/a/b:c@${D}`));
  });
});
