// Tests for the deterministic layer tar writer: ordering, hardlinks, PAX cases, GNU tar interop.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync, lstatSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { extract as tarExtract, type Header as Headers } from "tar-stream";
import { tarStream, compareLayerPaths } from "../../src/layer/tar-writer.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import { KilnError } from "../../src/errors.js";

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

interface Item { header: Headers; body: Buffer }
async function readTar(buf: Buffer): Promise<Item[]> {
  const ex = tarExtract();
  const items: Item[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      items.push({ header: entry.header, body: Buffer.concat(chunks) });
    }
  })();
  ex.end(buf);
  await done;
  return items;
}

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0 };
const file = (path: string, content: string, extra: Partial<LayerEntry> = {}): LayerEntry => {
  const b = Buffer.from(content);
  return { ...base, path, type: "file", size: b.length, open: () => Readable.from([b]), ...extra };
};
const dir = (path: string, extra: Partial<LayerEntry> = {}): LayerEntry => ({ ...base, path, type: "dir", mode: 0o755, ...extra });
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

let tmp: string;
beforeAll(() => { tmp = mkdtempSync(join(tmpdir(), "kiln-tarw-")); });
afterAll(() => { rmSync(tmp, { recursive: true, force: true }); });

describe("tarStream ordering and determinism", () => {
  const entries = (): LayerEntry[] => [
    dir("usr"), dir("usr/bin"), file("usr/bin/z", "zz"), file("usr/bin/a", "aa"),
    file("usr/.wh.old", ""), file("usr/.wh..wh..opq", ""), file("usr/-dash", "d"),
    dir("etc"), file("etc/hosts", "127.0.0.1 localhost\n"), file("usr.txt", "x"),
    { ...base, path: "usr/link", type: "symlink", linkname: "bin/a", mode: 0o777 },
  ];

  it("produces identical bytes whatever the input order", async () => {
    const a = await collect(tarStream(entries()));
    const reversed = entries().reverse();
    const b = await collect(tarStream(reversed));
    const shuffled = entries().sort(() => 0.5 - ((sha(Buffer.from(String(Math.random()))).charCodeAt(0) % 2)));
    const c = await collect(tarStream(shuffled));
    expect(sha(a)).toBe(sha(b));
    expect(sha(a)).toBe(sha(c));
  });

  it("sorts component-wise with opaque marker, then whiteouts, first in each directory", async () => {
    const items = await readTar(await collect(tarStream(entries())));
    expect(items.map((i) => i.header.name)).toEqual([
      "etc/", "etc/hosts", "usr/", "usr/.wh..wh..opq", "usr/.wh.old", "usr/-dash", "usr/bin/",
      "usr/bin/a", "usr/bin/z", "usr/link", "usr.txt",
    ]);
    expect(items.find((i) => i.header.name === "usr/bin/a")!.body.toString()).toBe("aa");
    expect(compareLayerPaths("a/b", "a.b")).toBeLessThan(0);
    expect(compareLayerPaths("a/.wh.b", "a/!x")).toBeLessThan(0);
  });

  it("is readable by GNU tar with modes, ids, empty user names and dir slashes", async () => {
    const p = join(tmp, "order.tar");
    writeFileSync(p, await collect(tarStream([...entries(), file("usr/bin/suid", "s", { mode: 0o4755, uid: 1000, gid: 1001 })])));
    const listing = execFileSync("tar", ["--numeric-owner", "-tvf", p], { encoding: "utf8" });
    expect(listing).toMatch(/^drwxr-xr-x 0\/0 +0 2023-11-1\d \d\d:\d\d etc\/$/m);
    expect(listing).toMatch(/^-rwsr-xr-x 1000\/1001 +1 .* usr\/bin\/suid$/m);
    expect(listing).toMatch(/^lrwxrwxrwx 0\/0 .* usr\/link -> bin\/a$/m);
    const raw = readFileSync(p);
    expect(raw.subarray(257, 263).toString("latin1")).toBe("ustar\0"); // plain USTAR header
    expect(raw.subarray(265, 265 + 32).every((b) => b === 0)).toBe(true); // empty uname
  });

  it("rejects duplicate paths and paths escaping the layer", async () => {
    await expect(collect(tarStream([file("a", "1"), file("a", "2")]))).rejects.toThrow(KilnError);
    await expect(collect(tarStream([file("a", "1"), file("a", "2")]))).rejects.toThrow(/duplicate path "a"/);
    for (const bad of ["../etc/passwd", "/abs", "a/../../b", "a//b", "./a", ""]) {
      await expect(collect(tarStream([file(bad, "x")]))).rejects.toThrow(KilnError);
    }
    await expect(collect(tarStream([{ ...base, path: "h", type: "hardlink", linkname: "../x" }]))).rejects.toThrow(KilnError);
  });
});

