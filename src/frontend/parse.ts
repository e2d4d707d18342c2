// The Dockerfile parser: text -> DockerfileAST, following BuildKit's frontend/dockerfile/parser
// (parser.go, line_parsers.go, split_command.go, directives.go) rule for rule: parser
// directives, comments, line continuations, flags, JSON vs shell form, per-instruction
// argument splitting and heredocs. Typing and validation of instructions happen elsewhere.
// Every step is linear in the input size; bad input throws a one-line DockerfileError.

import type { DockerfileAST, Directive, Heredoc, Instruction, ParseWarning } from "./ast.js";
import { DockerfileError } from "../errors.js";
import { goQuote } from "./quote.js";
import { suggestInstruction } from "./suggest.js";

export interface ParseOptions {
  /** File name used in error messages (default "Dockerfile"). */
  file?: string;
}

type EscapeToken = "\\" | "`";

/** A problem found while parsing one logical line; turned into a DockerfileError by the caller. */
class LineError extends Error {}

/** What a per-instruction argument parser returns. */
interface ParsedArgs {
  args: string[];
  json: boolean;
  inner?: Instruction;
}

const KEYWORDS = new Set([
  "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
  "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
]);
const HEREDOC_KEYWORDS = new Set(["run", "copy", "add"]);
const VALID_DIRECTIVES = new Set(["syntax", "escape", "check"]);
/** ONBUILD may wrap an instruction; nesting beyond this is never valid and only costs time. */
const MAX_ONBUILD_DEPTH = 8;
/** Long user text is shortened in messages so an error stays one readable line. */
const MESSAGE_TEXT_LIMIT = 80;

// ---------------------------------------------------------------------------------------------
// Character classes (Go semantics)

/** Go's unicode.IsSpace. */
function isSpaceCode(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0x85) return false;
  return (
    c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000
  );
}

/** The `[\t\v\f\r ]` class BuildKit splits arguments on. */
function isTokenSpaceCode(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0b || c === 0x0c || c === 0x0d;
}

/** RE2's `\s`: `[\t\n\f\r ]`. */
function isRe2SpaceCode(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d;
}

function trimLeftSpace(s: string): string {
  let i = 0;
  while (i < s.length && isSpaceCode(s.charCodeAt(i))) i++;
  return i === 0 ? s : s.slice(i);
}

