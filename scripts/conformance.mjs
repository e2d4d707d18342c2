#!/usr/bin/env node
// Conformance runner: checks kiln's Dockerfile parser and word expansion against a corpus in
// BuildKit's test format (parser/testfiles, parser/testfiles-negative, shell/envVarTest,
// shell/wordsTest). Uses the compiled code in ../dist (build it with `npx tsc -p tsconfig.json`).
//
//   node scripts/conformance.mjs <corpus-dir> [--quiet]
//
// Prints PASS/FAIL per case (failures with a short diff), totals per section and a final line
// `N passed, N failed, N skipped`. Exits 1 when anything failed, 2 on usage errors.

import { readFileSync, readdirSync, statSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const quiet = args.includes("--quiet") || args.includes("-q");
const corpus = args.find((a) => !a.startsWith("-"));
if (corpus === undefined) {
  console.error("usage: node scripts/conformance.mjs <corpus-dir> [--quiet]");
  process.exit(2);
}
if (!existsSync(corpus) || !statSync(corpus).isDirectory()) {
  console.error(`conformance: ${corpus}: not a directory`);
  process.exit(2);
}

// ---- load compiled modules, warn when dist is older than src ----------------------------------

function distPath(name) {
  return join(root, "dist", "frontend", `${name}.js`);
}

function checkStale(name) {
  const src = join(root, "src", "frontend", `${name}.ts`);
  const out = distPath(name);
  if (existsSync(src) && existsSync(out) && statSync(src).mtimeMs > statSync(out).mtimeMs) {
    console.error(`conformance: warning: dist/frontend/${name}.js is older than src/frontend/${name}.ts (stale build); run: npx tsc -p tsconfig.json`);
  }
}

async function load(name) {
  const file = distPath(name);
  if (!existsSync(file)) return { error: `dist/frontend/${name}.js not built (run: npx tsc -p tsconfig.json)` };
  checkStale(name);
  try {
    return { mod: await import(pathToFileURL(file).href) };
  } catch (err) {
    return { error: `dist/frontend/${name}.js failed to load: ${oneLine(err)}` };
  }
}

function oneLine(err) {
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return msg.split("\n")[0];
}

const parseMod = await load("parse");
const dumpMod = await load("dump");
const expandMod = await load("expand");

// ---- reporting ---------------------------------------------------------------------------------

const sections = [];
let current;

function section(name) {
  current = { name, passed: 0, failed: 0, skipped: 0 };
  sections.push(current);
  console.log(`\n== ${name}`);
}

function pass(name) {
  current.passed++;
  if (!quiet) console.log(`PASS ${name}`);
}

function fail(name, detail) {
  current.failed++;
  console.log(`FAIL ${name}`);
  if (detail) for (const line of detail.split("\n")) console.log(`     ${line}`);
}

function skip(name, why) {
  current.skipped++;
  if (!quiet) console.log(`SKIP ${name}${why ? ` (${why})` : ""}`);
}

function show(s) {
  return JSON.stringify(s);
}

/** First few differing lines of two texts. */
function lineDiff(expected, actual) {
  const e = expected.split("\n");
  const a = actual.split("\n");
  const out = [];
  for (let i = 0; i < Math.max(e.length, a.length) && out.length < 6; i++) {
    if (e[i] !== a[i]) {
      out.push(`line ${i + 1}:`);
      out.push(`  - ${e[i] === undefined ? "(missing)" : e[i]}`);
      out.push(`  + ${a[i] === undefined ? "(missing)" : a[i]}`);
    }
  }
  return out.join("\n");
}

function listDirs(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => statSync(join(dir, n)).isDirectory()).sort();
}

function trimEndNewlines(s) {
  return s.replace(/(\r?\n)+$/, "");
}

// ---- parser: positive cases ------------------------------------------------------------------

section("parser");
{
  const dir = join(corpus, "parser", "testfiles");
  for (const name of listDirs(dir)) {
    const dockerfile = join(dir, name, "Dockerfile");
    const resultFile = join(dir, name, "result");
    if (!existsSync(dockerfile) || !existsSync(resultFile)) {
      skip(name, "no Dockerfile/result");
      continue;
    }
    if (parseMod.error || dumpMod.error) {
      fail(name, parseMod.error ?? dumpMod.error);
      continue;
    }
    const expected = trimEndNewlines(readFileSync(resultFile, "utf8"));
    let actual;
    try {
      const ast = parseMod.mod.parseDockerfile(readFileSync(dockerfile, "utf8"), { file: "Dockerfile" });
      actual = trimEndNewlines(dumpMod.mod.dumpBuildkit(ast));
    } catch (err) {
      fail(name, `parse failed: ${oneLine(err)}`);
      continue;
    }
    if (actual === expected) pass(name);
    else fail(name, lineDiff(expected, actual));
  }
}

