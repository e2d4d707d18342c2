import { describe, it, expect, afterEach, beforeAll, afterAll } from "vitest";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { readdir, readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { copyEntries } from "../../src/context/copy-entries.js";
import { fetchUrl, urlFilename } from "../../src/context/url.js";
import { KilnError } from "../../src/errors.js";
import { LayerView } from "../../src/layer/view.js";
import { byPath, makeTar, readEntry, tempDir } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const body = Buffer.from("downloaded content\n");
const sha = `sha256:${createHash("sha256").update(body).digest("hex")}`;
let server: Server;
let base = "";
let tarBody: Buffer;

beforeAll(async () => {
  tarBody = await makeTar([{ name: "inner.txt", content: "inside" }]);
  server = createServer((req, res) => {
    if (req.url === "/files/tool.sh") {
      res.writeHead(200, { "last-modified": "Wed, 21 Oct 2015 07:28:00 GMT", "content-length": body.length });
      res.end(body);
    } else if (req.url === "/nolm") {
      res.end(body);
    } else if (req.url === "/redirect") {
      res.writeHead(302, { location: "/files/tool.sh" });
      res.end();
    } else if (req.url === "/loop") {
      res.writeHead(302, { location: "/loop" });
      res.end();
    } else if (req.url === "/a.tar") {
      res.end(tarBody);
    } else {
      res.writeHead(404);
      res.end("nope");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function tmp(): Promise<string> {
  const { dir, cleanup } = await tempDir("kiln-url-");
  cleanups.push(cleanup);
  return dir;
}

describe("fetchUrl", () => {
  it("downloads to a temp file with Last-Modified as mtime and the URL's file name", async () => {
    const dir = await tmp();
    const got = await fetchUrl(`${base}/files/tool.sh`, { tmpDir: dir, checksum: sha });
    expect(got).toMatchObject({ size: body.length, mtime: Date.parse("2015-10-21T07:28:00Z") / 1000, filename: "tool.sh", digest: sha });
    expect(await readFile(got.path)).toEqual(body);
  });

  it("follows redirects (bounded) and names the file from the URL as written", async () => {
    const dir = await tmp();
    const got = await fetchUrl(`${base}/redirect`, { tmpDir: dir });
    expect(got.filename).toBe("redirect");
    expect(got.digest).toBe(sha);
    await expect(fetchUrl(`${base}/loop`, { tmpDir: dir, maxRedirects: 3 })).rejects.toThrow(/too many redirects/);
  });

  it("checksum mismatch and HTTP errors are one-line KilnErrors, leaving no file behind", async () => {
    const dir = await tmp();
    const wrong = `sha256:${"0".repeat(64)}`;
    const err = await fetchUrl(`${base}/files/tool.sh`, { tmpDir: dir, checksum: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe("ADD_CHECKSUM_MISMATCH");
    expect((err as Error).message).toBe(`checksum mismatch for ${base}/files/tool.sh: expected ${wrong}, got ${sha}`);
    expect(await readdir(dir)).toEqual([]);
    await expect(fetchUrl(`${base}/missing`, { tmpDir: dir })).rejects.toThrow(/HTTP 404/);
    await expect(fetchUrl(`${base}/x`, { tmpDir: dir, checksum: "md5:abc" })).rejects.toThrow(/invalid checksum/);
  });

  it("file names: last path segment, else __unnamed__", () => {
    expect(urlFilename("https://example.com/a/b/c.tgz?x=1")).toBe("c.tgz");
    expect(urlFilename("https://example.com/")).toBe("__unnamed__");
    expect(urlFilename("https://example.com")).toBe("__unnamed__");
  });
});

describe("ADD <url> via copyEntries", () => {
  it("the file is 0600 with the download's mtime; not unpacked unless --unpack", async () => {
    const dir = await tmp();
    const view = LayerView.empty();
    const file = await fetchUrl(`${base}/files/tool.sh`, { tmpDir: dir });
    const out = byPath(await copyEntries({ kind: "ADD", sources: [{ kind: "url", file }], dest: "/usr/bin/", workdir: "/", view }));
    const e = out.get("usr/bin/tool.sh")!;
    expect(e).toMatchObject({ mode: 0o600, uid: 0, mtime: file.mtime, size: body.length });
    expect(await readEntry(e)).toBe(body.toString());

    const tarFile = await fetchUrl(`${base}/a.tar`, { tmpDir: dir });
    const plain = await copyEntries({ kind: "ADD", sources: [{ kind: "url", file: tarFile }], dest: "/x/", workdir: "/", view });
    expect(plain.map((x) => x.path)).toEqual(["x", "x/a.tar"]);
    const unpacked = await copyEntries({ kind: "ADD", sources: [{ kind: "url", file: tarFile }], dest: "/x/", workdir: "/", view, unpack: true, spoolDir: join(dir, "spool") });
    expect(unpacked.map((x) => x.path)).toEqual(["x", "x/inner.txt"]);
  });

  it("without Last-Modified the mtime is the download time", async () => {
    const dir = await tmp();
    const before = Math.floor(Date.now() / 1000);
    const got = await fetchUrl(`${base}/nolm`, { tmpDir: dir });
    expect(got.mtime).toBeGreaterThanOrEqual(before);
    expect(got.filename).toBe("nolm");
  });
});