function trimSpace(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isSpaceCode(s.charCodeAt(start))) start++;
  while (end > start && isSpaceCode(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/** Strip trailing "\r" / "\n" characters (bytes.TrimRight(line, "\r\n")). */
function trimNewline(s: string): string {
  let end = s.length;
  while (end > 0) {
    const c = s.charCodeAt(end - 1);
    if (c !== 0x0d && c !== 0x0a) break;
    end--;
  }
  return end === s.length ? s : s.slice(0, end);
}

function isComment(line: string): boolean {
  let i = 0;
  while (i < line.length && isSpaceCode(line.charCodeAt(i))) i++;
  return i < line.length && line.charCodeAt(i) === 0x23; // '#'
}

function isBlank(line: string): boolean {
  for (let i = 0; i < line.length; i++) if (!isSpaceCode(line.charCodeAt(i))) return false;
  return true;
}

/** Shorten and quote user text for a one-line message. */
function quoteForMessage(s: string): string {
  return goQuote(s.length > MESSAGE_TEXT_LIMIT ? s.slice(0, MESSAGE_TEXT_LIMIT) + "..." : s);
}

// ---------------------------------------------------------------------------------------------
// Directives

class DirectiveState {
  escapeToken: EscapeToken = "\\";
  done = false;
  readonly found: Directive[] = [];

  /** Look at a (left-trimmed) first line of a logical line for `# name=value`. */
  consider(line: string, lineNo: number): void {
    if (this.done) return;
    if (line.charCodeAt(0) !== 0x23) {
      this.done = true;
      return;
    }
    const parsed = parseDirectiveBody(trimLeftSpace(line.slice(1)));
    if (parsed === undefined) {
      this.done = true;
      return;
    }
    const name = parsed.name.toLowerCase();
    if (!VALID_DIRECTIVES.has(name)) {
      this.done = true;
      return;
    }
    if (this.found.some((d) => d.name === name)) {
      throw new LineError(`only one ${name} parser directive can be used`);
    }
    if (name === "escape") {
      if (parsed.value !== "\\" && parsed.value !== "`") {
        throw new LineError(`invalid escape token ${quoteForMessage(parsed.value)} does not match \` or \\`);
      }
      this.escapeToken = parsed.value;
    }
    this.found.push({ name, value: parsed.value, line: lineNo });
  }
}

/** Match `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` (RE2 semantics) without backtracking. */
function parseDirectiveBody(s: string): { name: string; value: string } | undefined {
  const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
  if (s.length === 0 || !isAlpha(s.charCodeAt(0))) return undefined;
  let i = 1;
  while (i < s.length && (isAlpha(s.charCodeAt(i)) || isDigit(s.charCodeAt(i)))) i++;
  const name = s.slice(0, i);
  while (i < s.length && isRe2SpaceCode(s.charCodeAt(i))) i++;
  if (s.charCodeAt(i) !== 0x3d) return undefined; // '='
  const rest = s.slice(i + 1);
  if (rest.length === 0) return undefined;
  // `.` does not match "\n"; lines never contain one here, but stay exact.
  if (rest.includes("\n")) return undefined;
  let start = 0;
  while (start < rest.length && isRe2SpaceCode(rest.charCodeAt(start))) start++;
  let end = rest.length;
  while (end > start && isRe2SpaceCode(rest.charCodeAt(end - 1))) end--;
  // All blank: the lazy group still has to take one character (the last one).
  if (start === end) return { name, value: rest.slice(rest.length - 1) };
  return { name, value: rest.slice(start, end) };
}

// ---------------------------------------------------------------------------------------------
// Line continuation

/**
 * BuildKit's continuation rule: the escape token as the last non-[ \t] character, either
 * alone on the line or preceded by a character other than the escape token.
 * Returns the line without it, and whether the logical line ends here.
 */
function trimContinuation(line: string, escape: EscapeToken): [string, boolean] {
  let end = line.length;
  while (end > 0) {
    const c = line.charCodeAt(end - 1);
    if (c !== 0x20 && c !== 0x09) break;
    end--;
  }
  if (end === 0 || line[end - 1] !== escape) return [line, true];
  if (end === 1) return ["", false];
  if (line[end - 2] === escape) return [line, true];
  return [line.slice(0, end - 1), false];
}

// ---------------------------------------------------------------------------------------------
// Command and flags (split_command.go)

/** Index of the first run of `[\t\v\f\r ]`, with its length, or undefined. */
function findTokenSpace(s: string): { index: number; length: number } | undefined {
  for (let i = 0; i < s.length; i++) {
    if (isTokenSpaceCode(s.charCodeAt(i))) {
      let j = i + 1;
      while (j < s.length && isTokenSpaceCode(s.charCodeAt(j))) j++;
      return { index: i, length: j - i };
    }
  }
  return undefined;
}

/**
 * Go's unicode.IsSpace applied to single bytes (split_command.go and the HEALTHCHECK parser
 * walk bytes, not runes). For valid text only the ASCII blanks matter; Go would also split
 * inside the UTF-8 encoding of characters containing byte 0x85 or 0xA0, which we do not copy.
 */
function isByteSpaceCode(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * Pull leading `--flag[=value]` words off the arguments. Quotes are removed and `\`
 * escapes the next character inside flag words; a bare `--` ends the flags.
 */
function extractBuilderFlags(line: string): [string, string[]] {
  const SPACES = 0;
  const WORD = 1;
  const QUOTE = 2;
  const flags: string[] = [];
  let phase = SPACES;
  let quote = 0;
  let blankOK = false;
  const parts: string[] = [];
  let segStart = -1;
  const n = line.length;
  const flush = (end: number): void => {
    if (segStart >= 0 && end > segStart) parts.push(line.slice(segStart, end));
    segStart = -1;
  };
  const take = (): string => {
    const word = parts.length === 1 ? parts[0] : parts.join("");
    parts.length = 0;
    return word;
  };
  for (let pos = 0; pos <= n; pos++) {
    const ch = pos < n ? line.charCodeAt(pos) : -1;
    if (phase === SPACES) {
      if (pos === n) break;
      if (isByteSpaceCode(ch)) continue;
      if (ch !== 0x2d || pos + 1 === n || line.charCodeAt(pos + 1) !== 0x2d) {
        return [line.slice(pos), flags];
      }
      phase = WORD;
      segStart = pos;
    }
    if (pos === n) {
      flush(n);
      const word = take();
      if (word !== "--" && (blankOK || word.length > 0)) flags.push(word);
      break;
    }
    if (phase === WORD) {
      if (isByteSpaceCode(ch)) {
        flush(pos);
        const word = take();
        phase = SPACES;
        if (word === "--") return [line.slice(pos), flags];
        if (blankOK || word.length > 0) flags.push(word);
        blankOK = false;
        continue;
      }
      if (ch === 0x27 || ch === 0x22) {
        flush(pos);
        quote = ch;
        blankOK = true;
        phase = QUOTE;
        segStart = pos + 1;
        continue;
      }
      if (ch === 0x5c) {
        flush(pos);
        if (pos + 1 === n) continue;
        pos++;
        segStart = pos;
      }
      continue;
    }
    // QUOTE
    if (ch === quote) {
      flush(pos);
      phase = WORD;
      segStart = pos + 1;
      continue;
    }
    if (ch === 0x5c) {
      flush(pos);
      if (pos + 1 === n) {
        phase = WORD;
        continue;
      }
      pos++;
      segStart = pos;
    }
  }
  return ["", flags];
}

// ---------------------------------------------------------------------------------------------
// Per-instruction argument parsers (line_parsers.go)

/**
 * Split on whitespace keeping quotes and escapes in the words (BuildKit's parseWords).
 * Each word is a slice of the input, except that an escape token ending the input is dropped.
 */
function parseWords(rest: string, escape: EscapeToken): string[] {
  const SPACES = 0;
  const WORD = 1;
  const QUOTE = 2;
  const esc = escape.charCodeAt(0);
  const words: string[] = [];
  const n = rest.length;
  let phase = SPACES;
  let quote = 0;
  let start = 0;
  let end = -1; // set when a trailing escape token was skipped
  for (let pos = 0; pos <= n; pos++) {
    const ch = pos < n ? rest.charCodeAt(pos) : -1;
    if (phase === SPACES) {
      if (pos === n) break;
      if (isSpaceCode(ch)) continue;
      phase = WORD;
      start = pos;
      end = -1;
    }
    if (pos === n) {
      const word = rest.slice(start, end >= 0 ? end : n);
      if (word.length > 0) words.push(word);
      break;
    }
    if (phase === WORD) {
      if (isSpaceCode(ch)) {
        phase = SPACES;
        const word = rest.slice(start, pos);
        if (word.length > 0) words.push(word);
        continue;
      }
      if (ch === 0x27 || ch === 0x22) {
        quote = ch;
        phase = QUOTE;
      }
      if (ch === esc) {
        if (pos + 1 === n) {
          end = pos;
          continue;
        }
        pos++;
      }
      continue;
    }
    // QUOTE
    if (ch === quote) phase = WORD;
    if (ch === esc && quote !== 0x27) {
      if (pos + 1 === n) {
        phase = WORD;
        end = pos;
        continue;
      }
      pos++;
    }
  }
  return words;
}

/** Go's `reWhitespace.Split(rest, 2)`: the text before the first blank run, and the rest. */
function splitOnceTokenSpace(rest: string): string[] {
  const m = findTokenSpace(rest);
  if (m === undefined) return [rest];
  return [rest.slice(0, m.index), rest.slice(m.index + m.length)];
}

/** parseStringsWhitespaceDelimited */
function parseWhitespaceDelimited(rest: string): string[] {
  if (rest === "") return [];
  return rest.split(/[\t\v\f\r ]+/);
}

/** parseNameVal: ENV / LABEL, both `k=v ...` and the legacy `k v` form, as triples. */
function parseNameVal(rest: string, key: string, escape: EscapeToken): string[] {
  const words = parseWords(rest, escape);
  if (words.length === 0) return [];
  if (!words[0].includes("=")) {
    const parts = splitOnceTokenSpace(rest);
    if (parts.length < 2) throw new LineError(`${key} must have two arguments`);
    return [parts[0], parts[1], ""];
  }
  const out: string[] = [];
  for (const word of words) {
    const eq = word.indexOf("=");
    if (eq < 0) {
      throw new LineError(`Syntax error - can't find = in ${quoteForMessage(word)}. Must be of the form: name=value`);
    }
    out.push(word.slice(0, eq), word.slice(eq + 1), "=");
  }
  return out;
}

