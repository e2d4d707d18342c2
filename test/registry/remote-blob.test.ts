// openRemoteBlob (the streamed copy of `kiln manifest create` across registries): the bytes pass
// through when they hash to the digest, and the stream fails, naming the registry and the blob,
// when the registry sends other bytes of the same length or fewer bytes than the descriptor says.
import { createHash } from "node:crypto";
import { buffer } from "node:stream/consumers";
import { afterEach, describe, expect, it } from "vitest";
import type { Digest } from "../../src/image/oci.js";
import { RegistryClient } from "../../src/registry/client.js";
import { openRemoteBlob } from "../../src/registry/remote-blob.js";
import { startFakeRegistry, type FakeRegistry } from "./fake-registry.js";

const good = Buffer.from("the layer bytes, exactly\n");
const digest = `sha256:${createHash("sha256").update(good).digest("hex")}` as Digest;
const desc = { mediaType: "application/octet-stream", digest, size: good.length };

let reg: FakeRegistry | undefined;
let client: RegistryClient | undefined;
afterEach(async () => {
  await client?.close();
  await reg?.close();
});

async function serving(body: Buffer): Promise<RegistryClient> {
  reg = await startFakeRegistry({
    hook: (req, res) => {
      if (req.method !== "GET" || !req.url?.includes("/blobs/")) return false;
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(body);
      return true;
    },
  });
  client = new RegistryClient(reg.host, { retry: { attempts: 1 } });
  return client;
}

describe("openRemoteBlob", () => {
  it("streams a blob whose bytes hash to its digest", async () => {
    const c = await serving(good);
    const ref = { registry: c.registry, repository: "src/app" };
    expect(await buffer(openRemoteBlob(c, ref, desc))).toEqual(good);
  });

  it("fails at the end when the bytes hash to something else", async () => {
    const bad = Buffer.from(good);
    bad[3] = bad[3]! ^ 1;
    const c = await serving(bad);
    const ref = { registry: c.registry, repository: "src/app" };
    await expect(buffer(openRemoteBlob(c, ref, desc))).rejects.toMatchObject({ code: "BLOB_DIGEST_MISMATCH", message: expect.stringContaining(`blob ${digest} of src/app`) });
  });

  it("fails when the registry sends fewer bytes than the descriptor gives", async () => {
    const c = await serving(good.subarray(0, 5));
    const ref = { registry: c.registry, repository: "src/app" };
    await expect(buffer(openRemoteBlob(c, ref, desc))).rejects.toMatchObject({ code: "BLOB_SIZE_MISMATCH" });
  });
});
