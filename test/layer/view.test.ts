import { describe, it, expect, afterEach } from "vitest";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { LayerView, clearRecentViewIndexes } from "../../src/layer/view.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { putLayer, tempDir } from "../context/helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function store(): Promise<BlobStore> {
  const { dir, cleanup } = await tempDir("kiln-view-");
  cleanups.push(cleanup);
  return new BlobStore(dir);
}

describe("LayerView", () => {
  it("merges layers with whiteouts and opaque directories", async () => {
    const s = await store();
    const base = await putLayer(s, [
      { name: "etc/", type: "directory" },
      { name: "etc/passwd", content: "root:x:0:0::/root:/bin/sh\n" },
      { name: "etc/group", content: "root:x:0:\n" },
      { name: "app/", type: "directory", mode: 0o750, uid: 5, gid: 6, mtime: 1234 },
      { name: "app/old.txt", content: "old" },
      { name: "app/keep.txt", content: "keep" },
      { name: "data/", type: "directory" },
      { name: "data/a", content: "a" },
      { name: "data/sub/b", content: "b" },
      { name: "tmp/", type: "directory", mode: 0o1777 },
    ]);
    const top = await putLayer(s, [
      { name: "app/.wh.old.txt" },
      { name: "data/.wh..wh..opq" },
      { name: "data/new", content: "n" },
      { name: "etc/passwd", content: "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n" },
      { name: "usr/bin/tool", content: "#!", mode: 0o755 },
      { name: "usr/bin/hard", type: "link", linkname: "usr/bin/tool" },
    ]);
    const view = await LayerView.load(s, [base, top]);
    expect(view.lookup("/app/old.txt")).toBeUndefined();
    expect(view.lookup("app/keep.txt")?.size).toBe(4);
    expect(view.lookup("app")).toMatchObject({ type: "dir", mode: 0o750, uid: 5, gid: 6, mtime: 1234 });
    expect(view.lookup("data/a")).toBeUndefined();
    expect(view.lookup("data/sub/b")).toBeUndefined();
    expect(view.lookup("data/new")?.type).toBe("file");
    expect(view.lookup("data")?.type).toBe("dir");
    expect(view.lookup("tmp")?.mode).toBe(0o1777);
    // implicit parents of "usr/bin/tool" appear as directories
    expect(view.lookup("usr")).toMatchObject({ type: "dir", mode: 0o755 });
    expect(view.lookup("usr/bin/hard")).toMatchObject({ type: "file", mode: 0o755, size: 2 });
    expect(view.readSmallFile("/etc/passwd")?.toString()).toContain("app:x:1000");
    expect(view.readSmallFile("etc/group")?.toString()).toBe("root:x:0:\n");
    expect(view.lookup("/")?.type).toBe("dir");
  });

  it("a whiteout of a directory hides everything beneath it; re-adding starts fresh", async () => {
    const s = await store();
    const l1 = await putLayer(s, [{ name: "d/x/y", content: "1" }, { name: "d/z", content: "2" }]);
    const l2 = await putLayer(s, [{ name: ".wh.d" }]);
    const l3 = await putLayer(s, [{ name: "d/", type: "directory", mode: 0o700 }]);
    const view = await LayerView.load(s, [l1, l2, l3]);
    expect(view.lookup("d")?.mode).toBe(0o700);
    expect(view.lookup("d/x")).toBeUndefined();
    expect(view.lookup("d/z")).toBeUndefined();
  });

  it("resolves symlinks confined to the root", async () => {
    const s = await store();
    const l = await putLayer(s, [
      { name: "srv/www/index.html", content: "hi" },
      { name: "app", type: "symlink", linkname: "/srv/www" },
      { name: "rel", type: "symlink", linkname: "srv/www" },
      { name: "srv/up", type: "symlink", linkname: "../../../../srv" },
      { name: "etc/passwd", type: "symlink", linkname: "../srv/passwd" },
      { name: "srv/passwd", content: "root:x:0:0::/:/bin/sh\n" },
    ]);
    const view = await LayerView.load(s, [l]);
    expect(view.lookup("app")?.type).toBe("symlink");
    expect(view.resolve("app")?.type).toBe("dir");
    expect(view.resolve("app/index.html")?.size).toBe(2);
    expect(view.resolve("rel/index.html")?.size).toBe(2);
    expect(view.resolvePath("srv/up/www", true)).toBe("srv/www");
    expect(view.resolvePath("app/new/file", true)).toBe("srv/www/new/file");
    expect(view.resolvePath("app", false)).toBe("app");
    expect(view.readSmallFile("etc/passwd")?.toString()).toContain("root:x:0:0");
  });

  it("caches each layer's index in the store and reuses it", async () => {
    const s = await store();
    const l = await putLayer(s, [{ name: "a/b", content: "x" }]);
    await LayerView.load(s, [l]);
    const files = await readdir(join(s.root, "views"));
    expect(files).toEqual([`${l.diffID.slice(7)}.json`]);
    const cached = JSON.parse(await readFile(join(s.root, "views", files[0]!), "utf8")) as { entries: unknown[] };
    expect(cached.entries).toHaveLength(1);
    // With the blob gone (and the in-process cache dropped), the load can only use the store's cache.
    await rm(s.path(l.descriptor.digest));
    clearRecentViewIndexes();
    const again = await LayerView.load(s, [l]);
    expect(again.lookup("a/b")?.size).toBe(1);
  });

  it("a corrupt layer blob is a one-line KilnError", async () => {
    const s = await store();
    const info = await s.putBytes(Buffer.from("not gzip at all"));
    await expect(
      LayerView.load(s, [{ descriptor: { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: info.digest, size: info.size }, diffID: info.digest }]),
    ).rejects.toThrow(/^cannot read layer sha256:/);
  });
});