const NOT_JSON = Symbol("not json");

/** parseJSON: a JSON array of strings, NOT_JSON when the text is not one. */
function parseJSON(rest: string): string[] | typeof NOT_JSON {
  const text = trimLeftSpace(rest);
  if (!text.startsWith("[")) return NOT_JSON;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
  if (!Array.isArray(value)) return NOT_JSON;
  // Go's decoder fails (-> shell form) on numbers it cannot hold, before type checks matter.
  if (value.some((v) => typeof v === "number" && !Number.isFinite(v))) return NOT_JSON;
  const out: string[] = [];
  for (const v of value) {
    if (typeof v !== "string") {
      // Go's decoder refuses nesting deeper than 10000 (a syntax error -> shell form).
      if (typeof v === "object" && v !== null && jsonNestingExceeds(text, GO_JSON_MAX_DEPTH)) return NOT_JSON;
      throw new LineError("when using JSON array syntax, arrays must be comprised of strings only");
    }
    out.push(toWellFormed(v));
  }
  return out;
}

const GO_JSON_MAX_DEPTH = 10000;

/** Whether valid JSON `text` nests arrays/objects deeper than `limit`. */
function jsonNestingExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** Lone surrogates from `\ud800` escapes become U+FFFD, as in Go. */
function toWellFormed(s: string): string {
  if (!/[\ud800-\udfff]/.test(s)) return s;
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** parseMaybeJSON: exec form when valid JSON, else the whole text as one string. */
function parseMaybeJSON(rest: string): ParsedArgs {
  if (rest === "") return { args: [], json: false };
  const parsed = parseJSON(rest);
  if (parsed !== NOT_JSON) return { args: parsed, json: true };
  return { args: [rest], json: false };
}

/** parseMaybeJSONToList: exec form when valid JSON, else whitespace-split words. */
function parseMaybeJSONToList(rest: string): ParsedArgs {
  const parsed = parseJSON(rest);
  if (parsed !== NOT_JSON) return { args: parsed, json: true };
  return { args: parseWhitespaceDelimited(rest), json: false };
}

/** parseHealthConfig: the type word (CMD / NONE / ...) then parseMaybeJSON of the rest. */
function parseHealthConfig(rest: string): ParsedArgs {
  let sep = 0;
  while (sep < rest.length && !isByteSpaceCode(rest.charCodeAt(sep))) sep++;
  let next = sep;
  while (next < rest.length && isByteSpaceCode(rest.charCodeAt(next))) next++;
  if (sep === 0) return { args: [], json: false };
  const cmd = parseMaybeJSON(rest.slice(next));
  return { args: [rest.slice(0, sep), ...cmd.args], json: cmd.json };
}

// ---------------------------------------------------------------------------------------------
// One logical line -> Instruction (without line numbers)

function instructionFromLine(line: string, escape: EscapeToken, depth: number): Instruction {
  const trimmed = trimSpace(line);
  const sep = findTokenSpace(trimmed);
  const word = sep === undefined ? trimmed : trimmed.slice(0, sep.index);
  const keyword = word.toLowerCase();
  let flags: string[] = [];
  let rest = "";
  if (sep !== undefined) {
    [rest, flags] = extractBuilderFlags(trimmed.slice(sep.index + sep.length));
    rest = trimSpace(rest);
  }
  if (word === "") throw new LineError("empty instruction: a line continuation with nothing after it");
  if (!KEYWORDS.has(keyword)) {
    const hint = suggestInstruction(word);
    throw new LineError(`unknown instruction ${quoteForMessage(word)}${hint ? ` (did you mean ${hint}?)` : ""}`);
  }
  const parsed = parseArgs(keyword, rest, escape, depth);
  const ins: Instruction = {
    keyword,
    original: line,
    startLine: 0,
    endLine: 0,
    flags,
    args: parsed.args,
    json: parsed.json,
    heredocs: [],
  };
  if (parsed.inner !== undefined) ins.inner = parsed.inner;
  return ins;
}

function parseArgs(keyword: string, rest: string, escape: EscapeToken, depth: number): ParsedArgs {
  switch (keyword) {
    case "add":
    case "copy":
    case "volume":
      return parseMaybeJSONToList(rest);
    case "cmd":
    case "entrypoint":
    case "run":
    case "shell":
      return parseMaybeJSON(rest);
    case "arg":
      return { args: parseWords(rest, escape), json: false };
    case "env":
      return { args: parseNameVal(rest, "ENV", escape), json: false };
    case "label":
      return { args: parseNameVal(rest, "LABEL", escape), json: false };
    case "expose":
    case "from":
      return { args: parseWhitespaceDelimited(rest), json: false };
    case "healthcheck":
      return parseHealthConfig(rest);
    case "maintainer":
    case "stopsignal":
    case "user":
    case "workdir":
      return { args: rest === "" ? [] : [rest], json: false };
    case "onbuild": {
      if (rest === "") return { args: [], json: false };
      if (depth >= MAX_ONBUILD_DEPTH) throw new LineError("ONBUILD nested too deeply");
      return { args: [rest], json: false, inner: instructionFromLine(rest, escape, depth + 1) };
    }
  }
  // Unreachable: the caller checked the keyword against KEYWORDS.
  throw new LineError(`unknown instruction ${quoteForMessage(keyword)}`);
}

// ---------------------------------------------------------------------------------------------
// Heredocs (parser.go heredocsFromLine / ParseHeredoc)

/**
 * Split a line into words on blanks the way BuildKit's shell lexer does for heredoc
 * detection: quotes and backslashes are kept, and blanks right after `<<` stay in the word
 * (`<<  EOF` is one word). Visits each word in order until `visit` returns false. Returns
 * false when a quote is left open (BuildKit then finds no heredocs on the line); call it
 * without `visit` to check just that.
 */
function scanShellWords(line: string, visit?: (word: string) => boolean): boolean {
  let start = -1;
  let quote = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (quote !== 0) {
      if (c === quote) quote = 0;
      else if (c === 0x5c && quote === 0x22) i++;
      continue;
    }
    if (isSpaceCode(c)) {
      if (start >= 0 && visit !== undefined && !visit(line.slice(start, i))) return true;
      start = -1;
      continue;
    }
    if (start < 0) start = i;
    if (c === 0x27 || c === 0x22) quote = c;
    else if (c === 0x5c) i++;
    else if (c === 0x3c && line.charCodeAt(i + 1) === 0x3c) {
      i++;
      while (i + 1 < line.length && isSpaceCode(line.charCodeAt(i + 1))) i++;
    }
  }
  if (quote !== 0) return false;
  if (start >= 0 && visit !== undefined) visit(line.slice(start));
  return true;
}

