// Rootless builds record container-side owners (issue #10): the same RUN-heavy Dockerfile (files
// owned by root, 1000 and 65534 through chown, a USER step, links, setuid and sticky modes) built
// by an unprivileged user (user namespace with subordinate ids, chroot and oci isolation) and by
// root gives identical layers, entry by entry: names, types, modes, owners, sizes, link targets.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { listLayer, type LayerTarEntry } from "../helpers/layer-tar.js";
import { tempDir } from "../snapshot/helpers.js";
import { ensureRootlessUser } from "../helpers/rootless-user.js";

const USER = "kiln-rootless-own";
const SUB_START = 1_400_000;

const DOCKERFILE = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /data/app /data/nobody /data/root && echo r > /data/root/r.txt && chmod 0604 /data/root/r.txt \\
 && echo a > /data/app/a.txt && ln -s a.txt /data/app/link && ln /data/app/a.txt /data/app/hard && chown -R 1000:1000 /data/app \\
 && echo n > /data/nobody/n.txt && chown -R 65534:65534 /data/nobody && chmod 1777 /data/nobody \\
 && echo s > /data/setuid && chmod 4755 /data/setuid && mkfifo /data/fifo && chown 1000:65534 /data/fifo
RUN chown 1000:65534 /data/root/r.txt && rm /data/nobody/n.txt && touch /data/app/b && chown 65534:1000 /data/app/b && mkdir -m 0700 /data/empty
USER 1000:1000
RUN echo mine > /data/app/as-app && mkdir /data/app/sub && ln -s /data/app/as-app /data/app/sub/abs
USER 0
RUN chown -h 65534:65534 /data/app/sub/abs && touch /data/root
`;

let t: { dir: string; cleanup: () => void };
let ctx: string;


beforeAll(() => {
  ensureRootlessUser(USER, SUB_START);
  t = tempDir("kiln-rootless-own-");
  chmodSync(t.dir, 0o755);
  ctx = join(t.dir, "ctx");
  mkdirSync(ctx);
  execFileSync("cp", ["/bin/busybox", join(ctx, "busybox")]);
  writeFileSync(join(ctx, "Dockerfile"), DOCKERFILE);
  execFileSync("chmod", ["-R", "a+rX", ctx]);
  mkdirSync(join(t.dir, "home"));
  execFileSync("chown", [USER, join(t.dir, "home")]);
});
afterAll(() => t?.cleanup());

/** Builds the Dockerfile (as USER when `rootless`) and returns each layer's entries, mtimes left out. */
function build(name: string, rootless: boolean, args: string[]): string {
  const base = rootless ? join(t.dir, "home") : t.dir;
  const out = join(base, `out-${name}`);
  const argv = [resolve("bin/kiln"), "build", "--progress", "plain", "--cache-dir", join(base, `cache-${name}`), ...args, "-o", `type=oci,dest=${out}`, "-t", "own:latest", ctx];
  const r = rootless
    ? spawnSync("runuser", ["-u", USER, "--", process.execPath, ...argv], { encoding: "utf8", env: { PATH: process.env.PATH, HOME: base }, cwd: base })
    : spawnSync(process.execPath, argv, { encoding: "utf8" });
  expect(r.status, `${name}: ${r.stderr}`).toBe(0);
  return out;
}

async function layers(out: string): Promise<LayerTarEntry[][]> {
  const index = JSON.parse(readFileSync(join(out, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
  const blob = (d: string) => join(out, "blobs", "sha256", d.slice("sha256:".length));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), "utf8")) as { layers: Array<{ digest: string }> };
  const all: LayerTarEntry[][] = [];
  for (const l of manifest.layers) all.push(await listLayer(blob(l.digest)));
  return all;
}

describe("rootless builds record the owners the container saw", () => {
  it("a rootless build (chroot and oci isolation) gives the same layer entries as a root build", async () => {
    const root = await layers(build("root", false, []));
    // the root build is the reference: container ids as written by chown
    const data = root.flat().filter((e) => e.name.startsWith("data/"));
    expect(data.find((e) => e.name === "data/app/a.txt")).toMatchObject({ uid: 1000, gid: 1000 });
    expect(data.find((e) => e.name === "data/nobody/")).toMatchObject({ uid: 65534, gid: 65534, mode: 0o1777 });
    expect(data.find((e) => e.name === "data/app/as-app")).toMatchObject({ uid: 1000, gid: 1000 });
    expect(data.find((e) => e.name === "data/setuid")).toMatchObject({ uid: 0, gid: 0, mode: 0o4755 });
    for (const isolation of ["chroot", "oci"]) {
      const rootless = await layers(build(`rootless-${isolation}`, true, ["--isolation", isolation]));
      expect(rootless.length, isolation).toBe(root.length);
      for (let i = 0; i < root.length; i++) expect(rootless[i], `${isolation}: layer ${i}`).toEqual(root[i]);
    }
  }, 240_000);
});
