// The SBOM of a real Debian 12 minbase (debootstrap, imported as a kiln base) with an npm app
// copied in: its Debian packages are exactly those dpkg-query lists as installed in the root file
// system the base was made from (name, version, architecture), and the app's node_modules
// packages appear with their versions, once each though the app's package-lock.json lists them too.
// No RUN: kiln reads the layers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expectBuilt, kiln, mustRun } from "../helpers/kiln.js";
import { podDebianBase, type DebianBase } from "../helpers/pod.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
let debian: DebianBase;
beforeAll(async () => {
  debian = await podDebianBase();
}, 600_000);
afterAll(() => temps.cleanup());

describe("kiln build --sbom on a Debian base", () => {
  it("lists exactly the installed dpkg packages and the app's npm packages", async () => {
    const dir = await temps.make("kiln-sbom-debian-");
    const ctx = join(dir, "ctx");
    for (const [name, version] of [["express", "4.19.2"], ["@babel/core", "7.24.0"]] as const) {
      await mkdir(join(ctx, "app", "node_modules", name), { recursive: true });
      await writeFile(join(ctx, "app", "node_modules", name, "package.json"), JSON.stringify({ name, version, license: "MIT" }));
    }
    // npm's lockfile (v3) of the same install: its packages are the node_modules ones, counted once, and the project
    await writeFile(join(ctx, "app", "package-lock.json"), JSON.stringify({
      name: "app", version: "1.0.0", lockfileVersion: 3, requires: true,
      packages: { "": { name: "app", version: "1.0.0" }, "node_modules/express": { version: "4.19.2", license: "MIT" }, "node_modules/@babel/core": { version: "7.24.0", license: "MIT" } },
    }));
    await writeFile(join(ctx, "Dockerfile"), "FROM base\nCOPY app /app\n");
    const out = join(dir, "out");
    const t0 = Date.now();
    expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", join(dir, "cache"), "--build-context", `base=${debian.ref}`, "--sbom=true", "--output", `type=oci,dest=${out}`, ctx]));
    const took = Date.now() - t0;

    const blob = async (d: string): Promise<any> => JSON.parse(await readFile(join(out, "blobs", "sha256", d.slice(7)), "utf8"));
    const root = await blob(JSON.parse(await readFile(join(out, "index.json"), "utf8")).manifests[0].digest);
    const am = await blob(root.manifests[1].digest);
    const doc = (await blob(am.layers[0].digest)).predicate as { packages: Array<{ name: string; versionInfo: string; externalRefs: Array<{ referenceLocator: string }> }> };
    const purls = doc.packages.map((p) => p.externalRefs[0]!.referenceLocator);
    const debs = purls.filter((p) => p.startsWith("pkg:deb/")).map((p) => decodeURIComponent(p.slice("pkg:deb/debian/".length))).sort();

    const q = await mustRun("dpkg-query", ["--admindir", join(debian.rootfs, "var", "lib", "dpkg"), "-W", "-f", "${db:Status-Abbrev}|${Package}@${Version}?arch=${Architecture}\n"]);
    const installed = q.stdout.split("\n").filter((l) => l.startsWith("ii")).map((l) => l.slice(l.indexOf("|") + 1)).sort();
    expect(installed.length).toBeGreaterThan(50);
    expect(debs).toEqual(installed);
    expect(purls.filter((p) => p.startsWith("pkg:npm/")).sort()).toEqual(["pkg:npm/%40babel/core@7.24.0", "pkg:npm/app@1.0.0", "pkg:npm/express@4.19.2"]);
    // Debian's own executables are ELF files, none a Go binary: the build-info reader finds nothing there
    expect(purls.filter((p) => !p.startsWith("pkg:deb/") && !p.startsWith("pkg:npm/"))).toEqual([]);
    expect(took).toBeLessThan(60_000);
  });
});