/**
 * Remove shell quoting from a heredoc delimiter word. Returns the unquoted word and whether
 * any quote took effect, or undefined when it is not exactly one word.
 */
function unquoteDelimiter(word: string): { name: string; quoted: boolean } | undefined {
  const out: string[] = [];
  let quoted = false;
  for (let i = 0; i < word.length; i++) {
    const ch = word[i];
    if (isSpaceCode(word.charCodeAt(i))) return undefined; // more than one word
    if (ch === "\\") {
      if (i + 1 < word.length) out.push(word[++i]);
      continue;
    }
    if (ch === "'") {
      const close = word.indexOf("'", i + 1);
      if (close < 0) return undefined;
      out.push(word.slice(i + 1, close));
      quoted = true;
      i = close;
      continue;
    }
    if (ch === '"') {
      // Inside double quotes a backslash escapes only `"`, `$` and `\`.
      let j = i + 1;
      for (; j < word.length && word[j] !== '"'; j++) {
        if (word[j] === "\\" && j + 1 < word.length && '"$\\'.includes(word[j + 1])) j++;
        out.push(word[j]);
      }
      if (j >= word.length) return undefined;
      quoted = true;
      i = j;
      continue;
    }
    out.push(ch);
  }
  const name = out.join("");
  if (name === "") return undefined;
  return { name, quoted };
}

