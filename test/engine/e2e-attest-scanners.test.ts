// The SBOM scanners through `kiln build --sbom` end to end: a hand-made base holding a real
// rpmdb.sqlite (Debian's rpmbuild + rpm --justdb), a build stage that copies in a real Go binary
// (Debian's Go) and a package-lock.json, the final stage taking the binary and an npm app
// (lockfile + node_modules). BUILDKIT_SBOM_SCAN_STAGE in the build stage and a global
// BUILDKIT_SBOM_SCAN_CONTEXT give two more SPDX statements after the image's, in that order, each
// annotated with the SPDX predicate type as BuildKit stores them; a stage the target does not
// need is not scanned; a BerkeleyDB rpm database is a warning on stderr; RUN (on a busybox base)
// does not see the scan switches in its environment, as in BuildKit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chmod, copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTar } from "../snapshot/helpers.js";
import { writeHandLayout, type HandLayout } from "../helpers/hand-layout.js";
import { useBusyboxBase } from "../helpers/busybox.js";
import { buildGoApp } from "../helpers/go-binary.js";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { makeRpmDb } from "../helpers/rpmdb.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const busybox = useBusyboxBase();
let dir: string;
let ctx: string;
let base: HandLayout;
let legacy: HandLayout;
let rpmQueried: string[];

const LOCK = {
  name: "web", version: "2.0.0", lockfileVersion: 3,
  packages: {
    "": { name: "web", version: "2.0.0", license: "MIT" },
    "node_modules/ms": { version: "2.1.3", license: "MIT" },
    "node_modules/@types/node": { version: "20.1.0", license: "MIT" },
    "node_modules/debug": { version: "4.3.4", license: "MIT" },
  },
};

beforeAll(async () => {
  dir = await temps.make("kiln-attest-scanners-");
  const rpm = await makeRpmDb(join(dir, "rpm"), [
    { name: "kiln-small", version: "1.2.3", release: "4.fc40", license: "MIT" },
    { name: "kiln-big", version: "0.9", release: "1", epoch: 2, license: "GPL-2.0-or-later", files: 300 },
  ]);
  rpmQueried = rpm.queried;
  base = await writeHandLayout(join(dir, "base"), [makeTar([
    { name: "etc/os-release", content: Buffer.from('NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n') },
    { name: "usr/lib/sysimage/rpm/rpmdb.sqlite", content: rpm.sqlite },
  ])]);
  legacy = await writeHandLayout(join(dir, "legacy"), [makeTar([{ name: "var/lib/rpm/Packages", content: Buffer.alloc(8192, 1) }])]);
  ctx = join(dir, "ctx");
  const bins = await buildGoApp(join(dir, "go"), ["amd64"]);
  await mkdir(join(ctx, "app", "node_modules", "ms"), { recursive: true });
  await mkdir(join(ctx, "app", "node_modules", "@types", "node"), { recursive: true });
  await mkdir(join(ctx, "tools"), { recursive: true });
  await copyFile(bins.amd64!, join(ctx, "goapp"));
  await chmod(join(ctx, "goapp"), 0o755);
  await writeFile(join(ctx, "app", "package-lock.json"), JSON.stringify(LOCK));
  await writeFile(join(ctx, "app", "node_modules", "ms", "package.json"), JSON.stringify({ name: "ms", version: "2.1.3", license: "MIT" }));
  await writeFile(join(ctx, "app", "node_modules", "@types", "node", "package.json"), JSON.stringify({ name: "@types/node", version: "20.1.0", license: "MIT" }));
  await writeFile(join(ctx, "tools", "package-lock.json"), JSON.stringify({ lockfileVersion: 1, dependencies: { esbuild: { version: "0.20.2" } } }));
  await mkdir(join(ctx, "hidden", "node_modules", "secretpkg"), { recursive: true });
  await writeFile(join(ctx, "hidden", "node_modules", "secretpkg", "package.json"), JSON.stringify({ name: "secretpkg", version: "1.0.0" }));
  await writeFile(join(ctx, ".dockerignore"), "hidden\n");
  await writeFile(join(ctx, "Dockerfile"), [
    "ARG BUILDKIT_SBOM_SCAN_CONTEXT=true",
    "FROM base AS build",
    "ARG BUILDKIT_SBOM_SCAN_STAGE=true",
    "COPY goapp /usr/local/bin/goapp",
    "COPY tools/package-lock.json /tools/package-lock.json",
    "FROM base AS unused",
    "ARG BUILDKIT_SBOM_SCAN_STAGE=true",
    "COPY tools/package-lock.json /unused/package-lock.json",
    "FROM base",
    "COPY --from=build /usr/local/bin/goapp /usr/local/bin/goapp",
    "COPY app /app",
    "",
  ].join("\n"));
}, 600_000);
afterAll(() => temps.cleanup());

