// Cache keys: change exactly when a part the step depends on changes; proxy args never count.
import { describe, it, expect } from "vitest";
import { cacheKey, canonicalJSON, type CacheKeyParts } from "../../src/cache/key.js";
import type { Digest } from "../../src/image/oci.js";

const d = (c: string): Digest => `sha256:${c.repeat(64)}`;

const base: CacheKeyParts = {
  parent: d("a"),
  instruction: "RUN make",
  platform: "linux/amd64",
  args: { VERSION: "1", GOFLAGS: "-x" },
  base: d("b"),
  sources: d("c"),
  fromStage: d("e"),
  extra: { chown: "1:1", chmod: "0644" },
};

describe("cacheKey", () => {
  it("is a sha256 digest, stable for equal parts whatever their key order", () => {
    const k = cacheKey(base);
    expect(k).toMatch(/^sha256:[0-9a-f]{64}$/);
    const reordered: CacheKeyParts = {
      extra: { chmod: "0644", chown: "1:1" },
      fromStage: d("e"),
      sources: d("c"),
      base: d("b"),
      args: { GOFLAGS: "-x", VERSION: "1" },
      platform: "linux/amd64",
      instruction: "RUN make",
      parent: d("a"),
    };
    expect(cacheKey(reordered)).toBe(k);
  });

  it("changes when any part changes", () => {
    const k = cacheKey(base);
    const variants: CacheKeyParts[] = [
      { ...base, parent: d("f") },
      { ...base, parent: null },
      { ...base, instruction: "RUN make all" },
      { ...base, platform: "linux/arm64" },
      { ...base, args: { ...base.args, VERSION: "2" } },
      { ...base, args: { ...base.args, NEW: "" } },
      { ...base, args: { VERSION: "1" } },
      { ...base, base: d("9") },
      { ...base, base: "scratch" },
      { ...base, sources: d("8") },
      { ...base, fromStage: d("7") },
      { ...base, extra: { chown: "1:1" } },
      { ...base, extra: { chown: "1:1", chmod: "0755" } },
      { ...base, extra: { ...base.extra, link: "true" } },
    ];
    const keys = new Set([k, ...variants.map(cacheKey)]);
    expect(keys.size).toBe(variants.length + 1);
  });

  it("an absent optional part differs from a present one", () => {
    const { sources: _s, ...noSources } = base;
    const { fromStage: _f, ...noFrom } = base;
    const { base: _b, ...noBase } = base;
    expect(new Set([cacheKey(base), cacheKey(noSources), cacheKey(noFrom), cacheKey(noBase)]).size).toBe(4);
  });

  it("ignores proxy args in any case, and only them", () => {
    const k = cacheKey(base);
    for (const name of ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "Http_Proxy"]) {
      expect(cacheKey({ ...base, args: { ...base.args, [name]: "http://proxy:3128" } })).toBe(k);
    }
    expect(cacheKey({ ...base, args: { ...base.args, MY_PROXY: "x" } })).not.toBe(k);
    expect(cacheKey({ ...base, args: { ...base.args, HTTP_PROXY_X: "x" } })).not.toBe(k);
  });

  it("does not confuse values that would concatenate the same", () => {
    expect(cacheKey({ ...base, args: { A: "b=c" } })).not.toBe(cacheKey({ ...base, args: { "A=b": "c" } }));
    expect(cacheKey({ ...base, instruction: "RUN a", platform: "b" })).not.toBe(cacheKey({ ...base, instruction: "RUN ab", platform: "" }));
  });

  it("canonicalJSON sorts keys at every depth", () => {
    expect(canonicalJSON({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: "x" }, u: undefined })).toBe('{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}');
  });
});
