// The overlay snapshotter against the dir snapshotter: the same base layers and the same change
// must give the same layer entries (type, path, mode, owner, size, content, link, xattrs), with
// uppers on the scratch file system and on the host file system; layers are extracted once per
// diffID and shared; a step's own layer is frozen in place, not extracted; a RUN through a real
// runner keeps injected files out; dispose and cleanupStale leave no mount, loop device or tree.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  appendFileSync,
  chmodSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { gzipSync } from "node:zlib";
import { createOverlayRootFS } from "../../src/snapshot/overlay-rootfs.js";
import { cleanupStale, createDirRootFS, createRootFS, resolveSnapshotter, type RootFS, type RootFSLayer } from "../../src/snapshot/rootfs.js";
import { mountsUnder } from "../../src/snapshot/workdir.js";
import { writeXattrs } from "../../src/snapshot/xattr.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import { writeLayer } from "../../src/layer/write-layer.js";
import { createRunner } from "../../src/run/index.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { busyboxRoot, makeTar, tempDir, type TarSpec } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
beforeEach(() => {
  t = tempDir("kiln-overlay-");
});
afterEach(() => t.cleanup());

function layer(specs: TarSpec[], gzip = false): RootFSLayer {
  const tar = makeTar(specs);
  const diffID = `sha256:${createHash("sha256").update(tar).digest("hex")}` as RootFSLayer["diffID"];
  const blob = gzip ? gzipSync(tar) : tar;
  return { diffID, mediaType: `application/vnd.oci.image.layer.v1.tar${gzip ? "+gzip" : ""}`, open: () => Readable.from([blob]) };
}

// Two base layers: the second deletes a file and a directory of the first and makes one opaque.
const BASE = [
  layer(
    [
      { name: "etc/", type: "dir", mode: 0o755, mtime: 1_600_000_000 },
      { name: "etc/passwd", content: "root:x:0:0::/root:/bin/sh\n", mtime: 1_600_000_000 },
      { name: "etc/group", content: "root:x:0:\n", mtime: 1_600_000_000 },
      { name: "etc/a", content: "a\n", mtime: 1_600_000_000 },
      { name: "etc/gone", content: "g\n", mtime: 1_600_000_000 },
      { name: "etc/sub/", type: "dir", mode: 0o750, mtime: 1_600_000_000 },
      { name: "etc/sub/s1", content: "s1", mtime: 1_600_000_000 },
      { name: "data/", type: "dir", mode: 0o755, mtime: 1_600_000_000 },
      { name: "data/d1", content: "d1", mtime: 1_600_000_000 },
      { name: "data/d2", content: "d2", mtime: 1_600_000_000 },
      { name: "usr/", type: "dir", mode: 0o755, mtime: 1_600_000_000 },
      { name: "usr/bin/", type: "dir", mode: 0o755, mtime: 1_600_000_000 },
      { name: "usr/bin/tool", content: "#!tool", mode: 0o755, mtime: 1_600_000_000 },
      { name: "link", type: "symlink", linkname: "etc/a", mtime: 1_600_000_000 },
      { name: "hl1", content: "linked", mtime: 1_600_000_000 },
      { name: "hl2", type: "hardlink", linkname: "hl1" },
      { name: "emptydir/", type: "dir", mode: 0o700, mtime: 1_600_000_000 },
      { name: "tmp/", type: "dir", mode: 0o1777, mtime: 1_600_000_000 },
      { name: "proc/", type: "dir", mode: 0o555, mtime: 1_600_000_000 },
    ],
    true,
  ),
  layer([
    { name: "etc/", type: "dir", mode: 0o755, mtime: 1_600_000_100 },
    { name: "etc/.wh.gone" },
    { name: "etc/b", content: "b\n", mtime: 1_600_000_100 },
    { name: "etc/.wh.sub" },
    { name: "data/", type: "dir", mode: 0o755, mtime: 1_600_000_100 },
    { name: "data/.wh..wh..opq" },
    { name: "data/d3", content: "d3", mtime: 1_600_000_100 },
  ]),
];

