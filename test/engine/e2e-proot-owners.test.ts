// Owners a non-root proot step sets (issue #12): kiln as uid 1000 (a `runAsUser: 1000` pod)
// runs the step under fakeroot, and the layer records the owners the step's chown set (100:101,
// 7:8 below a directory), a chown of a file from an earlier layer, a chmod, and a mknod'd device
// — the entries root's build with the chroot isolation gives. In an image that cannot load
// fakeroot (a static busybox), a chown to another id fails the step with a clear error; a
// chown to root still works.
import { execFileSync } from "node:child_process";
import { chmod, chown, cp, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KILN_BIN, expectBuilt, run } from "../helpers/kiln.js";
import { listLayer } from "../helpers/layer-tar.js";
import { TempDirs } from "../helpers/temp.js";
import { readFile } from "node:fs/promises";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

let dir: string;
let home: string;

async function layers(layout: string) {
  const blob = (d: string) => join(layout, "blobs", "sha256", d.slice("sha256:".length));
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
  const m = JSON.parse(await readFile(blob(index.manifests[0]!.digest), "utf8")) as { layers: Array<{ digest: string }> };
  return Promise.all(m.layers.map((l) => listLayer(blob(l.digest))));
}

/** A glibc root file system made of the host's dash, coreutils and their libraries. */
async function glibcTree(root: string): Promise<void> {
  const bins = ["/bin/dash", "/bin/chown", "/bin/chmod", "/bin/mkdir", "/bin/touch", "/bin/mknod"];
  const files = new Set<string>(bins);
  for (const b of bins) {
    for (const line of execFileSync("ldd", [b], { encoding: "utf8" }).split("\n")) {
      const m = /(\/\S+) \(0x/.exec(line) ?? /^\s*(\/\S+) \(/.exec(line);
      if (m) files.add(m[1]!);
    }
  }
  for (const f of files) {
    const real = execFileSync("realpath", [f], { encoding: "utf8" }).trim();
    await mkdir(join(root, dirname(f)), { recursive: true });
    await cp(real, join(root, f));
  }
  execFileSync("ln", ["-s", "dash", join(root, "bin/sh")]);
}

async function context(name: string, files: Record<string, string>, tree?: (ctx: string) => Promise<void>): Promise<string> {
  const ctx = join(dir, `ctx-${name}`);
  await mkdir(ctx, { recursive: true });
  for (const [f, text] of Object.entries(files)) await writeFile(join(ctx, f), text);
  if (tree) await tree(ctx);
  execFileSync("chmod", ["-R", "a+rX", ctx]);
  return ctx;
}

async function build(name: string, ctx: string, uid: number | undefined, isolation: string) {
  const base = uid === undefined ? dir : home;
  const out = join(base, `out-${name}`);
  const args = [KILN_BIN, "build", "--progress", "plain", "--isolation", isolation, "--snapshotter", "dir", "--cache-dir", join(base, `cache-${name}`), "-o", `type=oci,dest=${out}`, ctx];
  const r = await run(process.execPath, args, { env: { SOURCE_DATE_EPOCH: "1700000000", HOME: home }, ...(uid !== undefined ? { asUid: uid } : {}), cwd: home });
  return { out, r };
}

beforeAll(async () => {
  dir = await temps.make("kiln-proot-owners-");
  await chmod(dir, 0o755);
  home = join(dir, "home");
  await mkdir(home);
  await chown(home, 1000, 1000);
});

describe("kiln build --isolation proot as uid 1000: owners the step sets", () => {
  it("records the chown'd, chmod'ed and mknod'ed entries a root build records (fakeroot in a glibc image)", async () => {
    const ctx = await context("glibc", {
      Dockerfile: [
        "FROM scratch",
        "COPY root/ /",
        "COPY old /old",
        "RUN touch f && mkdir -p d/e && touch d/e/x && chown 100:101 f && chown -R 7:8 d && chmod 750 d/e && chown 5:6 /old && mknod /n c 1 3 && chown 0:9 /n",
        "",
      ].join("\n"),
      old: "from an earlier layer\n",
    }, (c) => glibcTree(join(c, "root")));
    const pod = await build("glibc-pod", ctx, 1000, "proot");
    expectBuilt(pod.r);
    expect(pod.r.stderr).toContain("isolation: proot (requested)");
    expect(pod.r.stderr).not.toContain("fakeroot cannot record");
    const got = await layers(pod.out);
    const runLayer = got[2]!;
    expect(runLayer.map((e) => [e.name, e.type, e.uid, e.gid, e.mode & 0o7777])).toEqual([
      ["d/", "directory", 7, 8, 0o755],
      ["d/e/", "directory", 7, 8, 0o750],
      ["d/e/x", "file", 7, 8, 0o644],
      ["f", "file", 100, 101, 0o644],
      ["n", "character-device", 0, 9, 0o644],
      ["old", "file", 5, 6, 0o644],
    ]);
    const host = await build("glibc-host", ctx, undefined, "chroot");
    expectBuilt(host.r);
    expect(runLayer).toEqual((await layers(host.out))[2]);
  }, 180_000);

  it("fails a chown to another id where the image cannot load fakeroot (static busybox); a chown to root works", async () => {
    const files = (run: string) => ({ Dockerfile: `FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nRUN ${run}\n` });
    const copyBusybox = async (c: string) => execFileSync("cp", ["/bin/busybox", join(c, "busybox")]);
    const ok = await build("static-root", await context("static-root", files("touch /f && chown 0:0 /f && echo done"), copyBusybox), 1000, "proot");
    expectBuilt(ok.r);
    expect(ok.r.stderr).toContain("kiln: proot: fakeroot cannot record owners in this image (the image has no glibc loader /lib64/ld-linux-x86-64.so.2): a chown to another id fails the step");
    expect(ok.r.stderr).not.toContain("proot info:");
    expect(ok.r.stderr).toContain("done");
    const bad = await build("static-other", await context("static-other", files("touch /f && chown 100:101 /f"), copyBusybox), 1000, "proot");
    expect(bad.r.code).toBe(1);
    expect(bad.r.stderr).toMatch(/^error: Dockerfile:4: RUN: (l|f)?chown(at)? to uid 100, gid 101 cannot be recorded by isolation "proot" as non-root: the image has no glibc loader \/lib64\/ld-linux-x86-64\.so\.2, and fakeroot needs a glibc image of the host's platform \(run kiln as root, or where another isolation works\)$/m);
    expect(bad.r.stderr).not.toContain("proot info:");
  }, 180_000);
});
