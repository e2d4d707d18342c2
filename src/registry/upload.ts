// One blob to one repository: HEAD (skip if present), cross-repo mount, then a monolithic
// POST + PUT ?digest= upload or, when a chunk size is set, PATCH chunks (OCI-Chunk-Min-Length,
// Range, 416 recovery, a 201 answer to a PATCH = complete). The whole sequence is retried from
// the HEAD on transient failures.
import type { Readable } from "node:stream";
import { KilnError } from "../errors.js";
import type { Descriptor, Digest } from "../image/oci.js";
import type { BlobReader } from "../image/source.js";
import { RegistryClient } from "./client.js";
import { drain, header, type RegistryResponse } from "./response.js";
import type { RegistryOptions } from "./options.js";
import { ProgressCounter, progressEvent } from "./progress.js";
import { withRetry } from "./retry.js";

/** Where blobs to push come from: an OCI layout, the blob store, ... (every ImageSource is one). */
export type BlobSource = BlobReader;

export type UploadOutcome = "exists" | "mounted" | "uploaded";

export interface UploadTarget {
  client: RegistryClient;
  repository: string;
  /** Scopes used for every request of this push (push scope first, then mount sources). */
  scopes: string[];
  options: RegistryOptions;
}

function location(res: RegistryResponse, what: string, registry: string): URL {
  const loc = header(res, "location");
  if (!loc) throw new KilnError("REGISTRY_PROTOCOL", `registry ${registry}: ${what}: ${res.status} response without a Location header`);
  // resolved against the URL that answered, keeping the Location's own query (upload state)
  return new URL(loc, res.url);
}

function checkDigestHeader(res: RegistryResponse, want: Digest, registry: string): void {
  const got = header(res, "docker-content-digest");
  if (got !== undefined && got !== "" && got !== want) {
    throw new KilnError("BLOB_DIGEST_MISMATCH", `registry ${registry}: stored blob as ${got}, but kiln computed ${want}`);
  }
}

/** Parse an upload Range header ("0-1023" or "bytes=0-1023") into the next offset to send. */
export function nextOffsetFromRange(range: string | undefined): number | undefined {
  if (!range) return undefined;
  const m = /^(?:bytes=)?(\d+)-(\d+)$/.exec(range.trim());
  if (!m) return undefined;
  return Number(m[2]) + 1;
}

/** Reads a blob sequentially in chunks; can restart from an earlier offset by reopening. */
class ChunkReader {
  private stream: Readable | undefined;
  private iter: AsyncIterator<Buffer> | undefined;
  private pos = 0; // offset of the first byte in `pending`
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly source: BlobSource, private readonly digest: Digest) {}

  private reopen(): void {
    this.stream?.destroy();
    this.stream = this.source.open(this.digest);
    this.iter = this.stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.pos = 0;
    this.pending = Buffer.alloc(0);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (!this.iter || offset < this.pos) this.reopen();
    const iter = this.iter as AsyncIterator<Buffer>;
    // discard bytes before `offset`
    for (;;) {
      if (this.pos + this.pending.length >= offset) {
        this.pending = this.pending.subarray(offset - this.pos);
        this.pos = offset;
        break;
      }
      this.pos += this.pending.length;
      this.pending = Buffer.alloc(0);
      const n = await iter.next();
      if (n.done) throw new KilnError("BLOB_SIZE_MISMATCH", `blob ${this.digest} is shorter than its descriptor says`);
      this.pending = n.value;
    }
    const parts: Buffer[] = [this.pending];
    let have = this.pending.length;
    while (have < length) {
      const n = await iter.next();
      if (n.done) throw new KilnError("BLOB_SIZE_MISMATCH", `blob ${this.digest} is shorter than its descriptor says`);
      parts.push(n.value);
      have += n.value.length;
    }
    const all = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    const out = Buffer.from(all.subarray(0, length));
    this.pending = all.subarray(length);
    this.pos += length;
    return out;
  }

  close(): void {
    this.stream?.destroy();
  }
}

async function putMonolithic(t: UploadTarget, source: BlobSource, desc: Descriptor, start: RegistryResponse): Promise<void> {
  const url = location(start, "start upload", t.client.registry);
  url.searchParams.set("digest", desc.digest);
  const res = await t.client.request({
    method: "PUT",
    url,
    scopes: t.scopes,
    retry: false,
    headers: { "content-type": "application/octet-stream", "content-length": String(desc.size) },
    body: () => {
      const counter = new ProgressCounter("push", desc.digest, desc.size, t.options.onProgress);
      const src = source.open(desc.digest);
      src.on("error", (e) => counter.destroy(e));
      return src.pipe(counter);
    },
  });
  await t.client.expect(res, [201, 204], `upload blob ${desc.digest} to ${t.repository}`);
  checkDigestHeader(res, desc.digest, t.client.registry);
  await drain(res);
}

