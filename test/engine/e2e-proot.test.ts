// RUN with --isolation proot as a non-root kiln (uid 1000, as in a `runAsUser: 1000` pod; issue
// #12): the steps run under proot's fake root, /proc and /dev/null work, and the layers record
// the files as owned by root inside the image, not by the pod's uid — the same entries as root's
// build with the chroot isolation.
import { execFileSync } from "node:child_process";
import { chmod, chown, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { KILN_BIN, expectBuilt, run } from "../helpers/kiln.js";
import { listLayer } from "../helpers/layer-tar.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const DOCKERFILE = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /data/sub && echo hi > /data/sub/f && chmod 640 /data/sub/f && ln -s f /data/sub/l \\
 && test -r /proc/self/status && echo x > /dev/null && id -u > /data/uid
`;

async function layers(layout: string) {
  const blob = (d: string) => join(layout, "blobs", "sha256", d.slice("sha256:".length));
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
  const m = JSON.parse(await readFile(blob(index.manifests[0]!.digest), "utf8")) as { layers: Array<{ digest: string }> };
  return Promise.all(m.layers.map((l) => listLayer(blob(l.digest))));
}

describe("kiln build --isolation proot as uid 1000", () => {
  it("runs the steps and records root, not the pod's uid, as the owner", async () => {
    const dir = await temps.make("kiln-proot-");
    await chmod(dir, 0o755);
    const ctx = join(dir, "ctx");
    await mkdir(ctx);
    execFileSync("cp", ["/bin/busybox", join(ctx, "busybox")]);
    await writeFile(join(ctx, "Dockerfile"), DOCKERFILE);
    execFileSync("chmod", ["-R", "a+rX", ctx]);
    const home = join(dir, "home");
    await mkdir(home);
    await chown(home, 1000, 1000);
    const build = async (name: string, uid: number | undefined, isolation: string) => {
      const out = join(uid === undefined ? dir : home, `out-${name}`);
      const args = [KILN_BIN, "build", "--progress", "plain", "--isolation", isolation, "--cache-dir", join(uid === undefined ? dir : home, `cache-${name}`), "-o", `type=oci,dest=${out}`, "-t", "pr:latest", ctx];
      const r = await run(process.execPath, args, { env: { SOURCE_DATE_EPOCH: "1700000000", HOME: home }, ...(uid !== undefined ? { asUid: uid } : {}), cwd: home });
      expectBuilt(r);
      return { out, r };
    };
    const pod = await build("pod", 1000, "proot");
    expect(pod.r.stderr).toContain("isolation: proot (requested)");
    const got = await layers(pod.out);
    const runLayer = got[2]!;
    expect(runLayer.map((e) => e.name)).toEqual(["data/", "data/sub/", "data/sub/f", "data/sub/l", "data/uid"]);
    for (const e of got.flat()) expect([e.name, e.uid, e.gid]).toEqual([e.name, 0, 0]);
    const host = await build("host", undefined, "chroot");
    expect(got).toEqual(await layers(host.out));
  });

  it("fails a step that writes /etc/resolv.conf (read-only under BuildKit; proot cannot bind read-only)", async () => {
    const dir = await temps.make("kiln-proot-ro-");
    await chmod(dir, 0o755);
    const ctx = join(dir, "ctx");
    await mkdir(ctx);
    execFileSync("cp", ["/bin/busybox", join(ctx, "busybox")]);
    await writeFile(join(ctx, "Dockerfile"), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nRUN echo "nameserver 10.0.0.1" > /etc/resolv.conf\n');
    execFileSync("chmod", ["-R", "a+rX", ctx]);
    const home = join(dir, "home");
    await mkdir(home);
    await chown(home, 1000, 1000);
    const args = [KILN_BIN, "build", "--progress", "plain", "--isolation", "proot", "--cache-dir", join(home, "cache"), "-o", `type=oci,dest=${join(home, "out")}`, "-t", "pr:latest", ctx];
    const r = await run(process.execPath, args, { env: { HOME: home }, asUid: 1000, cwd: home });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Dockerfile:4: .*the step wrote \/etc\/resolv\.conf, which is read-only during RUN/);
  });
});