describe("tarStream hardlinks", () => {
  it("makes the first name in tar order carry the content, others link to it", async () => {
    const buf = await collect(tarStream([
      file("z/target", "shared content", { mode: 0o600 }),
      { ...base, path: "a/link1", type: "hardlink", linkname: "z/target" },
      { ...base, path: "m/link2", type: "hardlink", linkname: "a/link1" },
      dir("a"), dir("m"), dir("z"),
    ]));
    const items = await readTar(buf);
    const byName = new Map(items.map((i) => [i.header.name, i]));
    expect(byName.get("a/link1")!.header.type).toBe("file");
    expect(byName.get("a/link1")!.body.toString()).toBe("shared content");
    expect(byName.get("a/link1")!.header.mode).toBe(0o600);
    expect(byName.get("m/link2")!.header).toMatchObject({ type: "link", linkname: "a/link1" });
    expect(byName.get("z/target")!.header).toMatchObject({ type: "link", linkname: "a/link1" });
    // GNU tar extracts it with all three names sharing one inode.
    const p = join(tmp, "hl.tar");
    writeFileSync(p, buf);
    const out = mkdtempSync(join(tmp, "hlx-"));
    execFileSync("tar", ["-xf", p, "-C", out]);
    expect(readFileSync(join(out, "z/target"), "utf8")).toBe("shared content");
    expect(lstatSync(join(out, "z/target")).ino).toBe(lstatSync(join(out, "a/link1")).ino);
    expect(lstatSync(join(out, "m/link2")).nlink).toBe(3);
  });

  it("rejects hardlinks to missing entries", async () => {
    await expect(collect(tarStream([{ ...base, path: "l", type: "hardlink", linkname: "nope" }]))).rejects.toThrow(/not in the layer/);
  });
});

