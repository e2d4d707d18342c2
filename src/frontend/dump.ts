// Dumps a DockerfileAST in BuildKit's parser test `result` format, one line per instruction:
// `(name ["--flag" ...] "arg" ...)`, strings quoted the way Go's strconv.Quote does. Used by the
// parser tests and scripts/conformance.mjs, not by the build.

import type { DockerfileAST, Instruction } from "./ast.js";
import { goQuote } from "./quote.js";

export { goQuote } from "./quote.js";

/** One instruction as BuildKit's Node.Dump prints it, without the trailing newline. */
export function dumpInstruction(ins: Instruction): string {
  const parts: string[] = [ins.keyword.toLowerCase()];
  if (ins.flags.length > 0) parts.push(`[${ins.flags.map(goQuote).join(" ")}]`);
  if (ins.inner !== undefined) parts.push(dumpInstruction(ins.inner));
  else for (const arg of ins.args) parts.push(goQuote(arg));
  return `(${parts.join(" ")})`;
}

/** The whole AST in BuildKit's `result` format: one line per instruction, each ending in "\n". */
export function dumpBuildkit(ast: DockerfileAST): string {
  return ast.instructions.map((ins) => dumpInstruction(ins) + "\n").join("");
}
