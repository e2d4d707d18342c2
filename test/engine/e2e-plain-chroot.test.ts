// RUN with --isolation plain-chroot (no namespaces, no mount; issue #12) on this host: the RUN
// works in a busybox base, its files land in the layer, the /etc files and /dev nodes kiln wrote
// do not, the double-chroot escape from a static helper gets EPERM with SYS_CHROOT gone from the
// effective and bounding sets and no_new_privs set, and the layers equal those of the namespaced
// chroot isolation entry by entry. Under a root without CAP_SYS_ADMIN (unshare refused, as in a
// pod), auto picks plain-chroot and records it, and an explicit chroot is a one-line error before any work.
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTar } from "../snapshot/helpers.js";
import { writeHandLayout, type HandLayout } from "../helpers/hand-layout.js";
import { KILN_BIN, expectBuilt, run } from "../helpers/kiln.js";
import { listLayer } from "../helpers/layer-tar.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const ESCAPE_C = new URL("../run/fixtures/escape.c", import.meta.url).pathname;
const APPLETS = ["cat", "ls", "grep", "echo", "mkdir", "touch", "test", "chmod", "rm", "sleep"];
let dir: string;
let base: HandLayout;

async function manifestLayers(layout: string): Promise<string[]> {
  const blob = (d: string) => join(layout, "blobs", "sha256", d.slice("sha256:".length));
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
  const m = JSON.parse(await readFile(blob(index.manifests[0]!.digest), "utf8")) as { layers: Array<{ digest: string }> };
  return m.layers.map((l) => join(layout, "blobs", "sha256", l.digest.slice("sha256:".length)));
}

beforeAll(async () => {
  dir = await temps.make("kiln-plain-chroot-");
  // the helper must exist: no skipping when gcc or a static libc is missing
  execFileSync("gcc", ["-static", "-O2", "-o", join(dir, "escape"), ESCAPE_C]);
  base = await writeHandLayout(join(dir, "base"), [
    makeTar([
      { name: "bin/", type: "dir" },
      { name: "bin/busybox", content: await readFile("/bin/busybox"), mode: 0o755 },
      { name: "bin/sh", type: "symlink", linkname: "busybox" },
      ...APPLETS.map((a) => ({ name: `bin/${a}`, type: "symlink" as const, linkname: "busybox" })),
      { name: "etc/", type: "dir" },
      { name: "etc/hosts", content: "10.9.9.9 from-the-image\n", mode: 0o644 },
      { name: "dev/", type: "dir" },
      { name: "tmp/", type: "dir", mode: 0o1777 },
      { name: "escape", content: await readFile(join(dir, "escape")), mode: 0o755 },
    ]),
  ]);
});

async function build(name: string, dockerfile: string, isolation: string, restrict = false) {
  const ctx = join(dir, `ctx-${name}`);
  await mkdir(ctx, { recursive: true });
  await writeFile(join(ctx, "Dockerfile"), dockerfile);
  const layout = join(dir, `out-${name}`);
  const meta = join(dir, `meta-${name}.json`);
  const args = [KILN_BIN, "build", "--progress", "plain", "--isolation", isolation, "--metadata-file", meta, "--cache-dir", join(dir, `cache-${name}`), "--build-context", `base=${base.ref}`, "-o", `type=oci,dest=${layout}`, "-t", "p:latest", ctx];
  // a root without CAP_SYS_ADMIN: unshare and mount are refused, as in a pod with default caps
  const r = restrict
    ? await run("setpriv", ["--bounding-set", "-sys_admin", "--", process.execPath, ...args], { env: { SOURCE_DATE_EPOCH: "1700000000" } })
    : await run(process.execPath, args, { env: { SOURCE_DATE_EPOCH: "1700000000" } });
  return { r, layout, meta };
}

const STEPS = [
  "FROM base",
  "RUN echo hi > /hello && mkdir -p /data && echo x > /dev/null && cat /etc/hosts > /data/hosts-seen",
  "WORKDIR /work",
  "RUN /escape > /work/escape.txt && ls -a / > /work/root-listing",
].join("\n") + "\n";

