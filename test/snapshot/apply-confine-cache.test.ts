// applyLayer caches resolved directories to skip per-entry confinement walks: these cases change
// a cached directory within one layer (replaced by a symlink, removed by a whiteout or an opaque
// marker, replaced by a file) and check every later write still lands inside the root.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { applyLayer } from "../../src/snapshot/apply-layer.js";
import { tempDir, tarStream, type TarSpec } from "./helpers.js";

let t: { dir: string; cleanup: () => void };
let root: string;
let outside: string;

beforeEach(() => {
  t = tempDir("kiln-apply-cache-");
  root = join(t.dir, "root");
  outside = join(t.dir, "outside");
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, "sentinel"), "untouched");
});
afterEach(() => t.cleanup());

const apply = (entries: TarSpec[]) => applyLayer(root, tarStream(entries), { layerName: "L1", privileged: true });

function outsideIntact(): void {
  expect(readdirSync(outside)).toEqual(["sentinel"]);
  expect(readFileSync(join(outside, "sentinel"), "utf8")).toBe("untouched");
}

describe("applyLayer directory cache", () => {
  it("re-resolves a cached directory replaced by a symlink in the same layer", async () => {
    await apply([
      { name: "a/", type: "dir" },
      { name: "a/first", content: "1" },
      { name: "a", type: "symlink", linkname: outside },
      { name: "a/evil", content: "e" },
      { name: "b/c/", type: "dir" },
      { name: "b/c/x", content: "x" },
      { name: "b/c", type: "symlink", linkname: "../../../.." },
      { name: "b/c/evil2", content: "e" },
    ]);
    outsideIntact();
    expect(lstatSync(join(root, "a")).isSymbolicLink()).toBe(true);
    // through the symlink, resolved inside the root
    expect(readFileSync(join(root, outside, "evil"), "utf8")).toBe("e");
    expect(readFileSync(join(root, "evil2"), "utf8")).toBe("e");
  });

  it("recreates cached directories removed by whiteouts, and writes into ones an opaque marker kept", async () => {
    await apply([
      { name: "d/", type: "dir" },
      { name: "d/sub/", type: "dir" },
      { name: "d/sub/one", content: "1" },
      { name: ".wh.d" },
      { name: "d/sub/two", content: "2" },
      { name: "e/", type: "dir" },
      { name: "e/f/", type: "dir" },
      { name: "e/f/old", content: "o" },
      { name: "e/.wh..wh..opq" },
      { name: "e/f/new", content: "n" },
    ]);
    outsideIntact();
    expect(readdirSync(join(root, "d/sub"))).toEqual(["two"]);
    expect(readdirSync(join(root, "e"))).toEqual(["f"]);
    // the opaque marker hides lower layers only: what this layer added stays
    expect(readdirSync(join(root, "e/f")).sort()).toEqual(["new", "old"]);
  });

  it("does not write into a cached directory that a file replaced", async () => {
    await expect(
      apply([
        { name: "g/", type: "dir" },
        { name: "g/h", content: "h" },
        { name: "g", content: "now a file" },
        { name: "g/h2", content: "h2" },
      ]),
    ).rejects.toThrow(/^layer L1: /);
    expect(readFileSync(join(root, "g"), "utf8")).toBe("now a file");
    outsideIntact();
  });
});
