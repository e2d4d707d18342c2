// BUILDKIT_SBOM_SCAN_STAGE / _CONTEXT as BuildKit's frontend reads them (booleans as Go's
// ParseBool, else a comma list of stage names; the stage's ARG over the global one), and the
// directory scan of a build context: the layer scan's files, .dockerignore applied, Go build info.
import { afterAll, describe, expect, it } from "vitest";
import { chmod, copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createIgnoreMatcher } from "../../src/context/dockerignore.js";
import { findPackages } from "../../src/attest/packages.js";
import { scanDirectory } from "../../src/attest/scan-dir.js";
import { scanEnabledFor, scansContext, scansStage } from "../../src/attest/scan-targets.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

describe("BUILDKIT_SBOM_SCAN_* values", () => {
  it("reads booleans as Go's ParseBool does, else a comma list of stage names", () => {
    for (const v of ["1", "t", "T", "TRUE", "true", "True"]) expect(scanEnabledFor("build", v)).toBe(true);
    for (const v of ["0", "f", "F", "FALSE", "false", "False", "", "yes", "Build"]) expect(scanEnabledFor("build", v)).toBe(false);
    expect(scanEnabledFor("build", "deps,build")).toBe(true);
    expect(scanEnabledFor("test", "deps,build")).toBe(false);
    expect(scanEnabledFor("build", undefined)).toBe(false);
  });

  it("a stage's own ARG wins over the global ARG", () => {
    const globals = { BUILDKIT_SBOM_SCAN_STAGE: "true", BUILDKIT_SBOM_SCAN_CONTEXT: "app" };
    expect(scansStage({ name: "build", args: new Map() }, globals)).toBe(true);
    expect(scansStage({ name: "build", args: new Map([["BUILDKIT_SBOM_SCAN_STAGE", "false"]]) }, globals)).toBe(false);
    expect(scansStage({ name: "build", args: undefined }, {})).toBe(false);
    expect(scansContext({ name: "app", args: undefined }, globals)).toBe(true);
    expect(scansContext({ name: "other", args: undefined }, globals)).toBe(false);
  });
});

describe("scanDirectory", () => {
  it("keeps the scanners' files of a tree, .dockerignore applied, and Go build info of executables", async () => {
    const root = await temps.make("kiln-scan-dir-");
    const put = async (rel: string, body: string | Buffer): Promise<void> => {
      await mkdir(join(root, rel, ".."), { recursive: true });
      await writeFile(join(root, rel), body);
    };
    await put("package-lock.json", JSON.stringify({ lockfileVersion: 3, packages: { "node_modules/ms": { version: "2.1.3" } } }));
    await put("node_modules/ms/package.json", JSON.stringify({ name: "ms", version: "2.1.3", license: "MIT" }));
    await put("ignored/node_modules/x/package.json", JSON.stringify({ name: "x", version: "1.0.0" }));
    await put("venv/lib/six-1.16.0.dist-info/METADATA", "Name: six\nVersion: 1.16.0\n");
    await put("README.md", "hello");
    await copyFile("/bin/sh", join(root, "sh"));
    await chmod(join(root, "sh"), 0o755);
    const files = await scanDirectory(root, { ignore: createIgnoreMatcher(["ignored"]) });
    expect([...files.keys()].sort()).toEqual(["node_modules/ms/package.json", "package-lock.json", "venv/lib/six-1.16.0.dist-info/METADATA"]);
    expect(findPackages(files).map((p) => `${p.purl} ${p.source}`)).toEqual([
      "pkg:npm/ms@2.1.3 /node_modules/ms/package.json",
      "pkg:pypi/six@1.16.0 /venv/lib/six-1.16.0.dist-info/METADATA",
    ]);
  });
});