const HEREDOC_WORD = /^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$/;

/** Parse one raw word as a heredoc opener (`<<EOF`, `<<-"EOF"`, `2<<EOF`), or undefined. */
function heredocFromWord(word: string): Heredoc | undefined {
  if (!word.includes("<<")) return undefined;
  const m = HEREDOC_WORD.exec(word);
  if (m === null || m[3] === "") return undefined;
  const delim = unquoteDelimiter(m[3]);
  if (delim === undefined) return undefined;
  return { name: delim.name, content: "", expand: !delim.quoted, chomp: m[2] === "-" };
}

/**
 * Visit the heredocs a line opens, in order. `visit` returns false to stop early, so a
 * missing body fails before the rest of a long line is examined.
 */
function forEachHeredoc(line: string, visit: (doc: Heredoc) => boolean): void {
  if (!scanShellWords(line)) return;
  scanShellWords(line, (word) => {
    const doc = heredocFromWord(word);
    return doc === undefined ? true : visit(doc);
  });
}

function canContainHeredoc(ins: Instruction): boolean {
  const target = ins.keyword === "onbuild" && ins.inner !== undefined ? ins.inner : ins;
  return HEREDOC_KEYWORDS.has(target.keyword) && !target.json;
}

// ---------------------------------------------------------------------------------------------
// The parser

