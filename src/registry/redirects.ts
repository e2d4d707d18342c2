// Redirects, followed by hand so the client decides per hop whether credentials go along (never
// to another host): where a 3xx points, and whether the method and body survive it (303, and
// 301/302 after a POST, turn into a GET without body, as browsers and Docker do).
import type { HttpMethod } from "./response.js";

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Hops followed for one request before giving up. */
export const MAX_REDIRECTS = 10;

/** The next hop of a redirect response, or undefined when `status` is not one (or has no Location). */
export function redirectTarget(status: number, location: string | undefined, from: URL, method: HttpMethod): { url: URL; method: HttpMethod; keepBody: boolean } | undefined {
  if (!REDIRECTS.has(status) || !location) return undefined;
  const url = new URL(location, from);
  if (status === 303 || ((status === 301 || status === 302) && method === "POST")) return { url, method: "GET", keepBody: false };
  return { url, method, keepBody: true };
}