describe("kiln build --isolation plain-chroot", () => {
  it("runs the steps, keeps kiln's own files out of the layers, and the chroot escape fails", async () => {
    const { r, layout, meta } = await build("plain", STEPS, "plain-chroot");
    expectBuilt(r);
    expect(r.stderr).toContain("isolation: plain-chroot (requested)");
    expect(JSON.parse(await readFile(meta, "utf8"))["kiln.isolation"]).toBe("plain-chroot");
    const layers = await manifestLayers(layout);
    const first = (await listLayer(layers[1]!)).map((e) => e.name);
    expect(first).toEqual(["data/", "data/hosts-seen", "hello"]);
    expect(layers).toHaveLength(4); // base, RUN, WORKDIR (creates /work), RUN
    const second = (await listLayer(layers[3]!)).map((e) => e.name);
    expect(second).toEqual(["tmp/", "work/", "work/escape.txt", "work/root-listing"]); // tmp/: the helper made and removed a directory there
    expect(second.some((n) => n.startsWith("dev") || n.startsWith("etc") || n.startsWith(".kiln"))).toBe(false);
    // read the files back out of the image
    const unpacked = join(dir, "unpacked");
    await mkdir(unpacked);
    for (const l of layers) execFileSync("tar", ["-xzf", l, "-C", unpacked]);
    expect(await readFile(join(unpacked, "data/hosts-seen"), "utf8")).toContain("localhost");
    expect(await readFile(join(unpacked, "etc/hosts"), "utf8")).toBe("10.9.9.9 from-the-image\n");
    const escape = await readFile(join(unpacked, "work/escape.txt"), "utf8");
    expect(escape).toContain("eff_chroot=0 bnd_chroot=0 eff_mknod=0 nnp=1 uid=0");
    expect(escape).toContain("chroot: Operation not permitted");
    const listing = (await readFile(join(unpacked, "work/root-listing"), "utf8")).split("\n");
    expect(listing).toContain(".kiln-run"); // the stub was there during the step, and is not in any layer
  });

  it("fails a step that writes /etc/hosts (read-only under BuildKit); reading the /etc files works", async () => {
    const { r } = await build("etc-ro", "FROM base\nRUN echo 1.2.3.4 db >> /etc/hosts\n", "plain-chroot");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Dockerfile:2: .*the step wrote \/etc\/hosts, which is read-only during RUN/);
    const ok = await build("etc-ro-read", "FROM base\nRUN cat /etc/hosts /etc/resolv.conf > /seen\n", "plain-chroot");
    expectBuilt(ok.r);
  });

  it("runs a USER step as that user, with no capabilities and the escape refused", async () => {
    const { r, layout } = await build("user", "FROM base\nUSER 1000:1000\nRUN /escape > /tmp/as-user.txt\n", "plain-chroot");
    expectBuilt(r);
    const layers = await manifestLayers(layout);
    const entries = await listLayer(layers[1]!);
    expect(entries.map((e) => [e.name, e.uid, e.gid])).toEqual([["tmp/", 0, 0], ["tmp/as-user.txt", 1000, 1000]]);
    const out = join(dir, "unpacked-user");
    await mkdir(out);
    execFileSync("tar", ["-xzf", layers[1]!, "-C", out]);
    const text = await readFile(join(out, "tmp/as-user.txt"), "utf8");
    expect(text).toContain("eff_chroot=0 bnd_chroot=0 eff_mknod=0 nnp=1 uid=1000");
    expect(text).toContain("chroot: Operation not permitted");
  });

  it("places RUN mounts and heredoc scripts as copies, removed after the step; ends what the step left running", async () => {
    const df = [
      "# syntax=docker/dockerfile:1",
      "FROM base",
      "RUN --mount=type=bind,source=.,target=/ctx --mount=type=tmpfs,target=/scratch cat /ctx/Dockerfile > /seen && touch /scratch/x && echo changed > /ctx/Dockerfile",
      "RUN <<EOF",
      "#!/bin/sh",
      "echo from-heredoc > /hd",
      "EOF",
      "RUN (sleep 30; echo late > /late) > /dev/null 2>&1 &",
      "RUN --mount=type=bind,source=.,target=/etc echo never",
    ].join("\n") + "\n";
    const { r } = await build("mounts", df, "plain-chroot");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--mount=type=bind,source=.,target=/etc: isolation "plain-chroot" cannot mount over /etc, which exists in the image');
    const started = Date.now();
    const ok = await build("mounts-ok", df.replace(/RUN --mount=type=bind,source=\.,target=\/etc echo never\n/, ""), "plain-chroot");
    expectBuilt(ok.r);
    expect(Date.now() - started).toBeLessThan(20_000); // the background sleep did not hold the step
    const layers = await manifestLayers(ok.layout);
    const names = await Promise.all(layers.slice(1).map(async (l) => (await listLayer(l)).map((e) => e.name)));
    expect(names).toEqual([["seen"], ["hd"]]); // the third RUN's layer is empty; /late never came
    expect(await readFile(join(dir, "ctx-mounts-ok", "Dockerfile"), "utf8")).toContain("FROM base"); // the source is untouched
    const unpacked = join(dir, "unpacked-mounts");
    await mkdir(unpacked);
    for (const l of layers) execFileSync("tar", ["-xzf", l, "-C", unpacked]);
    expect(await readFile(join(unpacked, "hd"), "utf8")).toBe("from-heredoc\n");
  });

  it("runs a step that names /proc under proot, with /proc", async () => {
    const { r, layout } = await build("proc", "FROM base\nRUN grep -c ^Cap /proc/self/status > /cap-lines\n", "plain-chroot");
    expectBuilt(r);
    expect(r.stderr).toContain("kiln: plain-chroot has no /proc and this step names it: running it under proot");
    const layers = await manifestLayers(layout);
    const out = join(dir, "unpacked-proc");
    await mkdir(out);
    for (const l of layers) execFileSync("tar", ["-xzf", l, "-C", out]);
    expect(await readFile(join(out, "cap-lines"), "utf8")).toBe("5\n");
    expect((await listLayer(layers[1]!)).map((e) => e.name)).toEqual(["cap-lines"]);
  });

  it("gives the same layers as the namespaced chroot isolation, entry by entry", async () => {
    const df = "FROM base\nRUN mkdir -p /a/b && echo one > /a/b/f && chmod 640 /a/b/f && rm /bin/rm && touch /tmp/t\n";
    const plain = await build("eq-plain", df, "plain-chroot");
    const chroot = await build("eq-chroot", df, "chroot");
    expectBuilt(plain.r);
    expectBuilt(chroot.r);
    const entries = async (layout: string) => Promise.all((await manifestLayers(layout)).map((l) => listLayer(l)));
    const a = await entries(plain.layout);
    expect(a[1]!.map((e) => e.name)).toEqual(["a/", "a/b/", "a/b/f", "bin/", "bin/.wh.rm", "tmp/", "tmp/t"]);
    expect(a).toEqual(await entries(chroot.layout));
  });

  it("is what auto picks for a root without CAP_SYS_ADMIN; an explicit chroot fails there before any work", async () => {
    const ok = await build("auto", "FROM base\nRUN echo hi > /hi\n", "auto", true);
    expectBuilt(ok.r);
    expect(ok.r.stderr).toMatch(/isolation: plain-chroot \(oci: the OCI runtime cannot start a container \(.*\); chroot: unshare of a mount and pid namespace is refused/);
    expect(JSON.parse(await readFile(ok.meta, "utf8"))["kiln.isolation"]).toBe("plain-chroot");
    const bad = await build("explicit", "FROM base\nRUN echo hi > /hi\n", "chroot", true);
    expect(bad.r.code).toBe(1);
    const lines = bad.r.stderr.trim().split("\n").filter((l) => l.includes("isolation"));
    expect(lines.at(-1)).toMatch(/isolation "chroot" cannot work here: unshare of a mount and pid namespace is refused \(.*Operation not permitted/);
    expect(bad.r.stderr).not.toMatch(/base|extract|layer/i);
  });

  it("runs no preflight for a build without RUN", async () => {
    const r = await build("copy-only", "FROM scratch\nCOPY Dockerfile /\n", "chroot", true);
    expectBuilt(r.r);
    expect(r.r.stderr).not.toContain("isolation");
    expect(JSON.parse(await readFile(r.meta, "utf8"))["kiln.isolation"]).toBeUndefined();
  });
});