describe("tarStream PAX cases", () => {
  const longDir = "d".repeat(120);
  const nonAscii = "répertoire/fichier-été-日本.txt";
  const longName = `${"a".repeat(60)}/${"b".repeat(150)}.txt`; // name part > 100: needs PAX
  const splittable = `${"p".repeat(90)}/${"q".repeat(90)}`; // fits prefix + name: USTAR
  const longLink = `/${"t".repeat(200)}`;

  it("writes long and non-ASCII names readable by GNU tar and tar-stream", async () => {
    const buf = await collect(tarStream([
      dir(longDir), file(`${longDir}/inner`, "1"), file(nonAscii, "2"), dir("répertoire"),
      file(longName, "3"), dir("a".repeat(60)), dir("p".repeat(90)), file(splittable, "4"),
      { ...base, path: "sym", type: "symlink", linkname: longLink },
    ]));
    const p = join(tmp, "long.tar");
    writeFileSync(p, buf);
    const names = execFileSync("tar", ["-tf", p], { encoding: "utf8" }).trim().split("\n");
    expect(names).toContain(`${longDir}/`);
    expect(names).toContain(`${longDir}/inner`);
    expect(names).toContain(nonAscii);
    expect(names).toContain(longName);
    expect(names).toContain(splittable);
    const verbose = execFileSync("tar", ["-tvf", p], { encoding: "utf8" });
    expect(verbose).toContain(`sym -> ${longLink}`);
    const items = await readTar(buf);
    const got = new Map(items.map((i) => [i.header.name, i]));
    expect(got.get(nonAscii)!.body.toString()).toBe("2");
    expect(got.get(longName)!.body.toString()).toBe("3");
    expect(got.get(splittable)!.body.toString()).toBe("4");
    expect(got.get("sym")!.header.linkname).toBe(longLink);
    const out = mkdtempSync(join(tmp, "longx-"));
    execFileSync("tar", ["-xf", p, "-C", out]);
    expect(readFileSync(join(out, longName), "utf8")).toBe("3");
    expect(readlinkSync(join(out, "sym"))).toBe(longLink);
  });

  it("writes xattrs as SCHILY.xattr records, binary-safe", async () => {
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0x00, 0x0a]);
    const buf = await collect(tarStream([file("bin/ping", "elf", { xattrs: { "security.capability": cap, "user.note": Buffer.from("hello") } })]));
    const items = await readTar(buf);
    expect(items[0]!.header.pax).toMatchObject({ "SCHILY.xattr.user.note": "hello" });
    // the binary value is stored byte for byte in the PAX record
    const record = Buffer.concat([Buffer.from(" SCHILY.xattr.security.capability="), cap, Buffer.from("\n")]);
    const len = record.length + 2; // a 2-digit length prefix counts itself
    expect(buf.indexOf(Buffer.concat([Buffer.from(String(len)), record]))).toBeGreaterThan(0);
    const p = join(tmp, "xattr.tar");
    writeFileSync(p, buf);
    const listing = execFileSync("tar", ["--xattrs", "--xattrs-include=*", "-tvvf", p], { encoding: "utf8" });
    expect(listing).toContain("x: 11 security.capability");
    expect(listing).toContain("x: 5 user.note");
  });

  it("uses PAX for big ids and keeps integer-second mtimes, clamped when asked", async () => {
    const entries = [
      file("big", "x", { uid: 3_000_000, gid: 70_000_000, mtime: 1_700_000_123.75 }),
      file("old", "y", { mtime: 1000.9 }),
    ];
    const items = await readTar(await collect(tarStream(entries)));
    const big = items.find((i) => i.header.name === "big")!.header;
    expect(big.pax).toMatchObject({ uid: "3000000", gid: "70000000" });
    const p = join(tmp, "ids.tar");
    writeFileSync(p, await collect(tarStream(entries)));
    expect(execFileSync("tar", ["--numeric-owner", "-tvf", p], { encoding: "utf8" })).toMatch(/^-rw-r--r-- 3000000\/70000000 +1 .* big$/m);
    expect(big.mtime!.getTime()).toBe(1_700_000_123_000);
    expect(big.pax).not.toHaveProperty("mtime");
    const clamped = await readTar(await collect(tarStream(entries, { clampMtime: 1_600_000_000 })));
    expect(clamped.find((i) => i.header.name === "big")!.header.mtime!.getTime()).toBe(1_600_000_000_000);
    expect(clamped.find((i) => i.header.name === "old")!.header.mtime!.getTime()).toBe(1_000_000);
  });

  it("writes devices and fifos", async () => {
    const buf = await collect(tarStream([
      { ...base, path: "dev/null", type: "char", mode: 0o666, devmajor: 1, devminor: 3 },
      { ...base, path: "dev/sda", type: "block", mode: 0o660, devmajor: 8, devminor: 0 },
      { ...base, path: "run/fifo", type: "fifo", mode: 0o600 },
    ]));
    const p = join(tmp, "dev.tar");
    writeFileSync(p, buf);
    const listing = execFileSync("tar", ["-tvf", p], { encoding: "utf8" });
    expect(listing).toMatch(/^crw-rw-rw- .* 1,3 .* dev\/null$/m);
    expect(listing).toMatch(/^brw-rw---- .* 8,0 .* dev\/sda$/m);
    expect(listing).toMatch(/^prw------- .* run\/fifo$/m);
  });
});

describe("tarStream content checks", () => {
  it("fails when content is shorter or longer than size", async () => {
    await expect(collect(tarStream([file("a", "abc", { size: 5 })]))).rejects.toThrow(/3 bytes, expected 5/);
    await expect(collect(tarStream([file("a", "abcdef", { size: 2 })]))).rejects.toThrow(/longer than its size 2/);
    await expect(collect(tarStream([{ ...base, path: "a", type: "file", size: 3 }]))).rejects.toThrow(/no content/);
    const missing = join(tmp, "does-not-exist");
    const { createReadStream } = await import("node:fs");
    await expect(collect(tarStream([{ ...base, path: "gone", type: "file", size: 3, open: () => createReadStream(missing) }])))
      .rejects.toThrow(/^layer: "gone": cannot read content: ENOENT/);
  });

  it("streams multi-chunk content with correct padding", async () => {
    const chunks = Array.from({ length: 50 }, (_, i) => Buffer.alloc(1000 + i, i));
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const buf = await collect(tarStream([{ ...base, path: "big", type: "file", size: total, open: () => Readable.from(chunks) }]));
    expect(buf.length % 512).toBe(0);
    const items = await readTar(buf);
    expect(items[0]!.body.equals(Buffer.concat(chunks))).toBe(true);
  });
});
