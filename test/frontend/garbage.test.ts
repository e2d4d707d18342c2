// Robustness tests for the Dockerfile parser (src/frontend/parse.ts): random bytes, token soup,
// huge lines, unterminated heredocs and deep nesting must give a valid AST or a one-line
// DockerfileError, quickly, never a crash or a hang.

import { describe, it, expect } from "vitest";
import { parseDockerfile, MAX_LINE_BYTES } from "../../src/frontend/parse.js";
import { dumpBuildkit } from "../../src/frontend/dump.js";
import { DockerfileError } from "../../src/errors.js";
import type { DockerfileAST } from "../../src/frontend/ast.js";

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Outcome = { ast: DockerfileAST } | { error: DockerfileError };

/** Parse and check the invariants every outcome must satisfy. */
function outcome(text: string): Outcome {
  let ast: DockerfileAST;
  try {
    ast = parseDockerfile(text, { file: "Fuzz.Dockerfile" });
  } catch (err) {
    if (!(err instanceof DockerfileError)) throw err;
    expect(err.message.includes("\n")).toBe(false);
    expect(err.message.startsWith("Fuzz.Dockerfile")).toBe(true);
    expect(err.message.length).toBeLessThan(400);
    return { error: err };
  }
  // Plain checks (one expect at the end) keep this cheap for 100k-instruction inputs.
  const problems: string[] = [];
  if (ast.instructions.length === 0) problems.push("no instructions");
  let last = 0;
  for (const ins of ast.instructions) {
    if (ins.startLine <= last) problems.push(`line ${ins.startLine} not after ${last}`);
    if (ins.endLine < ins.startLine) problems.push(`endLine ${ins.endLine} < startLine ${ins.startLine}`);
    last = ins.endLine;
    if (ins.args.some((a) => typeof a !== "string")) problems.push(`non-string arg at ${ins.startLine}`);
  }
  if (typeof dumpBuildkit(ast) !== "string") problems.push("dump failed");
  expect(problems).toEqual([]);
  return { ast };
}

function timed<T>(fn: () => T): { value: T; ms: number } {
  const t0 = performance.now();
  const value = fn();
  return { value, ms: performance.now() - t0 };
}

const MB = 1024 * 1024;

describe("random input", () => {
  it("random bytes decoded as UTF-8 never crash the parser", () => {
    const next = rng(1);
    const decoder = new TextDecoder("utf-8", { fatal: false });
    let errors = 0;
    for (let round = 0; round < 300; round++) {
      const bytes = new Uint8Array(1 + Math.floor(next() * 3000));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
      if ("error" in outcome(decoder.decode(bytes))) errors++;
    }
    expect(errors).toBeGreaterThan(0);
  });

  it("token soup built from Dockerfile syntax gives an AST or a DockerfileError", () => {
    const tokens = [
      "FROM", "RUN", "COPY", "ADD", "ENV", "LABEL", "ARG", "ONBUILD", "HEALTHCHECK", "CMD", "SHELL",
      "run", "Copy", " ", " ", "\t", "\n", "\n", "\r\n", "\\", "\\\n", "`", "#", "# escape=`\n",
      "# syntax=x\n", '"', "'", "[", "]", ",", "=", "a", "b=c", "--from=x", "--", "--link", "<<EOF",
      "<<-EOF", "<<'EOF'", "EOF\n", "\tEOF\n", "$x", "${y:-z}", "\u0000", "\ufeff", "\ud800", "é", "🎉",
      '["a","b"]', "[1]", "[[", "NONE", "CMD ", "\u0085", "\u00a0",
    ];
    const next = rng(2);
    const seen = { ast: 0, error: 0 };
    for (let round = 0; round < 3000; round++) {
      const n = 1 + Math.floor(next() * 40);
      let text = "";
      for (let i = 0; i < n; i++) text += tokens[Math.floor(next() * tokens.length)];
      const result = outcome(text);
      if ("ast" in result) seen.ast++;
      else seen.error++;
    }
    expect(seen.ast).toBeGreaterThan(0);
    expect(seen.error).toBeGreaterThan(0);
  });

  it("handles NUL bytes, lone surrogates and control characters in arguments", () => {
    const result = outcome('FROM a\nRUN \u0000\u0001\nCMD ["\\ud800x", "\\u0007"]\nLABEL k=\ud800\n');
    expect("ast" in result).toBe(true);
    if ("ast" in result) {
      expect(result.ast.instructions[2].args).toEqual(["\ufffdx", "\u0007"]);
      expect(dumpBuildkit(result.ast)).toContain('(cmd "\ufffdx" "\\a")');
    }
  });

  it("handles files that are only escapes, blanks or quotes", () => {
    for (const text of ["\\", "\\\n\\\n", "`", "   \n\t\n", "'", '"', "[", "<<EOF", "#", "\r", "\r\n\r\n"]) {
      outcome(text);
    }
  });
});