/** Everything a layer records of an entry except its mtime (the runs happen at different times). */
async function describeEntries(entries: LayerEntry[]): Promise<string[]> {
  const out: string[] = [];
  for (const e of entries) {
    const content = e.open ? createHash("sha256").update(await buffer(e.open())).digest("hex").slice(0, 12) : "-";
    const x = Object.entries(e.xattrs ?? {})
      .map(([k, v]) => `${k}=${v.toString("hex")}`)
      .join(",");
    out.push(`${e.type} ${e.path} ${e.mode.toString(8)} ${e.uid}:${e.gid} ${e.size} ${e.linkname ?? "-"} ${content} ${x}`);
  }
  return out;
}

type Kind = "dir" | "overlay" | "overlay-on-host";

async function make(kind: Kind, cacheDir: string): Promise<RootFS> {
  if (kind === "dir") return createDirRootFS(cacheDir);
  return createOverlayRootFS(cacheDir, { scratch: kind === "overlay" });
}

/** Apply the base, run `change` on the root between beginStep and changes, describe the entries. */
async function snapshotOf(kind: Kind, change: (root: string) => void | Promise<void>): Promise<string[]> {
  const rootfs = await make(kind, join(t.dir, `cache-${kind}`));
  try {
    await rootfs.applyLayers(BASE);
    const step = await rootfs.beginStep();
    await change(rootfs.dir);
    return await describeEntries(await step.changes());
  } finally {
    await rootfs.dispose();
  }
}

const CHANGES: Record<string, (root: string) => void | Promise<void>> = {
  "nothing changed": () => undefined,
  "new files and directories": (r) => {
    writeFileSync(join(r, "new.txt"), "new");
    mkdirSync(join(r, "opt/app/bin"), { recursive: true });
    writeFileSync(join(r, "opt/app/bin/run"), "#!run", { mode: 0o755 });
    writeFileSync(join(r, "etc/c"), "c");
  },
  "a lower file modified and one of each layer deleted": (r) => {
    appendFileSync(join(r, "etc/a"), "more\n");
    unlinkSync(join(r, "etc/b"));
    unlinkSync(join(r, "etc/passwd"));
  },
  "a lower directory deleted, another removed and recreated": (r) => {
    rmSync(join(r, "usr/bin"), { recursive: true });
    rmSync(join(r, "data"), { recursive: true });
    mkdirSync(join(r, "data"));
    writeFileSync(join(r, "data/fresh"), "fresh");
  },
  "file, directory and symlink swapped": (r) => {
    unlinkSync(join(r, "etc/a"));
    mkdirSync(join(r, "etc/a"));
    writeFileSync(join(r, "etc/a/inside"), "i");
    unlinkSync(join(r, "link"));
    writeFileSync(join(r, "link"), "now a file");
    rmSync(join(r, "emptydir"), { recursive: true });
    symlinkSync("/etc", join(r, "emptydir"));
  },
  "mode, owner, mtime and xattr changes only": async (r) => {
    chmodSync(join(r, "etc/group"), 0o600);
    lchownSync(join(r, "usr/bin/tool"), 5, 6);
    utimesSync(join(r, "etc/b"), 1_700_000_000, 1_700_000_000);
    chmodSync(join(r, "data"), 0o700);
    await writeXattrs([{ path: join(r, "etc/a"), xattrs: { "user.kiln": Buffer.from("v") } }]);
  },
  "hard links: new ones, and one to a lower file": (r) => {
    writeFileSync(join(r, "x"), "x");
    linkSync(join(r, "x"), join(r, "y"));
    linkSync(join(r, "etc/group"), join(r, "g2"));
  },
  "created and removed within the step; a whited-out name recreated": (r) => {
    writeFileSync(join(r, "etc/tmpfile"), "t");
    unlinkSync(join(r, "etc/tmpfile"));
    mkdirSync(join(r, "scratch/deep"), { recursive: true });
    writeFileSync(join(r, "scratch/deep/f"), "f");
    rmSync(join(r, "scratch/deep"), { recursive: true });
    writeFileSync(join(r, "etc/gone"), "back");
  },
  "renames and excluded paths": (r) => {
    renameSync(join(r, "etc/b"), join(r, "etc/b2"));
    renameSync(join(r, "data/d3"), join(r, "tmp/d3"));
    writeFileSync(join(r, "etc/hosts"), "127.0.0.1 injected\n");
    writeFileSync(join(r, "proc/junk"), "j");
  },
  // apt rewrites its unchanged InRelease so; `cp -p` of a file onto itself's copy likewise
  "files rewritten with identical bytes: a new mtime; the same mtime in place and by rename": (r) => rewriteIdentical(r),
};

