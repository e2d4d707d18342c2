// Round trip: change a tree, diff it, write the layer with writeLayer, apply it onto an untouched
// copy of the original tree — the copy must then equal the changed tree (content, types, modes,
// owners, link targets, hardlinks, file mtimes to the second — the tar writer stores whole
// seconds — and xattrs).
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createGunzip } from "node:zlib";
import { applyLayer } from "../../src/snapshot/apply-layer.js";
import { readXattrs } from "../../src/snapshot/xattr.js";
import { diffSnapshot, takeBaseline } from "../../src/snapshot/diff-lstat.js";
import { writeLayer } from "../../src/layer/write-layer.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { tempDir } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir("kiln-roundtrip-");
});
afterEach(() => t.cleanup());

function populate(root: string): void {
  mkdirSync(join(root, "etc/conf.d"), { recursive: true });
  mkdirSync(join(root, "usr/share/doc/pkg"), { recursive: true });
  mkdirSync(join(root, "var/cache"), { recursive: true });
  mkdirSync(join(root, "tmp"));
  chmodSync(join(root, "tmp"), 0o1777);
  writeFileSync(join(root, "etc/conf.d/a"), "a");
  writeFileSync(join(root, "etc/conf.d/b"), "b");
  writeFileSync(join(root, "usr/share/doc/pkg/README"), "readme");
  writeFileSync(join(root, "var/cache/x"), "x");
  writeFileSync(join(root, "etc/file-then-dir"), "f");
  symlinkSync("conf.d/a", join(root, "etc/link"));
}

async function describeTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const paths: string[] = [];
  const walk = (rel: string): void => {
    for (const n of readdirSync(rel === "" ? root : join(root, rel)).sort()) {
      const r = rel === "" ? n : `${rel}/${n}`;
      paths.push(r);
      if (lstatSync(join(root, r)).isDirectory()) walk(r);
    }
  };
  walk("");
  const xattrs = await readXattrs(paths.map((p) => join(root, p)));
  const inodes = new Map<number, string>();
  for (const p of paths) {
    const st = lstatSync(join(root, p));
    let desc = `${p} mode=${st.mode.toString(8)} ${st.uid}:${st.gid}`;
    if (st.isFile()) {
      desc += ` sha=${createHash("sha256").update(readFileSync(join(root, p))).digest("hex").slice(0, 12)} mtime=${Math.floor(st.mtimeMs / 1000)}`;
      if (st.nlink > 1) {
        const first = inodes.get(st.ino);
        if (first) desc += ` hardlink-of=${first}`;
        else inodes.set(st.ino, p);
      }
    }
    if (st.isSymbolicLink()) desc += ` -> ${readlinkSync(join(root, p))}`;
    const x = xattrs.get(join(root, p));
    if (x) desc += ` xattrs=${Object.entries(x).map(([k, v]) => `${k}:${v.toString("hex")}`).join(",")}`;
    out.push(desc);
  }
  return out;
}

describe("diff -> writeLayer -> applyLayer round trip", () => {
  it("reproduces every kind of change", async () => {
    const lower = join(t.dir, "lower");
    const work = join(t.dir, "work");
    mkdirSync(lower);
    mkdirSync(work);
    populate(lower);
    populate(work);
    const baseline = takeBaseline(work);

    // the "RUN"
    writeFileSync(join(work, "etc/conf.d/a"), "changed a");
    unlinkSync(join(work, "etc/conf.d/b"));
    rmSync(join(work, "usr/share/doc"), { recursive: true });
    renameSync(join(work, "var/cache"), join(t.dir, "moved-away"));
    mkdirSync(join(work, "var/cache"));
    writeFileSync(join(work, "var/cache/fresh"), "fresh");
    unlinkSync(join(work, "etc/file-then-dir"));
    mkdirSync(join(work, "etc/file-then-dir"));
    writeFileSync(join(work, "etc/file-then-dir/inner"), "in");
    mkdirSync(join(work, "opt/bin"), { recursive: true });
    writeFileSync(join(work, "opt/bin/tool"), "tool");
    chownSync(join(work, "opt/bin/tool"), 0, 0);
    execFileSync("setcap", ["cap_net_raw,cap_setfcap+ep", join(work, "opt/bin/tool")]);
    chmodSync(join(work, "opt/bin/tool"), 0o4755);
    linkSync(join(work, "opt/bin/tool"), join(work, "opt/bin/tool-alias"));
    writeFileSync(join(work, "opt/owned"), "o");
    chownSync(join(work, "opt/owned"), 1234, 5678);
    unlinkSync(join(work, "etc/link"));
    symlinkSync("/etc/conf.d/a", join(work, "etc/link"));
    chmodSync(join(work, "tmp"), 0o1777);

    const entries = await diffSnapshot(baseline);
    const store = new BlobStore(join(t.dir, "store"));
    const layer = await writeLayer(entries, store);
    await applyLayer(lower, store.open(layer.descriptor.digest).pipe(createGunzip()), { layerName: "roundtrip" });

    expect(await describeTree(lower)).toEqual(await describeTree(work));
    expect(await describeTree(lower)).toContain(
      `opt/bin/tool mode=104755 0:0 sha=${createHash("sha256").update("tool").digest("hex").slice(0, 12)} mtime=${Math.floor(lstatSync(join(work, "opt/bin/tool")).mtimeMs / 1000)} xattrs=security.capability:0100000200200080000000000000000000000000`,
    );
  });
});
