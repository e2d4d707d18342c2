// package-lock.json as an SBOM source: lockfile v1 (nested `dependencies`), v2 and v3 (`packages`
// map), scoped names and aliases in purls, links skipped, and one package per install when
// node_modules/*/package.json shows the same name@version at the same place.
import { describe, expect, it } from "vitest";
import { findPackages } from "../../src/attest/packages.js";
import { parsePackageLock } from "../../src/attest/npm-lock.js";
import { scanFiles, wantedFile } from "../../src/attest/scan-files.js";
import { makeTar, tarLayer } from "../snapshot/helpers.js";

const V1 = {
  name: "app", version: "1.0.0", lockfileVersion: 1, requires: true,
  dependencies: {
    "left-pad": { version: "1.3.0", resolved: "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz" },
    "@types/node": { version: "20.1.0", dev: true },
    debug: { version: "2.6.9", requires: { ms: "2.0.0" }, dependencies: { ms: { version: "2.0.0" } } },
    ms: { version: "2.1.3" },
    local: { version: "file:../local" },
    "string-width-cjs": { version: "npm:string-width@4.2.3" },
  },
};

const V3 = {
  name: "app", version: "1.0.0", lockfileVersion: 3, requires: true,
  packages: {
    "": { name: "app", version: "1.0.0", license: "ISC", dependencies: { debug: "^2.6.9" } },
    "node_modules/debug": { version: "2.6.9", license: "MIT", dependencies: { ms: "2.0.0" } },
    "node_modules/debug/node_modules/ms": { version: "2.0.0", license: "MIT" },
    "node_modules/ms": { version: "2.1.3", license: "MIT" },
    "node_modules/@babel/core": { version: "7.24.0", license: "MIT", dev: true },
    "node_modules/string-width-cjs": { name: "string-width", version: "4.2.3", license: "MIT" },
    "node_modules/ws-a": { resolved: "packages/a", link: true },
    "packages/a": { name: "ws-a", version: "0.1.0" },
    "node_modules/broken": "not an object",
  },
};

describe("parsePackageLock", () => {
  it("v1: walks the nested dependencies tree, install paths following node_modules nesting", () => {
    const pkgs = parsePackageLock(JSON.stringify(V1), "srv/app/package-lock.json");
    expect(pkgs.map((p) => [p.purl, p.location])).toEqual([
      ["pkg:npm/app@1.0.0", "srv/app"],
      ["pkg:npm/left-pad@1.3.0", "srv/app/node_modules/left-pad"],
      ["pkg:npm/%40types/node@20.1.0", "srv/app/node_modules/@types/node"],
      ["pkg:npm/debug@2.6.9", "srv/app/node_modules/debug"],
      ["pkg:npm/ms@2.0.0", "srv/app/node_modules/debug/node_modules/ms"],
      ["pkg:npm/ms@2.1.3", "srv/app/node_modules/ms"],
      ["pkg:npm/string-width@4.2.3", "srv/app/node_modules/string-width-cjs"],
    ]);
    expect(pkgs.every((p) => p.source === "/srv/app/package-lock.json" && p.type === "npm")).toBe(true);
  });

  it("v2/v3: reads the packages map (v2's duplicate dependencies tree is not counted twice), with licenses; links are skipped", () => {
    const v2 = { ...V3, lockfileVersion: 2, dependencies: V1.dependencies };
    for (const doc of [V3, v2]) {
      const pkgs = parsePackageLock(JSON.stringify(doc), "package-lock.json");
      expect(pkgs.map((p) => `${p.purl} ${p.location} ${p.license ?? "-"}`)).toEqual([
        "pkg:npm/app@1.0.0 . ISC",
        "pkg:npm/debug@2.6.9 node_modules/debug MIT",
        "pkg:npm/ms@2.0.0 node_modules/debug/node_modules/ms MIT",
        "pkg:npm/ms@2.1.3 node_modules/ms MIT",
        "pkg:npm/%40babel/core@7.24.0 node_modules/@babel/core MIT",
        "pkg:npm/string-width@4.2.3 node_modules/string-width-cjs MIT",
        "pkg:npm/ws-a@0.1.0 packages/a -",
      ]);
    }
  });

  it("gives nothing for garbage", () => {
    for (const t of ["{not json", "null", "[]", '{"packages": 3}', '"x"']) expect(parsePackageLock(t, "package-lock.json")).toEqual([]);
  });
});

describe("package-lock.json in an image", () => {
  it("is read outside node_modules only", () => {
    expect(wantedFile("app/package-lock.json")).toBeGreaterThan(1 << 20);
    expect(wantedFile("package-lock.json")).toBeGreaterThan(1 << 20);
    expect(wantedFile("app/node_modules/x/package-lock.json")).toBeUndefined();
    expect(wantedFile("app/node_modules/.package-lock.json")).toBeUndefined();
  });

  it("one package per install: the lockfile adds what node_modules lacks, and a same-named package elsewhere stays", async () => {
    const pj = (name: string, version: string, license?: string): Buffer => Buffer.from(JSON.stringify({ name, version, ...(license ? { license } : {}) }));
    const layer = makeTar([
      { name: "app/package-lock.json", content: Buffer.from(JSON.stringify(V3)) },
      { name: "app/node_modules/debug/package.json", content: pj("debug", "2.6.9") },
      { name: "app/node_modules/ms/package.json", content: pj("ms", "2.1.3", "MIT") },
      { name: "app/node_modules/@babel/core/package.json", content: pj("@babel/core", "7.24.0", "MIT") },
      { name: "app/node_modules/string-width-cjs/package.json", content: pj("string-width", "4.2.3", "MIT") },
      // the same name@version installed by another project is another package
      { name: "other/node_modules/ms/package.json", content: pj("ms", "2.1.3", "MIT") },
    ]);
    const pkgs = findPackages(await scanFiles([tarLayer(layer)]));
    expect(pkgs.map((p) => `${p.purl} ${p.source} ${p.license ?? "-"}`)).toEqual([
      "pkg:npm/%40babel/core@7.24.0 /app/node_modules/@babel/core/package.json MIT",
      "pkg:npm/app@1.0.0 /app/package-lock.json ISC",
      "pkg:npm/debug@2.6.9 /app/node_modules/debug/package.json MIT", // license from the lockfile
      "pkg:npm/ms@2.0.0 /app/package-lock.json MIT", // in the lockfile, its package.json not in the image
      "pkg:npm/ms@2.1.3 /app/node_modules/ms/package.json MIT",
      "pkg:npm/ms@2.1.3 /other/node_modules/ms/package.json MIT",
      "pkg:npm/string-width@4.2.3 /app/node_modules/string-width-cjs/package.json MIT",
      "pkg:npm/ws-a@0.1.0 /app/package-lock.json -",
    ]);
  });
});