/** etc/group rewritten as it was (new mtime); etc/a and etc/passwd too, with their mtimes put back (in place; by rename). */
function rewriteIdentical(r: string): void {
  writeFileSync(join(r, "etc/group"), readFileSync(join(r, "etc/group")));
  const inPlace = join(r, "etc/a");
  const st = lstatSync(inPlace);
  writeFileSync(inPlace, readFileSync(inPlace));
  utimesSync(inPlace, st.atime, st.mtime);
  const target = join(r, "etc/passwd");
  const pst = lstatSync(target);
  writeFileSync(join(r, "etc/passwd.new"), readFileSync(target));
  utimesSync(join(r, "etc/passwd.new"), pst.atime, pst.mtime);
  renameSync(join(r, "etc/passwd.new"), target);
}

describe("overlay snapshotter", () => {
  it("is what auto picks here (root, overlayfs), and dir when asked", async () => {
    expect(process.getuid?.(), "the overlay snapshotter tests need root").toBe(0);
    expect(await resolveSnapshotter(t.dir)).toEqual({ snapshotter: "overlay" });
    expect(await resolveSnapshotter(t.dir, "dir")).toEqual({ snapshotter: "dir" });
  });

  for (const [name, change] of Object.entries(CHANGES)) {
    it(`gives the dir snapshotter's entries: ${name}`, async () => {
      const dir = await snapshotOf("dir", change);
      expect(await snapshotOf("overlay", change)).toEqual(dir);
      expect(await snapshotOf("overlay-on-host", change)).toEqual(dir);
      if (name === "nothing changed") expect(dir).toEqual([]);
      else expect(dir.length).toBeGreaterThan(0);
    });
  }

  it("leaves out a file rewritten with identical bytes and its old mtime (as Docker's and buildah's differs), keeps one with a new mtime", async () => {
    const entries = (await snapshotOf("dir", rewriteIdentical)).map((l) => l.split(" ").slice(0, 2).join(" "));
    expect(entries).toEqual(["dir etc", "file etc/group"]);
    expect((await snapshotOf("overlay", rewriteIdentical)).map((l) => l.split(" ").slice(0, 2).join(" "))).toEqual(entries);
  });

  it("splits a lower link group on write, as Docker's overlay2 does (the dir snapshotter keeps it)", async () => {
    const change = (r: string): void => appendFileSync(join(r, "hl1"), "+");
    expect((await snapshotOf("dir", change)).map((l) => l.split(" ").slice(0, 2).join(" "))).toEqual(["file hl1", "hardlink hl2"]);
    const overlay = await snapshotOf("overlay", change);
    expect(overlay.map((l) => l.split(" ").slice(0, 2).join(" "))).toEqual(["file hl1"]);
    expect(overlay[0]).toContain(" 7 "); // "linked+"
  });

  it("records whiteouts and opaque directories as overlayfs does, and the merged tree is the layers' union", async () => {
    const cache = join(t.dir, "cache");
    const rootfs = await createRootFS(cache, { snapshotter: "overlay" });
    try {
      await rootfs.applyLayers(BASE);
      expect(readdirSync(join(rootfs.dir, "etc")).sort()).toEqual(["a", "b", "group", "passwd"]);
      expect(readdirSync(join(rootfs.dir, "data"))).toEqual(["d3"]);
      expect(statSync(join(rootfs.dir, "hl1")).ino).toBe(statSync(join(rootfs.dir, "hl2")).ino);
      const second = join(cache, "layers", BASE[1]!.diffID.slice(7), "root");
      const wh = lstatSync(join(second, "etc/gone"));
      expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
      const opq = execFileSync("getfattr", ["--absolute-names", "-n", "trusted.overlay.opaque", "--only-values", join(second, "data")], { encoding: "utf8" });
      expect(opq).toBe("y");
    } finally {
      await rootfs.dispose();
    }
  });

  it("keeps a later layer's write under an earlier layer's escaping symlink inside the root", async () => {
    const outside = join(t.dir, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, "sentinel"), "untouched");
    const rootfs = await createRootFS(join(t.dir, "cache"), { snapshotter: "overlay" });
    try {
      await rootfs.applyLayers([
        layer([{ name: "etc", type: "symlink", linkname: outside }, { name: "abs", type: "symlink", linkname: "/" }]),
        layer([{ name: "etc/sentinel", content: "evil" }, { name: "abs/etc/x", content: "x" }]),
      ]);
      expect(readFileSync(join(outside, "sentinel"), "utf8")).toBe("untouched");
      expect(readdirSync(outside)).toEqual(["sentinel"]);
      // as under Docker's overlay2: the later layer's directory hides the earlier symlink
      expect(lstatSync(join(rootfs.dir, "etc")).isDirectory()).toBe(true);
      expect(readFileSync(join(rootfs.dir, "etc/sentinel"), "utf8")).toBe("evil");
    } finally {
      await rootfs.dispose();
    }
  });

  it("extracts a layer once per diffID and shares it between root filesystems", async () => {
    const cache = join(t.dir, "cache");
    const a = await createRootFS(cache, { snapshotter: "overlay" });
    const b = await createRootFS(cache, { snapshotter: "overlay" });
    try {
      await a.applyLayers(BASE);
      const dir = join(cache, "layers", BASE[0]!.diffID.slice(7), "root");
      const ino = statSync(join(dir, "etc/passwd")).ino;
      let opened = 0;
      await b.applyLayers(BASE.map((l) => ({ ...l, open: () => (opened++, l.open()) })));
      expect(opened).toBe(0);
      expect(statSync(join(dir, "etc/passwd")).ino).toBe(ino);
      expect(readFileSync(join(b.dir, "etc/b"), "utf8")).toBe("b\n");
      // both merged views are live at once
      writeFileSync(join(a.dir, "only-a"), "a");
      expect(existsSync(join(b.dir, "only-a"))).toBe(false);
    } finally {
      await a.dispose();
      await b.dispose();
    }
    expect(readdirSync(join(cache, "layers")).sort()).toEqual(BASE.map((l) => l.diffID.slice(7)).sort());
  });

  it("keeps a step's upper as its layer instead of extracting it, and later steps see it", async () => {
    const cache = join(t.dir, "cache");
    const store = new BlobStore(join(t.dir, "store"));
    const rootfs = await createRootFS(cache, { snapshotter: "overlay" });
    try {
      await rootfs.applyLayers(BASE);
      const step = await rootfs.beginStep();
      writeFileSync(join(rootfs.dir, "etc/made"), "by step 1");
      unlinkSync(join(rootfs.dir, "etc/a"));
      const entries = await step.changes();
      const written = await writeLayer(entries, store);
      let opened = 0;
      const open = () => (opened++, store.open(written.descriptor.digest));
      // recognised by the entries it was written from: not even read
      await rootfs.applyLayer({ diffID: written.diffID, mediaType: written.descriptor.mediaType, open, snapshot: entries });
      expect(opened).toBe(0);
      expect(existsSync(join(cache, "layers", written.diffID.slice(7)))).toBe(false);
      const step2 = await rootfs.beginStep();
      expect(readFileSync(join(rootfs.dir, "etc/made"), "utf8")).toBe("by step 1");
      expect(existsSync(join(rootfs.dir, "etc/a"))).toBe(false);
      writeFileSync(join(rootfs.dir, "etc/made"), "by step 2");
      const second = await describeEntries(await step2.changes());
      expect(second.map((l) => l.split(" ").slice(0, 2).join(" "))).toEqual(["dir etc", "file etc/made"]);
    } finally {
      await rootfs.dispose();
    }
  });

  for (const [isolation, runtime] of [["chroot", undefined], ["oci", "crun"], ["oci", "runc"]] as const) {
    it(`runs a RUN with ${runtime ?? isolation} on the merged root; injected files and mount points stay out of the layer`, async () => {
      const cache = join(t.dir, "cache");
      const bb = join(t.dir, "bb");
      busyboxRoot(bb);
      const tar = execFileSync("tar", ["-C", bb, "-c", "."], { maxBuffer: 64 << 20 });
      const base: RootFSLayer = {
        diffID: `sha256:${createHash("sha256").update(tar).digest("hex")}` as RootFSLayer["diffID"],
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        open: () => Readable.from([tar]),
      };
      const rootfs = await createRootFS(cache, { snapshotter: "overlay" });
      try {
        await rootfs.applyLayers([base]);
        const runner = await createRunner(isolation, { workDir: join(t.dir, "run"), ...(runtime ? { runtime } : {}) });
        const step = await rootfs.beginStep();
        const ok = await runner.run({
          rootfs: rootfs.dir,
          argv: ["/bin/sh", "-c", "echo hi > /etc/greeting && rm /etc/group && ! { echo junk >> /etc/hosts; } 2>/dev/null && mkdir -p /home/app/x && chown 1000 /home/app/x"],
          env: ["PATH=/bin"],
          cwd: "/",
          user: "root",
          network: "none",
        });
        expect(ok.exitCode, ok.outputTail).toBe(0);
        const entries = await step.changes();
        expect(entries.map((e) => `${e.type} ${e.path} ${e.uid}`)).toEqual([
          "dir etc 0",
          "file etc/.wh.group 0",
          "file etc/greeting 0",
          "dir home 0",
          "dir home/app 1000",
          "dir home/app/x 1000",
        ]);
      } finally {
        await rootfs.dispose();
      }
    });
  }

  it("dispose leaves no mount, loop device or directory behind", async () => {
    const cache = join(t.dir, "cache");
    const rootfs = await createRootFS(cache, { snapshotter: "overlay" });
    await rootfs.applyLayers(BASE);
    expect(mountsUnder(join(cache, "rootfs")).length, "a tree only read gets no scratch file system").toBe(1);
    const step = await rootfs.beginStep();
    writeFileSync(join(rootfs.dir, "f"), "f");
    await step.changes();
    expect(mountsUnder(join(cache, "rootfs")).length, "the merged view and the scratch file system (loop device, mkfs.ext4) are mounted").toBeGreaterThanOrEqual(2);
    await rootfs.dispose();
    expect(mountsUnder(cache)).toEqual([]);
    expect(readdirSync(join(cache, "rootfs"))).toEqual([]);
    // the loop device autoclears once no mount namespace holds the scratch file system: a RUN of
    // another test running meanwhile (its namespace copied the host's mounts) may hold it briefly
    const deadline = Date.now() + 15_000;
    while (execFileSync("losetup", ["-a"], { encoding: "utf8" }).includes(resolve(cache)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(execFileSync("losetup", ["-a"], { encoding: "utf8" })).not.toContain(resolve(cache));
  });

  it("cleanupStale removes the mounts and trees of a SIGKILLed build", async () => {
    const cache = join(t.dir, "cache");
    const src = resolve("dist/snapshot/rootfs.js"); // compiled by the test command before vitest runs
    // a child process mounts a root filesystem, reports, then is killed
    const code = `
      import { createRootFS } from ${JSON.stringify(src)};
      const fs = await createRootFS(${JSON.stringify(cache)}, { snapshotter: "overlay" });
      await fs.applyLayers([]);
      await fs.beginStep();
      console.log(fs.dir);
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
    const dir = await new Promise<string>((res, rej) => {
      child.stdout.on("data", (b: Buffer) => res(b.toString().trim()));
      child.on("exit", (c) => rej(new Error(`child exited ${c}`)));
    });
    expect(mountsUnder(dir)).toEqual([dir]);
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const removed = await cleanupStale(cache);
    expect(removed.length).toBe(1);
    expect(mountsUnder(cache)).toEqual([]);
    expect(readdirSync(join(cache, "rootfs"))).toEqual([]);
  });
});
