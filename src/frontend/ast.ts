// The Dockerfile AST: what the parser produces from text, before any typing or expansion.
// It mirrors BuildKit's parser.Node closely enough to dump BuildKit's `result` format.

/** A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<a.txt /dst`). */
export interface Heredoc {
  /** The delimiter word without quotes or `-` (e.g. `EOF`). */
  name: string;
  /** The body, lines joined with "\n", ending with "\n" when non-empty; tabs stripped for `<<-`. */
  content: string;
  /** False when the delimiter was quoted (`<<"EOF"` / `<<'EOF'`): the body is not expanded. */
  expand: boolean;
  /** True for `<<-EOF` (leading tabs were stripped from the body). */
  chomp: boolean;
}

/** One parsed instruction. */
export interface Instruction {
  /** Lower-case keyword, e.g. "run", "copy", "from". */
  keyword: string;
  /** The instruction exactly as written, continuation lines joined (for history / errors). */
  original: string;
  /** 1-based line of the keyword, and of the last line belonging to the instruction. */
  startLine: number;
  endLine: number;
  /** Raw flags as written, e.g. ["--from=build", "--chown=1:1"] (BuildKit's Node.Flags). */
  flags: string[];
  /**
   * Arguments the way BuildKit's Node.Next chain holds them:
   * - JSON (exec) form: the decoded strings;
   * - ENV / LABEL / ARG-like key=value instructions: triples [key, value, "=" or ""] for ENV/LABEL;
   * - most shell-form instructions: one string with the rest of the line (RUN, CMD, ENTRYPOINT,
   *   SHELL-less forms) or whitespace-split words (COPY, ADD, EXPOSE, VOLUME, ...), as BuildKit does.
   */
  args: string[];
  /** True when the arguments were written in JSON (exec) form. */
  json: boolean;
  /** Heredocs in the order they appear on the line. */
  heredocs: Heredoc[];
  /** For ONBUILD: the wrapped instruction. */
  inner?: Instruction;
}

/** A parser directive at the top of the file (`# syntax=...`, `# escape=\``, `# check=...`). */
export interface Directive {
  name: string;
  value: string;
  line: number;
}

/** Non-fatal observations made while parsing (e.g. empty continuation lines). */
export interface ParseWarning {
  line: number;
  message: string;
}

export interface DockerfileAST {
  directives: Directive[];
  /** The escape token in force: "\\" (default) or "`". */
  escapeToken: "\\" | "`";
  instructions: Instruction[];
  warnings: ParseWarning[];
}
