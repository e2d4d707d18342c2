// The docs users copy from (docs/*.md and README.md): every `kiln ...` command line in them —
// shell blocks, the `run:`/`script:` lines of their YAML blocks (GitHub Actions, GitLab CI), and
// inline code spans — is accepted by kiln's own argument parser (checkCommandLine: the command and
// options exist, every value the command line decides is valid); every YAML block parses; every
// repository path they name (a `src/...`-style code span, a relative link) exists. Synopsis
// lines (placeholders such as [OPTIONS], REF..., a|b) are not command lines and are skipped.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { checkCommandLine } from "../../src/cli/check.js";
import { REPO_ROOT } from "../helpers/kiln.js";
import { shellWords } from "../helpers/shell-words.js";
import { GITLAB_CI_ENV } from "../helpers/ci-env.js";

const DOCS = join(REPO_ROOT, "docs");
const FILES = [...readdirSync(DOCS).filter((f) => f.endsWith(".md")).map((f) => join(DOCS, f)), join(REPO_ROOT, "README.md")];

/** Values for the variables the docs' commands use (CI variables, shell ones). */
const ENV: Record<string, string> = {
  ...GITLAB_CI_ENV,
  PATH: "/usr/bin:/bin",
  HOME: "/home/runner",
  TOKEN: "token",
};

interface Block {
  lang: string;
  text: string;
  line: number;
}

function fencedBlocks(md: string): Block[] {
  const out: Block[] = [];
  const lines = md.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    while (++i < lines.length && !/^```\s*$/.test(lines[i]!)) body.push(lines[i]!);
    out.push({ lang: open[1]!, text: body.join("\n"), line: start + 1 });
  }
  return out;
}

/** Markdown outside fenced blocks. */
function prose(md: string): string {
  return md.replace(/^```[\s\S]*?^```\s*$/gm, "");
}

/** GitHub's ${{ expr }} become plain values (as the runner substitutes them before the shell runs). */
function githubExpressions(s: string): string {
  return s.replace(/\$\{\{\s*([\w.]+)\s*\}\}/g, (_m, e: string) => ({ "github.repository": "owner/repo", "github.sha": "0123abcd", "github.actor": "octocat" })[e] ?? "value");
}

/** The kiln command lines (argv without "kiln") of a shell text: continuations joined, `|`/`&&`/`;` split, sudo/env/VAR= prefixes dropped. */
function kilnLines(text: string): string[][] {
  const out: string[][] = [];
  const joined = githubExpressions(text).replace(/\\\n\s*/g, " ");
  for (const raw of joined.split("\n")) {
    const line = raw.replace(/^\s*(?:\$ |- )?/, "").trim();
    if (line.startsWith("#") || !/\bkiln\b/.test(line)) continue;
    for (const part of line.split(/\s*(?:\|\||&&|\||;)\s*/)) {
      let w = shellWords(part.trim(), ENV);
      while (w.length > 0 && (w[0] === "sudo" || w[0] === "env" || /^\w+=/.test(w[0]!))) w = w.slice(1);
      if (w[0] === "kiln") out.push(w.slice(1));
    }
  }
  return out;
}

/** Every string under `run` / `script` keys of parsed YAML (GitHub steps, GitLab jobs). */
function yamlScripts(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) yamlScripts(v, out);
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if ((k === "run" || k === "script") && typeof v === "string") out.push(v);
      else if (k === "script" && Array.isArray(v)) out.push(...v.filter((x): x is string => typeof x === "string"));
      else yamlScripts(v, out);
    }
  }
  return out;
}

const SYNOPSIS = /\[[A-Z]|[A-Z]{2,}\.\.\.|\w\|\w|<\w/;

function accepted(argv: string[]): string {
  try {
    checkCommandLine(argv);
    return "ok";
  } catch (e) {
    return `${(e as Error).message}`;
  }
}

function commandsOf(file: string): Array<{ where: string; argv: string[] }> {
  const md = readFileSync(file, "utf8");
  const name = file.slice(REPO_ROOT.length);
  const found: Array<{ where: string; argv: string[] }> = [];
  for (const b of fencedBlocks(md)) {
    if (b.lang === "yaml" || b.lang === "yml") {
      for (const doc of parseAllDocuments(b.text)) {
        expect(doc.errors, `${name}:${b.line}: YAML`).toEqual([]);
        for (const script of yamlScripts(doc.toJS())) for (const argv of kilnLines(script)) found.push({ where: `${name}:${b.line}`, argv });
      }
    } else if (["sh", "bash", "console", "shell"].includes(b.lang)) {
      if (SYNOPSIS.test(b.text)) continue;
      for (const argv of kilnLines(b.text)) found.push({ where: `${name}:${b.line}`, argv });
    }
  }
  // inline spans: `kiln CMD` alone names a command; a longer span is a command line, and a
  // `kiln build ...` fragment without its CONTEXT is checked with one
  for (const m of prose(md).matchAll(/`(kiln [^`]+)`/g)) {
    const span = m[1]!.replace(/\s+/g, " ");
    if (SYNOPSIS.test(span) || span.includes("...") || /\bkiln (run|push) IMAGE\b/.test(span)) continue;
    for (const argv of kilnLines(span)) {
      if (argv.length < 2) continue;
      const last = argv.at(-1)!;
      const complete = argv[0] !== "build" || (!last.startsWith("-") && argv.length > 2 && !/^[A-Z]+$/.test(last) && !argv.at(-2)!.startsWith("-")) || last === "." || last === "-";
      found.push({ where: `${name}: \`${span}\``, argv: complete ? argv : [...argv, "."] });
    }
  }
  return found;
}

describe("docs/ and README.md", () => {
  it("has the pages users look for", () => {
    for (const page of ["github-actions.md", "gitlab-ci.md", "kubernetes.md", "comparison.md", "troubleshooting.md"]) expect(existsSync(join(DOCS, page)), page).toBe(true);
  });

  it("the check is not vacuous: a misspelt option or value is caught", () => {
    expect(kilnLines("sudo env A=1 kiln build --pul always .")).toEqual([["build", "--pul", "always", "."]]);
    expect(accepted(["build", "--pul", "always", "."])).toMatch(/unknown option --pul/);
    expect(accepted(["build", "--cache-to", "type=gha", "."])).toMatch(/type=gha is not supported/);
    expect(kilnLines("echo x | kiln login r -u u --password-stdin && kiln build .")).toHaveLength(2);
  });

  for (const file of FILES) {
    it(`${file.slice(REPO_ROOT.length)}: every kiln command line is accepted`, () => {
      const cmds = commandsOf(file);
      if (file.startsWith(DOCS) && !file.endsWith("README.md") && !file.endsWith("comparison.md")) expect(cmds.length, file).toBeGreaterThan(0);
      const refused = cmds.map((c) => ({ ...c, result: accepted(c.argv) })).filter((c) => c.result !== "ok").map((c) => `${c.where}: kiln ${c.argv.join(" ")}: ${c.result}`);
      expect(refused).toEqual([]);
    });

    it(`${file.slice(REPO_ROOT.length)}: every path it names exists`, () => {
      const md = readFileSync(file, "utf8");
      const missing: string[] = [];
      for (const m of md.matchAll(/`((?:src|test|scripts|examples|docs|image|testdata|bin)\/[\w./@-]*)`/g)) {
        const p = m[1]!.replace(/[.,]$/, "");
        if (!existsSync(join(REPO_ROOT, p))) missing.push(p);
      }
      for (const m of md.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        if (!existsSync(resolve(dirname(file), target))) missing.push(target);
      }
      expect(missing).toEqual([]);
    });
  }
});
