// End-to-end confinement: nothing from an archive, a context or another stage may reach outside
// its own tree. Hostile tars given to ADD (../ names, absolute names, symlink and hardlink
// escapes) must leave the host untouched and either fail with one line naming the Dockerfile
// line or produce layers that are safe to extract; symlinks to host paths in a context or a stage
// must never read host files.
import { mkdir, readdir, readFile, symlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { kiln, verify } from "../helpers/kiln.js";
import { listLayer, writeTar, type HandTarMember } from "../helpers/layer-tar.js";
import { copyCase, TempDirs } from "../helpers/temp.js";
import { ociRef, skopeoRaw, umociUnpack } from "../helpers/tools.js";
import { sha256Text, walkTree } from "../helpers/tree.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const UP = "../".repeat(16);

async function hostPasswdSha(): Promise<string> {
  return sha256Text(await readFile("/etc/passwd"));
}

function clean(name: string): string {
  return name.replace(/^\.\//, "").replace(/\/+$/, "");
}

/** Asserts every layer of a built image is safe to extract anywhere. */
async function expectSafeLayers(layout: string, tag: string): Promise<void> {
  const manifest = await skopeoRaw(ociRef(layout, tag));
  for (const l of manifest.layers) {
    const entries = await listLayer(join(layout, "blobs", "sha256", l.digest.slice("sha256:".length)));
    const symlinks = new Set<string>();
    const seen = new Set<string>();
    for (const e of entries) {
      const name = clean(e.name);
      expect(name.startsWith("/"), `absolute path in layer: ${e.name}`).toBe(false);
      expect(name.split("/").includes(".."), `.. in layer path: ${e.name}`).toBe(false);
      const parts = name.split("/");
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join("/");
        expect(symlinks.has(parent), `${e.name} lies under symlink ${parent} in the same layer`).toBe(false);
      }
      if (e.type === "symlink") symlinks.add(name);
      if (e.type === "link") {
        expect(seen.has(clean(e.linkname ?? "")), `hardlink ${e.name} -> ${e.linkname} names no earlier entry`).toBe(true);
      }
      seen.add(name);
    }
  }
}

describe("kiln build: hostile archives given to ADD", () => {
  const cases: Array<{ name: string; members: (hostDir: string) => HandTarMember[] }> = [
    { name: "../ names", members: (h) => [{ name: "ok.txt", content: "ok" }, { name: `${UP}${h.slice(1)}/dotdot.txt`, content: "escaped" }] },
    { name: "absolute names", members: (h) => [{ name: `${h}/abs.txt`, content: "escaped" }] },
    {
      name: "a symlink to a host directory, then a file through it",
      members: (h) => [{ name: "escape", type: "symlink", linkname: h }, { name: "escape/through-link.txt", content: "escaped" }],
    },
    {
      name: "a relative symlink climbing out, then a file through it",
      members: (h) => [{ name: "up", type: "symlink", linkname: `${UP}${h.slice(1)}` }, { name: "up/rel-link.txt", content: "escaped" }],
    },
    { name: "a hardlink to a host file", members: () => [{ name: "hl", type: "link", linkname: `${UP}etc/passwd` }] },
  ];

  for (const c of cases) {
    it(`${c.name}: the host is untouched and the result is an error or a safe image`, async () => {
      const hostDir = await temps.make("kiln-host-");
      const ctx = await copyCase(temps, "confine-add");
      await writeTar(join(ctx, "hostile.tar"), c.members(hostDir));
      const out = await temps.make("kiln-out-");
      const layout = join(out, "layout");
      const r = await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "-o", `type=oci,dest=${layout}`,
        "-t", "hostile:latest", "--build-arg", "ARCHIVE=hostile.tar", ctx]);
      expect(await readdir(hostDir), "ADD wrote outside the image").toEqual([]);
      if (r.code === 0) {
        await verify(layout);
        await expectSafeLayers(layout, "latest");
        const tree = await walkTree(await umociUnpack(temps, layout, "latest"));
        const passwd = await hostPasswdSha();
        for (const [path, e] of tree) expect(e.sha256 === passwd, `${path} holds the host's /etc/passwd`).toBe(false);
      } else {
        expect(r.code, r.stderr).toBe(1);
        const lines = r.stderr.split("\n").filter(Boolean);
        expect(lines, r.stderr).toHaveLength(1);
        expect(lines[0]).toMatch(/^error: Dockerfile:4: ADD\b/);
      }
    });
  }
});

describe("kiln build: symlinks to host paths", () => {
  it("a context symlink to /etc does not read the host's /etc/passwd", async () => {
    const ctx = await copyCase(temps, "confine-context");
    await symlink("/etc", join(ctx, "ctx-link"));
    const out = await temps.make("kiln-out-");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "-o", `type=oci,dest=${join(out, "layout")}`, ctx]);
    expect(r.code, r.stdout).toBe(1);
    const lines = r.stderr.split("\n").filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: Dockerfile:3: COPY\b.*passwd/);
  });

  it("COPY --from through a stage's symlink to /etc does not read the host's /etc/passwd", async () => {
    const ctx = await copyCase(temps, "confine-from");
    await mkdir(join(ctx, "links"));
    await symlink("/etc", join(ctx, "links", "etc-link"));
    const out = await temps.make("kiln-out-");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "-o", `type=oci,dest=${join(out, "layout")}`, ctx]);
    expect(r.code, r.stdout).toBe(1);
    const lines = r.stderr.split("\n").filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: Dockerfile:6: COPY\b.*passwd/);
  });
});
