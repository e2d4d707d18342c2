// The shape of src/: the import graph (static, type-only, re-exports and dynamic imports alike,
// read with a small regex walk) has no cycle, and no folder imports a folder above it in the
// flow frontend (dockerfile) → engine (build, container) → (fs, run, context, cache, images) → (layer, image,
// registry, output) → store. The frontend comes first in the data flow but the engine calls it
// (build imports parse and plan; the frontend imports no engine code), so for imports it sits
// on the level below the engine, beside fs/run/context/cache. Folders on one level may import
// each other, but not both ways.
import { describe, it, expect } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(__dirname, "../src");

/** Each top-level folder (or root file) of src/ and its level: lower numbers sit higher in the flow. */
const LEVEL: Record<string, number> = {
  cli: 0,
  index: 0,
  engine: 1,
  doctor: 1,
  frontend: 2,
  snapshot: 2,
  run: 2,
  attest: 2,
  context: 2,
  cache: 2,
  images: 2,
  container: 1,
  layer: 3,
  image: 3,
  registry: 3,
  output: 3,
  store: 4,
  // leaves every module may use
  errors: 5,
  units: 5,
  version: 5,
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith(".ts")) out.push(p);
  }
  return out;
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g;

/** module (path relative to src/) → the modules it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const targets = new Set<string>();
    for (const m of readFileSync(file, "utf8").matchAll(IMPORT)) {
      targets.add(relative(SRC, resolve(dirname(file), m[1]!.replace(/\.js$/, ".ts"))));
    }
    graph.set(relative(SRC, file), [...targets]);
  }
  return graph;
}

const folderOf = (module: string): string => (module.includes("/") ? module.slice(0, module.indexOf("/")) : module.replace(/\.ts$/, ""));

/** Cycles (strongly connected components of more than one node, or a self-loop), each sorted. */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

function folderGraph(graph: Map<string, string[]>): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const [from, to] of graph) {
    const f = folderOf(from);
    const set = out.get(f) ?? new Set<string>();
    for (const t of to) if (folderOf(t) !== f) set.add(folderOf(t));
    out.set(f, set);
  }
  return new Map([...out].map(([k, v]) => [k, [...v]]));
}

describe("architecture", () => {
  const graph = importGraph();

  it("finds the modules and their imports", () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(graph.get("index.ts")).toContain("engine/build.ts");
    for (const targets of graph.values()) for (const t of targets) expect(graph.has(t), `import of a missing module ${t}`).toBe(true);
  });

  it("places every folder of src/ on a level of the flow", () => {
    const unplaced = [...new Set([...graph.keys()].map(folderOf))].filter((f) => LEVEL[f] === undefined);
    expect(unplaced, "add new folders to LEVEL").toEqual([]);
  });

  it("has no import cycle between modules", () => {
    expect(cycles(graph)).toEqual([]);
  });

  it("has no folder importing a folder above it in the flow", () => {
    const upward: string[] = [];
    for (const [from, to] of graph) {
      for (const t of to) {
        if (LEVEL[folderOf(t)]! < LEVEL[folderOf(from)]!) upward.push(`${from} -> ${t}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it("has no cycle between folders", () => {
    expect(cycles(folderGraph(graph))).toEqual([]);
  });
});