describe("size limits and speed", () => {
  it("rejects a 50 MB single line quickly with BuildKit's line limit", () => {
    const text = "FROM a\nRUN " + "x".repeat(50 * MB) + "\n";
    const { value, ms } = timed(() => outcome(text));
    expect(ms).toBeLessThan(3000);
    expect("error" in value && value.error.message).toBe(
      `Fuzz.Dockerfile:2: line is longer than the maximum of ${MAX_LINE_BYTES} bytes`,
    );
  });

  it("accepts a line right at the limit and counts UTF-8 bytes", () => {
    const prefix = "RUN ";
    expect("ast" in outcome(prefix + "a".repeat(MAX_LINE_BYTES - prefix.length))).toBe(true);
    expect("error" in outcome(prefix + "a".repeat(MAX_LINE_BYTES - prefix.length + 1))).toBe(true);
    // 30000 "é" are 60000 bytes in UTF-8: fine; 40000 are 80000 bytes: too long.
    expect("ast" in outcome(prefix + "é".repeat(30000))).toBe(true);
    expect("error" in outcome(prefix + "é".repeat(40000))).toBe(true);
  });

  it("parses a 20 MB logical line made of continuation lines in linear time", () => {
    const physical = "a ".repeat(30000) + "\\\n";
    const count = Math.ceil((20 * MB) / physical.length);
    const text = "FROM a\nRUN " + physical.repeat(count) + "end\n";
    const { value, ms } = timed(() => outcome(text));
    expect(ms).toBeLessThan(3000);
    expect("ast" in value && value.ast.instructions[1].args[0].length).toBe(count * 60000 + 3);
  });

  it("parses a 10 MB heredoc body and 50k short instructions quickly", () => {
    const body = "echo some text here\n".repeat(MB / 2);
    const heredoc = timed(() => outcome("FROM a\nRUN <<EOF\n" + body + "EOF\n"));
    expect(heredoc.ms).toBeLessThan(3000);
    expect("ast" in heredoc.value && heredoc.value.ast.instructions[1].heredocs[0].content.length).toBe(body.length);

    const many = timed(() => outcome("FROM a\n" + "RUN echo hi \\\n  there\nENV a=b c=d\n".repeat(25000)));
    expect(many.ms).toBeLessThan(3000);
    expect("ast" in many.value && many.value.ast.instructions.length).toBe(50001);
  });

  it("fails fast on an unterminated heredoc with a large body", () => {
    const { value, ms } = timed(() => outcome("FROM a\n\nRUN <<EOF\n" + "data\n".repeat(2 * MB)));
    expect(ms).toBeLessThan(3000);
    expect("error" in value && value.error.message).toBe('Fuzz.Dockerfile:3: unterminated heredoc "EOF" (started here)');
  });

  it("handles thousands of heredoc openers on one line", () => {
    const line = "RUN " + "<<EOF ".repeat(10000);
    const closed = timed(() => outcome(`FROM a\n${line}\n${"EOF\n".repeat(10000)}`));
    expect(closed.ms).toBeLessThan(3000);
    expect("ast" in closed.value && closed.value.ast.instructions[1].heredocs.length).toBe(10000);
    expect("error" in outcome(`FROM a\n${line}\nEOF\n`)).toBe(true);
  });
});

describe("deep nesting", () => {
  it("limits ONBUILD nesting with a clear error", () => {
    const text = "FROM a\n" + "ONBUILD ".repeat(5000) + "RUN x\n";
    const { value, ms } = timed(() => outcome(text));
    expect(ms).toBeLessThan(1000);
    expect("error" in value && value.error.message).toBe("Fuzz.Dockerfile:2: ONBUILD nested too deeply");
    expect("ast" in outcome("ONBUILD ONBUILD RUN x")).toBe(true);
  });

  it("treats very deep JSON as Go does: error up to depth 10000, shell form beyond", () => {
    const nested = (depth: number) => "CMD " + "[".repeat(depth) + "]".repeat(depth);
    const shallow = outcome(nested(10000));
    expect("error" in shallow && shallow.error.message).toContain("arrays must be comprised of strings only");
    const deep = outcome(nested(10001));
    expect("ast" in deep && deep.ast.instructions[0].json).toBe(false);
    const unbalanced = outcome("CMD " + "[".repeat(60000));
    expect("ast" in unbalanced && unbalanced.ast.instructions[0].args[0].length).toBe(60000);
  });

  it("handles many nested quotes and flags", () => {
    outcome("COPY " + "--a=\"".repeat(10000) + " x y");
    outcome("ENV " + "a=\"'".repeat(10000));
    outcome("LABEL " + "'\"".repeat(20000) + "=x");
  });
});
