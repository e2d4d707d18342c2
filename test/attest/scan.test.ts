// The SBOM scanners on real tar layers (made by hand): which files are read, how whiteouts,
// opaque directories and replacing links hide lower layers, the size caps, and each package
// database's parser (dpkg, status.d, apk, npm, Python) with its purl and license.
import { describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { storeScanCache } from "../../src/attest/scan-cache.js";
import { BlobStore } from "../../src/store/blob-store.js";
import { findPackages, parseApkInstalled, parseDpkgStatus, parseNpmPackage, parsePythonMetadata } from "../../src/attest/packages.js";
import { scanFiles, wantedFile } from "../../src/attest/scan-files.js";
import { spdxDocument } from "../../src/attest/spdx.js";
import { makeTar, tarLayer } from "../snapshot/helpers.js";

const pkgJSON = (name: string, version: string): Buffer => Buffer.from(JSON.stringify({ name, version }));

describe("scanFiles", () => {
  it("keeps only the package databases, merged over layers with whiteouts, opaque dirs and links applied", async () => {
    const lower = makeTar([
      { name: "var/lib/dpkg/status", content: Buffer.from("Package: a\nVersion: 1\n") },
      { name: "usr/bin/tool", content: Buffer.from("binary") },
      { name: "a/node_modules/x/package.json", content: pkgJSON("x", "1.0.0") },
      { name: "b/node_modules/y/package.json", content: pkgJSON("y", "1.0.0") },
      { name: "c/node_modules/z/package.json", content: pkgJSON("z", "1.0.0") },
      { name: "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", content: Buffer.from("Name: six\nVersion: 1.16.0\n") },
    ]);
    const upper = makeTar([
      { name: "var/", type: "dir" },
      { name: "var/lib/", type: "dir" },
      { name: "var/lib/dpkg/", type: "dir" }, // a directory entry hides nothing below it
      { name: "a/node_modules/.wh.x", content: Buffer.from("") },
      { name: "b/node_modules/.wh..wh..opq", content: Buffer.from("") },
      { name: "b/node_modules/w/package.json", content: pkgJSON("w", "2.0.0") },
      { name: "c/node_modules/z/package.json", type: "symlink", linkname: "/elsewhere" },
    ]);
    const files = await scanFiles([tarLayer(lower, true), tarLayer(upper)]);
    expect([...files.keys()].sort()).toEqual([
      "b/node_modules/w/package.json",
      "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
      "var/lib/dpkg/status",
    ]);
  });

  it("selects files by path and caps their size", () => {
    expect(wantedFile("var/lib/dpkg/status")).toBeGreaterThan(1 << 20);
    expect(wantedFile("var/lib/dpkg/status.d/libc6")).toBe(1 << 20);
    expect(wantedFile("var/lib/dpkg/status.d/libc6.md5sums")).toBeUndefined();
    expect(wantedFile("node_modules/@s/p/package.json")).toBe(1 << 20);
    expect(wantedFile("node_modules/p/lib/package.json")).toBeUndefined();
    expect(wantedFile("node_modules/.bin/package.json")).toBeUndefined();
    expect(wantedFile("package.json")).toBeUndefined();
    expect(wantedFile("etc/passwd")).toBeUndefined();
  });

  it("drops a database file larger than its cap (and the lower copy it replaces) instead of holding it", async () => {
    const big = Buffer.alloc((1 << 20) + 1, "a");
    const small = makeTar([{ name: "node_modules/p/package.json", content: pkgJSON("p", "1.0.0") }]);
    const files = await scanFiles([tarLayer(small), tarLayer(makeTar([{ name: "node_modules/p/package.json", content: big }]))]);
    expect(files.size).toBe(0); // the big one replaced the small one and was not kept
  });

  it("stops with one error when the kept databases together pass the cap", async () => {
    const layer = tarLayer(makeTar(Array.from({ length: 20 }, (_, i) => ({ name: `node_modules/p${i}/package.json`, content: pkgJSON(`p${i}`, "1.0.0") }))));
    await expect(scanFiles([layer], { maxTotalBytes: 200 })).rejects.toThrow(/package databases exceed the scan.s limit/);
    expect((await scanFiles([layer], { maxTotalBytes: 10_000 })).size).toBe(20);
  });

    it("refuses an unreadable layer with one KilnError", async () => {
    const broken = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", open: () => tarLayer(Buffer.from("not gzip at all")).open() };
    await expect(scanFiles([broken])).rejects.toMatchObject({ code: expect.any(String) });
  });
});

describe("package parsers", () => {
  it("dpkg: installed packages only, arch and purl; status.d entries without Status count", () => {
    const text = "Package: libc6\nStatus: install ok installed\nVersion: 1:2.36-9\nArchitecture: arm64\nDescription: x\n more\n\nPackage: old\nStatus: deinstall ok config-files\nVersion: 1\n";
    expect(parseDpkgStatus(text, "/var/lib/dpkg/status", "debian")).toEqual([
      { type: "deb", name: "libc6", version: "1:2.36-9", arch: "arm64", source: "/var/lib/dpkg/status", purl: "pkg:deb/debian/libc6@1:2.36-9?arch=arm64" },
    ]);
    expect(parseDpkgStatus("Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n", "/s", "debian")[0]!.purl).toBe("pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all");
  });

  it("apk: name, version, arch and license", () => {
    const text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\n";
    expect(parseApkInstalled(text, "/lib/apk/db/installed", "alpine").map((p) => [p.purl, p.license])).toEqual([
      ["pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64", "MIT"],
      ["pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64", "GPL-2.0-only"],
    ]);
  });

  it("npm: scoped names, license objects, and garbage ignored", () => {
    expect(parseNpmPackage('{"name":"@types/node","version":"20.1.0","license":{"type":"MIT"}}', "/p")).toMatchObject({ purl: "pkg:npm/%40types/node@20.1.0", license: "MIT" });
    expect(parseNpmPackage("{not json", "/p")).toBeUndefined();
    expect(parseNpmPackage('{"name":"x"}', "/p")).toBeUndefined();
    expect(parseNpmPackage("null", "/p")).toBeUndefined();
  });

  it("python: METADATA headers, normalized purl name", () => {
    const text = "Metadata-Version: 2.1\nName: Typing_Extensions\nVersion: 4.9.0\nLicense-Expression: PSF-2.0\n\nLong description\nName: not-this\n";
    expect(parsePythonMetadata(text, "/m")).toMatchObject({ name: "Typing_Extensions", purl: "pkg:pypi/typing-extensions@4.9.0", license: "PSF-2.0" });
  });

  it("findPackages takes the distro from os-release and orders the result", () => {
    const files = new Map<string, Buffer>([
      ["node_modules/b/package.json", pkgJSON("b", "1.0.0")],
      ["var/lib/dpkg/status", Buffer.from("Package: zlib1g\nStatus: install ok installed\nVersion: 1.2\nArchitecture: amd64\n")],
      ["etc/os-release", Buffer.from('NAME="Ubuntu"\nID=ubuntu\n')],
    ]);
    expect(findPackages(files).map((p) => p.purl)).toEqual(["pkg:deb/ubuntu/zlib1g@1.2?arch=amd64", "pkg:npm/b@1.0.0"]);
  });
});

describe("spdxDocument", () => {
  it("writes an SPDX 2.3 document whose packages each carry a purl and a valid license expression", () => {
    const doc = spdxDocument({
      name: "img",
      namespace: "https://kiln.dev/spdx/abc",
      created: new Date(1_700_000_000_000),
      toolVersion: "0.1.0",
      packages: [
        { type: "npm", name: "a", version: "1.0.0", license: "(MIT OR Apache-2.0)", purl: "pkg:npm/a@1.0.0", source: "/n" },
        { type: "npm", name: "b", version: "1.0.0", license: "see LICENSE file", purl: "pkg:npm/b@1.0.0", source: "/n" },
      ],
    }) as { creationInfo: { created: string }; packages: Array<{ SPDXID: string; licenseDeclared: string }>; relationships: unknown[] };
    expect(doc.creationInfo.created).toBe("2023-11-14T22:13:20Z");
    expect(doc.packages.map((p) => p.licenseDeclared)).toEqual(["(MIT OR Apache-2.0)", "NOASSERTION"]);
    for (const p of doc.packages) expect(p.SPDXID).toMatch(/^SPDXRef-[A-Za-z0-9.-]+$/);
    expect(doc.relationships).toHaveLength(2);
  });
});

describe("storeScanCache", () => {
  it("keeps a layer's scan by blob digest (the blob is not read again) and rescans when the entry is corrupt", async () => {
    const root = await mkdtemp(join(tmpdir(), "kiln-scan-cache-"));
    try {
      const cache = storeScanCache(new BlobStore(root));
      const layer = tarLayer(makeTar([{ name: "node_modules/p/package.json", content: pkgJSON("p", "1.0.0") }, { name: "x/.wh.y", content: Buffer.from("") }]));
      const key = `sha256:${"ab".repeat(32)}`;
      const first = await scanFiles([{ ...layer, key }], { cache });
      let opened = 0;
      const unreadable = { mediaType: layer.mediaType, key, open: () => { opened++; return layer.open(); } };
      expect(await scanFiles([unreadable], { cache })).toEqual(first);
      expect(opened).toBe(0);
      const file = join(root, "sbom-scan", `v2-${"ab".repeat(32)}.json`);
      expect(JSON.parse(await readFile(file, "utf8")).whiteouts).toEqual(["x/y"]);
      await writeFile(file, "{broken");
      expect(await scanFiles([unreadable], { cache })).toEqual(first);
      expect(opened).toBe(1);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