interface Desc { digest: string; annotations?: Record<string, string> }
interface Doc { name: string; documentNamespace: string; packages: Array<{ name: string; versionInfo: string; licenseDeclared: string; externalRefs: Array<{ referenceLocator: string }> }> }

async function statements(out: string): Promise<{ layers: Desc[]; docs: Doc[] }> {
  const blob = async (d: string): Promise<any> => JSON.parse(await readFile(join(out, "blobs", "sha256", d.slice(7)), "utf8"));
  const root = await blob(JSON.parse(await readFile(join(out, "index.json"), "utf8")).manifests[0].digest);
  const am = await blob(root.manifests[1].digest);
  const docs: Doc[] = [];
  for (const l of am.layers as Desc[]) docs.push((await blob(l.digest)).predicate as Doc);
  return { layers: am.layers as Desc[], docs };
}

/** The package-url grammar: type, namespace/name segments, version, qualifiers, each only unreserved characters or %XX escapes. */
const PURL_PART = "(?:[A-Za-z0-9._~:-]|%[0-9A-F]{2})+";
const PURL = new RegExp(`^pkg:[a-z][a-z0-9.+-]*(?:/${PURL_PART})+(?:@${PURL_PART})?(?:\\?[a-z][a-z0-9._-]*=${PURL_PART}(?:&[a-z][a-z0-9._-]*=${PURL_PART})*)?$`);

const purls = (d: Doc): string[] => d.packages.map((p) => p.externalRefs[0]!.referenceLocator).sort();

