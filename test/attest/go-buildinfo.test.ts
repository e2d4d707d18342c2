// Go binaries' build info in the SBOM: real binaries from Debian's Go toolchain (amd64, 32-bit
// little endian 386, 64-bit big endian s390x, 32-bit big endian mips) give the main module, the
// dependencies (a `replace` naming the module built) and the stdlib as Syft writes it; the pre-1.18
// pointer layout is read from hand-made ELF files; and in layers only executable ELF files are
// read, a whiteout or a non-Go executable hiding a lower Go binary.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chmod, readFile } from "node:fs/promises";
import { findPackages } from "../../src/attest/packages.js";
import { goPackages, parseModinfo, readGoBuildInfo } from "../../src/attest/go-buildinfo.js";
import { scanFiles } from "../../src/attest/scan-files.js";
import { buildGoApp, oldGoElf } from "../helpers/go-binary.js";
import { TempDirs } from "../helpers/temp.js";
import { makeTar, tarLayer } from "../snapshot/helpers.js";

const temps = new TempDirs();
let bins: Record<string, string>;
beforeAll(async () => {
  bins = await buildGoApp(await temps.make("kiln-go-app-"), ["amd64", "386", "s390x", "mips"]);
}, 300_000);
afterAll(() => temps.cleanup());

const EXPECTED = ["pkg:golang/example.com/app@%28devel%29", "pkg:golang/example.com/lib@v1.2.3", "pkg:golang/example.com/newer@v1.1.0"];

describe("readGoBuildInfo", () => {
  it("reads the Go 1.18+ inline layout of real binaries, 32/64-bit, little and big endian", async () => {
    for (const arch of ["amd64", "386", "s390x", "mips"]) {
      const info = readGoBuildInfo(await readFile(bins[arch]!));
      expect(info?.goVersion, arch).toMatch(/^go1\.\d+/);
      expect(info!.modinfo).toContain(`build\tGOARCH=${arch}`);
      const purls = goPackages(info!, "/app").map((p) => p.purl);
      expect(purls.slice(0, 3), arch).toEqual(EXPECTED);
      expect(purls[3]).toBe(`pkg:golang/stdlib@${info!.goVersion.slice(2)}`);
    }
  });

  it("reads a binary as the chunks it streamed in, ranges spanning chunk boundaries", async () => {
    const whole = await readFile(bins.s390x!);
    const chunks: Buffer[] = [];
    for (let at = 0; at < whole.length; at += 997) chunks.push(whole.subarray(at, at + 997));
    expect(readGoBuildInfo(chunks)).toEqual(readGoBuildInfo(whole));
    expect(readGoBuildInfo(chunks)).toBeDefined();
  });

  it("reads the pre-1.18 pointer layout (64-bit little endian, 32-bit big endian)", () => {
    const modinfo = "path\texample.com/old/cmd\nmod\texample.com/old\tv0.9.0\th1:abc=\ndep\tgolang.org/x/sys\tv0.1.0\th1:def=\n";
    for (const [is64, bigEndian] of [[true, false], [false, true]] as const) {
      const info = readGoBuildInfo(oldGoElf({ is64, bigEndian, goVersion: "go1.16.15", modinfo }));
      expect(info).toEqual({ goVersion: "go1.16.15", modinfo });
      expect(goPackages(info!, "/bin/old").map((p) => [p.name, p.version, p.purl])).toEqual([
        ["example.com/old", "v0.9.0", "pkg:golang/example.com/old@v0.9.0"],
        ["golang.org/x/sys", "v0.1.0", "pkg:golang/golang.org/x/sys@v0.1.0"],
        ["stdlib", "go1.16.15", "pkg:golang/stdlib@1.16.15"],
      ]);
    }
  });

  it("is undefined for non-Go ELF files and for garbage", async () => {
    expect(readGoBuildInfo(await readFile("/bin/sh"))).toBeUndefined();
    expect(readGoBuildInfo(Buffer.from("\x7fELF garbage that is far too short"))).toBeUndefined();
    const truncated = (await readFile(bins.amd64!)).subarray(0, 4096);
    expect(readGoBuildInfo(truncated)).toBeUndefined();
  });

  it("parses module lines: a replacement by a module names it, a local directory keeps the module's path as (devel)", () => {
    const text = "path\tx/cmd\nmod\tx\t(devel)\t\ndep\ta\tv1.0.0\th1:x\n=>\tb\tv2.0.0\th1:y\ndep\tc\tv1.0.0\n=>\t../c\t\t\nbuild\t-compiler=gc\n";
    expect(parseModinfo(text)).toEqual({
      path: "x/cmd",
      main: { path: "x", version: "(devel)" },
      deps: [{ path: "a", version: "v1.0.0", replace: { path: "b", version: "v2.0.0" } }, { path: "c", version: "v1.0.0", replace: { path: "../c", version: "" } }],
    });
    expect(goPackages({ goVersion: "go1.22.1 X:boringcrypto", modinfo: text }, "/x").map((p) => p.purl)).toEqual([
      "pkg:golang/x@%28devel%29", "pkg:golang/b@v2.0.0", "pkg:golang/c@%28devel%29", "pkg:golang/stdlib@1.22.1",
    ]);
  });
});

describe("Go binaries in layers", () => {
  it("reads executable ELF files only; whiteouts and non-Go executables hide lower Go binaries", async () => {
    const go = await readFile(bins.amd64!);
    const lower = makeTar([
      { name: "usr/local/bin/app", content: go, mode: 0o755 },
      { name: "usr/local/bin/gone", content: go, mode: 0o755 },
      { name: "usr/local/bin/swapped", content: go, mode: 0o755 },
      { name: "srv/not-executable", content: go, mode: 0o644 },
      { name: "usr/bin/sh", content: await readFile("/bin/sh"), mode: 0o755 },
      { name: "usr/bin/script", content: Buffer.from("#!/bin/sh\necho hi\n"), mode: 0o755 },
    ]);
    const upper = makeTar([
      { name: "usr/local/bin/.wh.gone", content: Buffer.from("") },
      { name: "usr/local/bin/swapped", content: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
    ]);
    const files = await scanFiles([tarLayer(lower, true), tarLayer(upper)]);
    expect([...files.keys()]).toEqual(["usr/local/bin/app"]);
    expect(files.get("usr/local/bin/app")!.length).toBeLessThan(4096); // the build info, not the binary
    const pkgs = findPackages(files);
    expect(pkgs.map((p) => p.purl)).toEqual([...EXPECTED, expect.stringMatching(/^pkg:golang\/stdlib@1\.\d+/)]);
    expect(pkgs.every((p) => p.source === "/usr/local/bin/app" && p.type === "golang")).toBe(true);
  });
});
