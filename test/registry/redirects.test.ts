// Redirect rules the client follows by hand: where each 3xx points, and which keep the method
// and body (307/308 always; 301/302 except after a POST; 303 never).
import { describe, it, expect } from "vitest";
import { redirectTarget } from "../../src/registry/redirects.js";

const from = new URL("https://reg.example/v2/a/b/blobs/uploads/");

describe("redirectTarget", () => {
  it("resolves Location against the URL that answered", () => {
    expect(redirectTarget(307, "/elsewhere?x=1", from, "PUT")).toEqual({ url: new URL("https://reg.example/elsewhere?x=1"), method: "PUT", keepBody: true });
    expect(redirectTarget(302, "https://cdn.example/blob", from, "GET")).toEqual({ url: new URL("https://cdn.example/blob"), method: "GET", keepBody: true });
  });

  it("turns 303, and 301/302 after a POST, into a GET without body", () => {
    expect(redirectTarget(303, "/x", from, "PUT")).toMatchObject({ method: "GET", keepBody: false });
    expect(redirectTarget(301, "/x", from, "POST")).toMatchObject({ method: "GET", keepBody: false });
    expect(redirectTarget(302, "/x", from, "POST")).toMatchObject({ method: "GET", keepBody: false });
    expect(redirectTarget(308, "/x", from, "POST")).toMatchObject({ method: "POST", keepBody: true });
  });

  it("is not a redirect without a 3xx redirect status or without a Location", () => {
    expect(redirectTarget(200, "/x", from, "GET")).toBeUndefined();
    expect(redirectTarget(304, "/x", from, "GET")).toBeUndefined();
    expect(redirectTarget(302, undefined, from, "GET")).toBeUndefined();
  });
});