describe("kiln build --sbom: RPM, Go, package-lock.json, scanned stages and context", () => {
  it("lists the image's RPM, Go and npm packages, then the build stage's and the context's in their own statements", async () => {
    const out = join(dir, "out");
    const r = await kiln(["build", "--progress", "plain", "--cache-dir", join(dir, "cache"), "--build-context", `base=${base.ref}`, "--sbom=true", "-t", "example/scan:1", "--output", `type=oci,dest=${out}`, ctx]);
    expectBuilt(r);
    expect(r.stderr).not.toMatch(/RPM .*not listed/);
    const { layers, docs } = await statements(out);
    expect(layers.map((l) => l.annotations)).toEqual([
      { "in-toto.io/predicate-type": "https://spdx.dev/Document" },
      { "in-toto.io/predicate-type": "https://spdx.dev/Document" },
      { "in-toto.io/predicate-type": "https://spdx.dev/Document" },
    ]);
    const [image, build, context] = docs as [Doc, Doc, Doc];
    expect([image.name, build.name, context.name]).toEqual(["example/scan:1", "example/scan:1 sbom-build", "example/scan:1 sbom-context"]);
    expect(new Set(docs.map((d) => d.documentNamespace)).size).toBe(3);
    for (const d of docs) for (const p of purls(d)) expect(p).toMatch(PURL);

    const rpms = (d: Doc): string[] => d.packages.filter((p) => p.externalRefs[0]!.referenceLocator.startsWith("pkg:rpm/"))
      .map((p) => `${p.name}|${p.versionInfo.includes(":") ? p.versionInfo.split(":")[0] : "0"}|${p.versionInfo.replace(/^\d+:/, "")}|${/arch=([^&]+)/.exec(p.externalRefs[0]!.referenceLocator)![1]}|${p.licenseDeclared}`).sort();
    expect(rpms(image)).toEqual(rpmQueried);
    const go = ["pkg:golang/example.com/app@%28devel%29", "pkg:golang/example.com/lib@v1.2.3", "pkg:golang/example.com/newer@v1.1.0"];
    const imagePurls = purls(image);
    expect(imagePurls.filter((p) => p.startsWith("pkg:golang/") && !p.startsWith("pkg:golang/stdlib@"))).toEqual(go);
    expect(imagePurls.filter((p) => p.startsWith("pkg:golang/stdlib@"))).toEqual([expect.stringMatching(/^pkg:golang\/stdlib@1\.\d+/)]);
    // the lockfile's packages, node_modules' two counted once
    expect(imagePurls.filter((p) => p.startsWith("pkg:npm/"))).toEqual(["pkg:npm/%40types/node@20.1.0", "pkg:npm/debug@4.3.4", "pkg:npm/ms@2.1.3", "pkg:npm/web@2.0.0"]);
    expect(imagePurls.some((p) => p.includes("esbuild"))).toBe(false);

    // the build stage: its base, the Go binary and its own lockfile
    const buildPurls = purls(build);
    expect(buildPurls.filter((p) => p.startsWith("pkg:npm/"))).toEqual(["pkg:npm/esbuild@0.20.2"]);
    expect(buildPurls.filter((p) => p.startsWith("pkg:golang/example.com/"))).toEqual(go);
    expect(buildPurls.filter((p) => p.startsWith("pkg:rpm/")).length).toBe(2);
    // the context: everything kiln reads there, .dockerignore'd files left out
    const stdlib = imagePurls.find((p) => p.startsWith("pkg:golang/stdlib@"))!;
    expect(purls(context)).toEqual([
      ...go, stdlib, "pkg:npm/%40types/node@20.1.0", "pkg:npm/debug@4.3.4", "pkg:npm/esbuild@0.20.2", "pkg:npm/ms@2.1.3", "pkg:npm/web@2.0.0",
    ].sort());
  }, 300_000);

  it("--build-arg turns the stage scan off, and a BerkeleyDB rpm database is a warning naming the file", async () => {
    const out = join(dir, "out-legacy");
    const r = await kiln(["build", "--progress", "plain", "--cache-dir", join(dir, "cache"), "--build-context", `base=${legacy.ref}`, "--sbom=true",
      "--build-arg", "BUILDKIT_SBOM_SCAN_STAGE=false", "--build-arg", "BUILDKIT_SBOM_SCAN_CONTEXT=false", "--output", `type=oci,dest=${out}`, ctx]);
    expectBuilt(r);
    expect(r.stderr).toMatch(/\/var\/lib\/rpm\/Packages is an RPM BerkeleyDB database, which kiln does not read/);
    const { docs } = await statements(out);
    expect(docs).toHaveLength(1);
  }, 300_000);

  it("keeps the scan switches out of RUN's environment (other ARGs stay in)", async () => {
    const bctx = await temps.make("kiln-scan-run-");
    await writeFile(join(bctx, "Dockerfile"), "FROM base\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nARG BUILDKIT_SBOM_SCAN_CONTEXT=true\nARG OTHER=1\nRUN env > /env.txt\n");
    const out = join(bctx, "out");
    expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", join(dir, "cache"), "--build-context", `base=${busybox().buildContext}`, "--sbom=true", "--output", `type=local,dest=${out}`, bctx]));
    const env = await readFile(join(out, "env.txt"), "utf8");
    expect(env).toMatch(/^OTHER=1$/m);
    expect(env).not.toMatch(/BUILDKIT_SBOM_SCAN/);
  }, 300_000);
});
