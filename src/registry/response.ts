// The shape of one registry request and response as the client's users see them, and the small
// helpers every caller needs: a header's value, a bounded body read, draining an unwanted body.
import type { Readable } from "node:stream";
import { KilnError } from "../errors.js";

export type HttpMethod = "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";

export interface RegistryRequest {
  method: HttpMethod;
  /** "/v2/..." (relative to the registry) or an absolute URL (an upload Location). */
  url: string | URL;
  /** Token scopes this request needs, e.g. ["repository:a/b:pull"]. */
  scopes: string[];
  headers?: Record<string, string>;
  /** Called for every attempt (bodies are streams and cannot be replayed). */
  body?: () => Readable | Buffer | string;
  /** Retry transient failures inside this call (default true). */
  retry?: boolean;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The URL that produced this response (after redirects): Location resolves against it. */
  url: URL;
  body: Readable & { dump?: () => Promise<void> };
}

export function header(res: { headers: RegistryResponse["headers"] }, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Read a (small) response body, failing past `limit` bytes. */
export async function readBody(res: RegistryResponse, limit = 8 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      res.body.destroy();
      throw new KilnError("REGISTRY_PROTOCOL", `response from ${res.url.host} larger than ${limit} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

export async function drain(res: RegistryResponse): Promise<void> {
  try {
    if (res.body.dump) await res.body.dump();
    else res.body.resume();
  } catch {
    // the body is unwanted; errors reading it do not matter
  }
}