/** BuildKit reads lines with Go's bufio.Scanner, which refuses a line longer than 65535 bytes. */
export const MAX_LINE_BYTES = 65535;

/** Walks the text line by line (like a line scanner: no empty line after a final "\n"). */
class LineCursor {
  /** Offset of the next unread line. */
  pos = 0;
  /** 1-based number of the last line returned. */
  lineNo = 0;
  /** Start and end (exclusive, before "\n") of the last line returned. */
  start = 0;
  end = 0;

  constructor(private readonly text: string, private readonly file: string) {}

  /** Advance to the next line; false at end of text. */
  advance(): boolean {
    const text = this.text;
    if (this.pos >= text.length) return false;
    let nl = text.indexOf("\n", this.pos);
    if (nl < 0) nl = text.length;
    this.start = this.pos;
    this.end = nl;
    this.pos = nl + 1;
    this.lineNo++;
    const chars = nl - this.start;
    if (chars > MAX_LINE_BYTES / 3 && Buffer.byteLength(text.slice(this.start, nl)) > MAX_LINE_BYTES) {
      throw new DockerfileError("DOCKERFILE_SYNTAX", `line is longer than the maximum of ${MAX_LINE_BYTES} bytes`, this.lineNo, this.file);
    }
    return true;
  }

  /** The next line's text, or undefined at end of text. */
  next(): string | undefined {
    return this.advance() ? this.text.slice(this.start, this.end) : undefined;
  }

  /** Whether the current line, without trailing "\r"s (and leading tabs if asked), equals `word`. */
  currentEquals(word: string, skipTabs: boolean): boolean {
    const text = this.text;
    let s = this.start;
    let e = this.end;
    while (e > s && text.charCodeAt(e - 1) === 0x0d) e--;
    if (skipTabs) while (s < e && text.charCodeAt(s) === 0x09) s++;
    return e - s === word.length && text.startsWith(word, s);
  }

