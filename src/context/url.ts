// ADD <url>: downloads one URL to a temp file, streaming (undici), following a bounded number of
// redirects, hashing while it writes and verifying `--checksum`. As in BuildKit: the file name
// is the last segment of the URL path (`__unnamed__` when there is none) and the mtime comes
// from Last-Modified when the server sends one, else the download time.
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join, posix } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { request, type Dispatcher } from "undici";
import { envProxyDispatcher } from "../registry/transport.js";
import { KilnError } from "../errors.js";
import type { Digest } from "../image/oci.js";

export interface DownloadedFile {
  path: string;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  filename: string;
  digest: Digest;
}

export interface FetchOptions {
  tmpDir: string;
  /** Expected "sha256:<hex>" of the content. */
  checksum?: string;
  signal?: AbortSignal;
  /** Redirects followed before giving up (default 10). */
  maxRedirects?: number;
}

export function urlFilename(url: string): string {
  try {
    const base = posix.basename(decodeURIComponent(new URL(url).pathname));
    return base === "" || base === "." || base === "/" || base === ".." ? "__unnamed__" : base;
  } catch {
    return "__unnamed__";
  }
}

export async function fetchUrl(url: string, options: FetchOptions): Promise<DownloadedFile> {
  // HTTP_PROXY / HTTPS_PROXY / NO_PROXY, as for registries
  const proxy = envProxyDispatcher();
  try {
    return await download(url, options, proxy);
  } finally {
    await proxy?.close();
  }
}

async function download(url: string, options: FetchOptions, proxy: Dispatcher | undefined): Promise<DownloadedFile> {
  if (options.checksum !== undefined && !/^sha256:[0-9a-f]{64}$/.test(options.checksum)) {
    throw new KilnError("ADD_URL_INVALID", `invalid checksum "${options.checksum}" (expected sha256:<64 hex digits>)`);
  }
  let current: URL;
  try {
    current = new URL(url);
  } catch {
    throw new KilnError("ADD_URL_INVALID", `invalid URL "${url}"`);
  }
  const maxRedirects = options.maxRedirects ?? 10;
  for (let hop = 0; ; hop++) {
    if (current.protocol !== "http:" && current.protocol !== "https:") {
      throw new KilnError("ADD_URL_INVALID", `unsupported URL scheme in "${current.href}"`);
    }
    let res;
    try {
      res = await request(current, { method: "GET", signal: options.signal, headers: { "user-agent": "kiln" }, ...(proxy ? { dispatcher: proxy } : {}) });
    } catch (err) {
      throw new KilnError("ADD_DOWNLOAD_FAILED", `failed to download ${url}: ${(err as Error).message}`, { cause: err });
    }
    if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location !== undefined) {
      await res.body.dump();
      if (hop >= maxRedirects) throw new KilnError("ADD_DOWNLOAD_FAILED", `failed to download ${url}: too many redirects`);
      const loc = Array.isArray(res.headers.location) ? res.headers.location[0]! : res.headers.location;
      current = new URL(loc, current);
      continue;
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      await res.body.dump();
      throw new KilnError("ADD_DOWNLOAD_FAILED", `failed to download ${url}: HTTP ${res.statusCode}`);
    }
    await mkdir(options.tmpDir, { recursive: true });
    const path = join(options.tmpDir, `url-${randomBytes(8).toString("hex")}`);
    const hash = createHash("sha256");
    let size = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline(res.body as Readable, counter, createWriteStream(path, { mode: 0o600 }));
    } catch (err) {
      await rm(path, { force: true });
      throw new KilnError("ADD_DOWNLOAD_FAILED", `failed to download ${url}: ${(err as Error).message}`, { cause: err });
    }
    const digest: Digest = `sha256:${hash.digest("hex")}`;
    if (options.checksum !== undefined && options.checksum !== digest) {
      await rm(path, { force: true });
      throw new KilnError("ADD_CHECKSUM_MISMATCH", `checksum mismatch for ${url}: expected ${options.checksum}, got ${digest}`);
    }
    const lm = res.headers["last-modified"];
    const lmText = Array.isArray(lm) ? lm[0] : lm;
    const parsed = lmText !== undefined ? Date.parse(lmText) : NaN;
    const mtime = Number.isFinite(parsed) ? parsed / 1000 : Math.floor(Date.now() / 1000);
    return { path, size, mtime, filename: urlFilename(url), digest };
  }
}