// ---- parser: negative cases ------------------------------------------------------------------

section("parser-negative");
{
  const dir = join(corpus, "parser", "testfiles-negative");
  for (const name of listDirs(dir)) {
    const dockerfile = join(dir, name, "Dockerfile");
    if (!existsSync(dockerfile)) {
      skip(name, "no Dockerfile");
      continue;
    }
    if (parseMod.error) {
      fail(name, parseMod.error);
      continue;
    }
    try {
      const ast = parseMod.mod.parseDockerfile(readFileSync(dockerfile, "utf8"), { file: "Dockerfile" });
      fail(name, `expected a parse error, got ${ast.instructions.length} instruction(s)`);
    } catch (err) {
      if (err instanceof Error && (err.name === "DockerfileError" || err.name === "KilnError")) pass(name);
      else fail(name, `expected a DockerfileError, got a crash: ${oneLine(err)}`);
    }
  }
}

// ---- shell: envVarTest -----------------------------------------------------------------------

const shellEnv = new Map([
  ["PWD", "/home"],
  ["SHELL", "bash"],
  ["KOREAN", "한국어"],
  ["NULL", ""],
]);

section("shell/envVarTest");
{
  const file = join(corpus, "shell", "envVarTest");
  const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
  lines.forEach((raw, idx) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.trimStart().startsWith("#")) return;
    const name = `envVarTest:${idx + 1} ${line.trim()}`;
    const fields = line.split("|");
    if (fields.length !== 3) {
      fail(name, "malformed test line (want P|input|expected)");
      return;
    }
    const [platform, input, expected] = fields.map((f) => f.trim());
    if (platform === "W") {
      skip(name, "windows");
      return;
    }
    if (platform !== "A" && platform !== "U") {
      fail(name, `unknown platform ${show(platform)}`);
      return;
    }
    if (expandMod.error || typeof expandMod.mod?.expandWord !== "function") {
      fail(name, expandMod.error ?? "expand.js has no expandWord export");
      return;
    }
    let got;
    try {
      got = expandMod.mod.expandWord(input, shellEnv, { escapeToken: "\\" });
    } catch (err) {
      if (expected === "error") pass(name);
      else fail(name, `expected ${show(expected)}, got error: ${oneLine(err)}`);
      return;
    }
    if (expected === "error") fail(name, `expected an error, got ${show(got)}`);
    else if (got === expected) pass(name);
    else fail(name, `expected ${show(expected)}, got ${show(got)}`);
  });
}

// ---- shell: wordsTest ------------------------------------------------------------------------

section("shell/wordsTest");
{
  const file = join(corpus, "shell", "wordsTest");
  const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
  const env = new Map();
  lines.forEach((raw, idx) => {
    const line = raw.replace(/\r$/, "").replace(/^[ \t]+/, "");
    if (line === "" || line.startsWith("#")) return;
    if (line.startsWith("ENV ")) {
      const def = line.slice(4).replace(/^ +/, "");
      const eq = def.indexOf("=");
      if (eq < 0) env.set(def, "");
      else env.set(def.slice(0, eq), def.slice(eq + 1));
      return;
    }
    const name = `wordsTest:${idx + 1} ${line.trim()}`;
    const fields = line.split("|");
    if (fields.length !== 2) {
      fail(name, "malformed test line (want input | w1,w2,...)");
      return;
    }
    const input = fields[0].trim();
    const expected = fields[1].replace(/^ +/, "").split(",");
    if (expandMod.error || typeof expandMod.mod?.expandWords !== "function") {
      fail(name, expandMod.error ?? "expand.js has no expandWords export");
      return;
    }
    let got;
    try {
      got = expandMod.mod.expandWords(input, new Map(env), { escapeToken: "\\" });
    } catch {
      got = ["error"];
    }
    if (JSON.stringify(got) === JSON.stringify(expected)) pass(name);
    else fail(name, `expected ${show(expected)}, got ${show(got)}`);
  });
}

// ---- totals ----------------------------------------------------------------------------------

console.log("");
let passed = 0;
let failed = 0;
let skipped = 0;
for (const s of sections) {
  console.log(`${s.name}: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
  passed += s.passed;
  failed += s.failed;
  skipped += s.skipped;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