  slice(from: number, to: number): string {
    return this.text.slice(from, to);
  }
}

/** Read one heredoc body up to its terminator line; undefined when the text ends first. */
function readHeredocBody(cursor: LineCursor, doc: Heredoc): string | undefined {
  const bodyStart = cursor.pos;
  while (cursor.advance()) {
    if (cursor.currentEquals(doc.name, doc.chomp)) {
      let body = cursor.slice(bodyStart, cursor.start);
      if (body.includes("\r\n")) body = body.replace(/\r\n/g, "\n");
      if (doc.chomp && body.includes("\t")) body = body.replace(/(^|\n)\t+/g, "$1");
      return body;
    }
  }
  return undefined;
}

/** Parse Dockerfile text into an AST, or throw a DockerfileError naming the line. */
export function parseDockerfile(text: string, options?: ParseOptions): DockerfileAST {
  const file = options?.file ?? "Dockerfile";
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const cursor = new LineCursor(text, file);
  const directives = new DirectiveState();
  const instructions: Instruction[] = [];
  const warnings: ParseWarning[] = [];

  const fail = (err: unknown, line: number): never => {
    if (err instanceof LineError) throw new DockerfileError("DOCKERFILE_SYNTAX", err.message, line, file);
    throw err;
  };

  for (let raw = cursor.next(); raw !== undefined; raw = cursor.next()) {
    const startLine = cursor.lineNo;
    let first = trimLeftSpace(trimNewline(raw));
    try {
      directives.consider(first, startLine);
    } catch (err) {
      fail(err, startLine);
    }
    if (isComment(first)) first = "";
    const escape = directives.escapeToken;
    let [head, ended] = trimContinuation(first, escape);
    if (ended && head === "") continue;

    // Pieces are joined in small batches so that very long logical lines leave few live objects.
    const joined: string[] = [];
    let batch: string[] = [head];
    let sawEmptyContinuation = false;
    while (!ended) {
      const next = cursor.next();
      if (next === undefined) break;
      const piece = trimNewline(next);
      if (isComment(piece)) continue;
      if (isBlank(piece)) {
        sawEmptyContinuation = true;
        continue;
      }
      let trimmed: string;
      [trimmed, ended] = trimContinuation(piece, escape);
      batch.push(trimmed);
      if (batch.length === 1024) {
        joined.push(batch.join(""));
        batch = [];
      }
    }
    if (joined.length > 0) joined.push(batch.join(""));
    const line = joined.length > 0 ? joined.join("") : batch.length === 1 ? batch[0] : batch.join("");

    if (sawEmptyContinuation) {
      const shown = line.length > 200 ? line.slice(0, 200) + "..." : line;
      warnings.push({ line: cursor.lineNo, message: `Empty continuation line found in: ${shown}` });
    }

    let ins: Instruction;
    try {
      ins = instructionFromLine(line, escape, 0);
    } catch (err) {
      return fail(err, startLine);
    }

    if (canContainHeredoc(ins) && line.includes("<<")) {
      let unterminated: Heredoc | undefined;
      forEachHeredoc(line, (doc) => {
        const body = readHeredocBody(cursor, doc);
        if (body === undefined) {
          unterminated = doc;
          return false;
        }
        doc.content = body;
        ins.heredocs.push(doc);
        return true;
      });
      if (unterminated !== undefined) {
        throw new DockerfileError("DOCKERFILE_SYNTAX", `unterminated heredoc ${quoteForMessage(unterminated.name)} (started here)`, startLine, file);
      }
      if (ins.inner !== undefined) ins.inner.heredocs = [...ins.heredocs];
    }

    for (let cur: Instruction | undefined = ins; cur !== undefined; cur = cur.inner) {
      cur.startLine = startLine;
      cur.endLine = cursor.lineNo;
    }
    instructions.push(ins);
  }

  if (instructions.length === 0) throw new DockerfileError("DOCKERFILE_SYNTAX", "file with no instructions", 0, file);

  return {
    directives: directives.found,
    escapeToken: directives.escapeToken,
    instructions,
    warnings,
  };
}
