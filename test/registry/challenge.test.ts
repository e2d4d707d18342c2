import { describe, it, expect } from "vitest";
import { parseChallenges } from "../../src/registry/challenge.js";
import { backoffDelay, parseRetryAfter, retryPolicy } from "../../src/registry/retry.js";
import { nextOffsetFromRange } from "../../src/registry/upload.js";
import { allowsPlainHttp } from "../../src/registry/client.js";

describe("WWW-Authenticate", () => {
  it("parses several challenges with quoted params", () => {
    const chs = parseChallenges(
      'Bearer realm="https://auth.example/token",service="reg, with comma",scope="repository:a/b:pull,push" , Basic realm="x \\"q\\""',
    );
    expect(chs).toEqual([
      { scheme: "bearer", params: { realm: "https://auth.example/token", service: "reg, with comma", scope: "repository:a/b:pull,push" } },
      { scheme: "basic", params: { realm: 'x "q"' } },
    ]);
    expect(parseChallenges(["Basic realm=Registry", 'Bearer realm="r",error="insufficient_scope"'])).toEqual([
      { scheme: "basic", params: { realm: "Registry" } },
      { scheme: "bearer", params: { realm: "r", error: "insufficient_scope" } },
    ]);
    expect(parseChallenges(undefined)).toEqual([]);
  });
});

describe("retry helpers", () => {
  it("parses Retry-After and backs off with jitter within bounds", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    const date = new Date(Date.now() + 5000).toUTCString();
    expect(parseRetryAfter(date)).toBeGreaterThan(3000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    const p = retryPolicy({ baseDelayMs: 100, maxDelayMs: 1000 });
    for (let i = 1; i < 8; i++) {
      const d = backoffDelay(p, i);
      const exp = Math.min(1000, 100 * 2 ** (i - 1));
      expect(d).toBeGreaterThanOrEqual(exp / 2);
      expect(d).toBeLessThanOrEqual(exp);
    }
    expect(backoffDelay(p, 1, 700)).toBe(700);
    expect(backoffDelay(p, 1, 60_000)).toBe(1000);
  });

  it("reads upload Range headers", () => {
    expect(nextOffsetFromRange("0-1023")).toBe(1024);
    expect(nextOffsetFromRange("bytes=0-9")).toBe(10);
    expect(nextOffsetFromRange(undefined)).toBeUndefined();
  });

  it("allows plain HTTP only for loopback and configured hosts", () => {
    expect(allowsPlainHttp("localhost:5000")).toBe(true);
    expect(allowsPlainHttp("127.0.0.5:80")).toBe(true);
    expect(allowsPlainHttp("[::1]:5000")).toBe(true);
    expect(allowsPlainHttp("registry.example:5000")).toBe(false);
    expect(allowsPlainHttp("registry.example:5000", ["registry.example:5000"])).toBe(true);
    expect(allowsPlainHttp("registry.example", ["registry.example"])).toBe(true);
  });
});