async function putChunked(t: UploadTarget, source: BlobSource, desc: Descriptor, start: RegistryResponse): Promise<void> {
  let url = location(start, "start upload", t.client.registry);
  const minLen = Number(header(start, "oci-chunk-min-length") ?? "0");
  const chunk = Math.max(t.options.chunkSize ?? 5 * 1024 * 1024, Number.isFinite(minLen) ? minLen : 0, 1);
  const reader = new ChunkReader(source, desc.digest);
  const started = Date.now();
  let offset = 0;
  let completed = false;
  let recoveries = 0;
  try {
    while (offset < desc.size) {
      const len = Math.min(chunk, desc.size - offset);
      const buf = await reader.read(offset, len);
      const res = await t.client.request({
        method: "PATCH",
        url,
        scopes: t.scopes,
        retry: false,
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(len),
          "content-range": `${offset}-${offset + len - 1}`,
        },
        body: () => buf,
      });
      if (res.status === 416) {
        // the registry has a different idea of how much it holds: ask, then resume there
        await drain(res);
        if (++recoveries > 5) throw new KilnError("REGISTRY_PROTOCOL", `registry ${t.client.registry}: upload of ${desc.digest} keeps failing with 416`);
        const status = await t.client.request({ method: "GET", url, scopes: t.scopes });
        await t.client.expect(status, [204, 200], `upload status of ${desc.digest}`);
        await drain(status);
        if (header(status, "location")) url = location(status, "upload status", t.client.registry);
        offset = nextOffsetFromRange(header(status, "range")) ?? 0;
        continue;
      }
      if (res.status === 201) {
        // some registries (ECR) finish the upload on a PATCH that carries the last byte
        checkDigestHeader(res, desc.digest, t.client.registry);
        await drain(res);
        if (offset + len >= desc.size) completed = true;
        else throw new KilnError("REGISTRY_PROTOCOL", `registry ${t.client.registry}: closed the upload of ${desc.digest} before the last chunk`);
        offset += len;
        break;
      }
      await t.client.expect(res, [202, 204], `upload chunk of ${desc.digest}`);
      await drain(res);
      if (header(res, "location")) url = location(res, "upload chunk", t.client.registry);
      offset = nextOffsetFromRange(header(res, "range")) ?? offset + len;
      t.options.onProgress?.(progressEvent("push", desc.digest, desc.size, offset, started, "progress"));
    }
  } finally {
    reader.close();
  }
  if (completed) return;
  url.searchParams.set("digest", desc.digest);
  const res = await t.client.request({
    method: "PUT",
    url,
    scopes: t.scopes,
    retry: false,
    headers: { "content-type": "application/octet-stream", "content-length": "0" },
    body: () => Buffer.alloc(0),
  });
  await t.client.expect(res, [201, 204], `finish upload of ${desc.digest}`);
  checkDigestHeader(res, desc.digest, t.client.registry);
  await drain(res);
}

/** Make sure `desc` exists in `t.repository`, mounting from `mountFrom` (same registry) if given. */
export async function uploadBlob(t: UploadTarget, source: BlobSource, desc: Descriptor, mountFrom?: string): Promise<UploadOutcome> {
  const { client, repository } = t;
  const started = Date.now();
  let tryMount = mountFrom !== undefined && mountFrom !== repository;
  const outcome = await withRetry(client.policy, async (): Promise<UploadOutcome> => {
    const head = await client.request({ method: "HEAD", url: `/v2/${repository}/blobs/${desc.digest}`, scopes: t.scopes, retry: false });
    await drain(head);
    if (head.status === 200) return "exists";
    if (head.status !== 404) await client.expect(head, [404], `HEAD blob ${desc.digest} in ${repository}`);

    let start: RegistryResponse | undefined;
    if (tryMount) {
      const q = new URLSearchParams({ mount: desc.digest, from: mountFrom as string });
      try {
        const res = await client.request({ method: "POST", url: `/v2/${repository}/blobs/uploads/?${q}`, scopes: t.scopes, retry: false, headers: { "content-length": "0" } });
        if (res.status === 201) {
          checkDigestHeader(res, desc.digest, client.registry);
          await drain(res);
          return "mounted";
        }
        if (res.status === 202 && header(res, "location")) {
          await drain(res);
          start = res; // the registry started an ordinary upload instead
        } else {
          await drain(res);
          tryMount = false;
        }
      } catch {
        // any error with a mount: do the plain upload instead
        tryMount = false;
      }
    }
    if (!start) {
      const res = await client.request({ method: "POST", url: `/v2/${repository}/blobs/uploads/`, scopes: t.scopes, retry: false, headers: { "content-length": "0" } });
      await client.expect(res, [202], `start upload of ${desc.digest} to ${repository}`);
      await drain(res);
      start = res;
    }
    if (t.options.chunkSize !== undefined && t.options.chunkSize > 0) await putChunked(t, source, desc, start);
    else await putMonolithic(t, source, desc, start);
    return "uploaded";
  });
  const state = outcome === "uploaded" ? "done" : outcome;
  t.options.onProgress?.(progressEvent("push", desc.digest, desc.size, outcome === "uploaded" ? desc.size : 0, started, state));
  return outcome;
}
