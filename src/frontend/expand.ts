// Dockerfile word expansion: quotes, escapes, `$v` / `${v...}` substitutions and word
// splitting, behaving like BuildKit's shell lexer (frontend/dockerfile/shell/lex.go, Unix
// variable-name rules). Also owns the glob matching used by `${v#p} ${v%p} ${v/p/r}`.
// Pure functions over strings: no I/O. Errors are one-line `ExpansionError`s; callers add
// the Dockerfile location.

import { KilnError } from "../errors.js";

/** Variables visible to an expansion. Names are case-sensitive (Unix rules). */
export type ExpandEnv = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

export interface ExpandOptions {
  /** The Dockerfile `# escape=` token; `\` by default. */
  escapeToken?: "\\" | "`";
}

export interface ExpandResult {
  value: string;
  /** Names referenced that were set (possibly to ""). */
  matched: Set<string>;
  /** Names referenced that were not set. */
  unmatched: Set<string>;
}

/** A word that cannot be expanded. The message is one line without a file/line prefix. */
export class ExpansionError extends KilnError {
  /** The problem alone, without the `failed to process "word":` prefix. */
  readonly detail: string;
  constructor(message: string, detail?: string) {
    super("DOCKERFILE_EXPANSION", message);
    this.name = "ExpansionError";
    this.detail = detail ?? message;
  }
}

/** Nested `${...}` deeper than this is refused instead of risking a stack overflow. */
export const MAX_EXPANSION_DEPTH = 1000;

/** Expands one word (quotes removed, variables substituted, no splitting). */
export function expandWord(word: string, env: ExpandEnv, options?: ExpandOptions): string {
  return run(word, env, escapeOf(options), false, false).value;
}

/** Like `expandWord`, also reporting which variable names were referenced. */
export function expandWordDetailed(word: string, env: ExpandEnv, options?: ExpandOptions): ExpandResult {
  const out = run(word, env, escapeOf(options), false, false);
  return { value: out.value, matched: out.matched, unmatched: out.unmatched };
}

/**
 * Expands a line and splits it into words on unquoted, unescaped white space, including white
 * space that comes from unquoted variable values (BuildKit's ProcessWords).
 */
export function expandWords(line: string, env: ExpandEnv, options?: ExpandOptions): string[] {
  return run(line, env, escapeOf(options), false, true).words;
}

/**
 * Expands the body of an unquoted heredoc used as COPY/ADD content, as BuildKit does: variables
 * are substituted, quotes are ordinary characters, and backslash escapes are processed
 * (`\$` gives `$`, `\\` gives `\`, a backslash before any other character is dropped).
 * BuildKit always uses `\` here, whatever the `# escape=` directive says, so `options` is
 * accepted for symmetry but its escape token is deliberately ignored.
 */
export function expandHeredoc(body: string, env: ExpandEnv, _options?: ExpandOptions): string {
  return run(body, env, BACKSLASH, true, false).value;
}

// ---------------------------------------------------------------------------------------------

const EOF = -1;
const BACKSLASH = 0x5c;
const BACKTICK = 0x60;
const DOLLAR = 0x24;
const SQUOTE = 0x27;
const DQUOTE = 0x22;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const COLON = 0x3a;
const SLASH = 0x2f;
const NEWLINE = 0x0a;
const BOM = 0xfeff;

function escapeOf(options: ExpandOptions | undefined): number {
  return options?.escapeToken === "`" ? BACKTICK : BACKSLASH;
}

interface RunOutput {
  value: string;
  words: string[];
  matched: Set<string>;
  unmatched: Set<string>;
}

function run(word: string, env: ExpandEnv, escape: number, skipQuotes: boolean, split: boolean): RunOutput {
  const lexer = new Lexer(word, env, escape, skipQuotes);
  try {
    const words = split ? new WordSplitter() : null;
    const value = lexer.processStopOn(EOF, false, words);
    return { value, words: words ? words.finish() : [], matched: lexer.matched, unmatched: lexer.unmatched };
  } catch (err) {
    if (err instanceof LexError) throw failed(word, err.message);
    if (err instanceof RangeError && /call stack/i.test(err.message)) {
      throw failed(word, "expression too deeply nested"); // stack exhausted despite the depth guard
    }
    throw err;
  }
}

function failed(word: string, detail: string): ExpansionError {
  const shown = word.length > 100 ? `${word.slice(0, 100)}...` : word;
  const line = detail.replace(/\r/g, "\\r").replace(/\n/g, "\\n"); // keep the message on one line
  return new ExpansionError(`failed to process ${JSON.stringify(shown)}: ${line}`, line);
}

/** A problem found while lexing; turned into an ExpansionError at the top. */
class LexError extends Error {}
/** Too deep nesting: never rewritten into a "missing '}'" message by outer levels. */
class DepthError extends LexError {}

/** Collects words the way BuildKit's wordsStruct does. */
class WordSplitter {
  private readonly words: string[] = [];
  private parts: string[] = [];
  private partsLength = 0;
  private inWord = false;

  /** A character that may split words (unquoted literal or from an unquoted variable). */
  addChar(cp: number): void {
    if (isGoSpace(cp)) {
      if (this.inWord && this.partsLength !== 0) this.flush();
    } else {
      this.addRaw(String.fromCodePoint(cp));
    }
  }

  /** Text that never splits (quoted or escaped). */
  addRaw(text: string): void {
    this.parts.push(text);
    this.partsLength += text.length;
    this.inWord = true;
  }

  /** Same as `addChar` for each character, a run of non-space characters at a time. */
  addString(text: string): void {
    let runStart = 0;
    for (let i = 0; i < text.length; i++) {
      if (!isGoSpace(text.charCodeAt(i))) continue; // no space is outside the BMP
      if (i > runStart) this.addRaw(text.slice(runStart, i));
      if (this.inWord && this.partsLength !== 0) this.flush();
      runStart = i + 1;
    }
    if (runStart < text.length) this.addRaw(runStart === 0 ? text : text.slice(runStart));
  }

  finish(): string[] {
    if (this.partsLength > 0) this.flush();
    return this.words;
  }

  private flush(): void {
    this.words.push(this.parts.join(""));
    this.parts = [];
    this.partsLength = 0;
    this.inWord = false;
  }
}

/** Go's unicode.IsSpace. */
function isGoSpace(cp: number): boolean {
  if (cp <= 0xff) return cp === 0x20 || (cp >= 0x09 && cp <= 0x0d) || cp === 0x85 || cp === 0xa0;
  return (
    cp === 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp === 0x2028 || cp === 0x2029 ||
    cp === 0x202f || cp === 0x205f || cp === 0x3000
  );
}

const LETTER = /^\p{L}$/u;
const DIGIT = /^\p{Nd}$/u;

function isLetter(cp: number): boolean {
  if (cp < 0x80) return (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a);
  return LETTER.test(String.fromCodePoint(cp));
}

function isDigit(cp: number): boolean {
  if (cp < 0x80) return cp >= 0x30 && cp <= 0x39;
  return DIGIT.test(String.fromCodePoint(cp));
}

/** POSIX special parameters: `$@ $* $# $? $- $$ $! $0`. */
function isSpecialParam(cp: number): boolean {
  return cp === 0x40 || cp === 0x2a || cp === 0x23 || cp === 0x3f || cp === 0x2d || cp === 0x24 ||
    cp === 0x21 || cp === 0x30;
}

function charName(cp: number): string {
  return cp === EOF ? "\uFFFD" : String.fromCodePoint(cp);
}

/**
 * Builds a string from many pieces: small pieces are copied into a code-unit buffer (so a word
 * of many tiny parts does not allocate a string per part), large ones are kept as they are.
 */
class TextBuilder {
  private static readonly SMALL = 64;
  private readonly parts: string[] = [];
  private buf: Uint16Array | null = null;
  private len = 0;

  appendRange(text: string, start: number, end: number): void {
    if (end - start >= TextBuilder.SMALL) {
      this.flush();
      this.parts.push(text.slice(start, end));
      return;
    }
    const buf = this.reserve(end - start);
    let len = this.len;
    for (let i = start; i < end; i++) buf[len++] = text.charCodeAt(i);
    this.len = len;
  }

  append(text: string): void {
    if (text.length >= TextBuilder.SMALL) {
      this.flush();
      this.parts.push(text);
    } else {
      this.appendRange(text, 0, text.length);
    }
  }

  appendCode(code: number): void {
    this.reserve(1)[this.len++] = code;
  }

  appendCodePoint(cp: number): void {
    if (cp <= 0xffff) {
      this.appendCode(cp);
    } else {
      this.appendCode(0xd800 + ((cp - 0x10000) >> 10));
      this.appendCode(0xdc00 + ((cp - 0x10000) & 0x3ff));
    }
  }

  toString(): string {
    this.flush();
    return this.parts.length === 1 ? this.parts[0] : this.parts.join("");
  }

  private reserve(extra: number): Uint16Array {
    if (this.buf === null) this.buf = new Uint16Array(1024);
    if (this.len + extra > this.buf.length) this.flush();
    return this.buf;
  }

  private flush(): void {
    if (this.buf === null || this.len === 0) return;
    this.parts.push(String.fromCharCode(...this.buf.subarray(0, this.len)));
    this.len = 0;
  }
}

/** Walks one word, code point by code point, mirroring lex.go's shellWord. */
class Lexer {
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();
  private pos = 0;
  private depth = 0;
  private rawEscapes = false;
  private readonly lookup: (name: string) => string | undefined;

  constructor(
    private readonly src: string,
    env: ExpandEnv,
    private readonly escape: number,
    private readonly skipQuotes: boolean,
  ) {
    // Go's text/scanner ignores a byte order mark at the very start.
    if (src.charCodeAt(0) === BOM) this.pos = 1;
    if (env instanceof Map) {
      const map = env as ReadonlyMap<string, string>;
      this.lookup = (name) => map.get(name);
    } else {
      const record = env as Readonly<Record<string, string>>;
      this.lookup = (name) => (Object.hasOwn(record, name) ? record[name] : undefined);
    }
  }

  private peek(): number {
    return this.pos < this.src.length ? (this.src.codePointAt(this.pos) as number) : EOF;
  }

  private next(): number {
    if (this.pos >= this.src.length) return EOF;
    const cp = this.src.codePointAt(this.pos) as number;
    this.pos += cp > 0xffff ? 2 : 1;
    return cp;
  }

  /** The variable's value, or undefined when unset; records the name as matched/unmatched. */
  private getEnv(name: string): string | undefined {
    const value = this.lookup(name);
    if (value === undefined) this.unmatched.add(name);
    else this.matched.add(name);
    return value;
  }

  /** Whether a character starts something `processStopOn` must not copy as a literal. */
  private isSpecial(code: number, stop: number): boolean {
    return code === DOLLAR || code === this.escape || code === stop ||
      (!this.skipQuotes && (code === SQUOTE || code === DQUOTE));
  }

  /** Processes until `stop` (consumed) or the end of the word when `stop` is EOF. */
  processStopOn(stop: number, rawEscapes: boolean, words: WordSplitter | null): string {
    const saved = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    try {
      return this.stopOn(stop, words);
    } finally {
      this.rawEscapes = saved;
    }
  }

  private stopOn(stop: number, words: WordSplitter | null): string {
    const out = new TextBuilder();
    const src = this.src;
    while (this.pos < src.length) {
      const code = src.charCodeAt(this.pos);
      if (!this.isSpecial(code, stop)) {
        // A run of ordinary characters (all special characters are ASCII).
        const start = this.pos;
        let end = start + 1;
        while (end < src.length && !this.isSpecial(src.charCodeAt(end), stop)) end++;
        out.appendRange(src, start, end);
        if (words) words.addString(src.slice(start, end));
        this.pos = end;
        continue;
      }
      if (code === stop) {
        this.pos++;
        return out.toString();
      }
      if (code === DOLLAR) {
        const value = this.processDollar();
        out.append(value);
        if (words) words.addString(value);
        continue;
      }
      if (code === SQUOTE || code === DQUOTE) {
        const value = code === SQUOTE ? this.processSingleQuote() : this.processDoubleQuote();
        out.append(value);
        if (words) words.addRaw(value);
        continue;
      }
      // The escape token: the next character is taken literally.
      this.pos++;
      if (this.rawEscapes) {
        out.appendCode(code);
        if (words) words.addRaw(String.fromCharCode(code));
      }
      const cp = this.next();
      if (cp === EOF) break; // an escape at the very end is dropped
      out.appendCodePoint(cp);
      if (words) words.addRaw(String.fromCodePoint(cp));
    }
    if (stop !== EOF) {
      throw new LexError(`unexpected end of statement while looking for matching ${String.fromCharCode(stop)}`);
    }
    return out.toString();
  }

  private processSingleQuote(): string {
    this.pos++; // opening '
    const end = this.src.indexOf("'", this.pos);
    if (end < 0) throw new LexError("unexpected end of statement while looking for matching single-quote");
    const value = this.src.slice(this.pos, end);
    this.pos = end + 1;
    return value;
  }

  private processDoubleQuote(): string {
    this.pos++; // opening "
    const out = new TextBuilder();
    const src = this.src;
    for (;;) {
      if (this.pos >= src.length) {
        throw new LexError("unexpected end of statement while looking for matching double-quote");
      }
      const code = src.charCodeAt(this.pos);
      if (code === DQUOTE) {
        this.pos++;
        return out.toString();
      }
      if (code === DOLLAR) {
        out.append(this.processDollar());
        continue;
      }
      if (code !== this.escape) {
        const start = this.pos;
        let end = start + 1;
        while (end < src.length) {
          const c = src.charCodeAt(end);
          if (c === DQUOTE || c === DOLLAR || c === this.escape) break;
          end++;
        }
        out.appendRange(src, start, end);
        this.pos = end;
        continue;
      }
      // Escape token inside double quotes: only `"`, `$` and the token itself are escaped.
      this.pos++;
      if (this.rawEscapes) out.appendCode(code);
      const following = this.peek();
      if (following === EOF) continue; // reported as an unterminated quote
      if (following === DQUOTE || following === DOLLAR || following === this.escape) {
        this.pos++;
        out.appendCode(following);
      } else {
        out.appendCode(code);
      }
    }
  }

  private processName(): string {
    const start = this.pos;
    const src = this.src;
    // Fast path: an ASCII name followed by an ASCII character.
    const c0 = src.charCodeAt(start);
    if ((c0 >= 0x41 && c0 <= 0x5a) || (c0 >= 0x61 && c0 <= 0x7a) || c0 === 0x5f) {
      let end = start + 1;
      for (;;) {
        const c = src.charCodeAt(end);
        if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || (c >= 0x30 && c <= 0x39)) end++;
        else break;
      }
      const stop = src.charCodeAt(end); // NaN at the end of the word
      if (!(stop >= 0x80)) {
        this.pos = end;
        return src.slice(start, end);
      }
    }
    const first = this.peek();
    if (first === EOF) return "";
    if (isDigit(first)) {
      while (this.pos < this.src.length && isDigit(this.peek())) this.next();
      return this.src.slice(start, this.pos);
    }
    if (isSpecialParam(first)) {
      this.next();
      return this.src.slice(start, this.pos);
    }
    for (;;) {
      const cp = this.peek();
      if (cp === EOF || !(isLetter(cp) || isDigit(cp) || cp === 0x5f)) break;
      this.next();
    }
    return this.src.slice(start, this.pos);
  }

  private processDollar(): string {
    this.pos++; // $
    if (this.peek() !== LBRACE) {
      const name = this.processName();
      if (name === "") return "$";
      return this.getEnv(name) ?? "";
    }
    this.pos++; // {
    if (this.depth >= MAX_EXPANSION_DEPTH) {
      throw new DepthError(`substitutions nested more than ${MAX_EXPANSION_DEPTH} deep`);
    }
    this.depth++;
    try {
      return this.processBraced();
    } finally {
      this.depth--;
    }
  }

  private processBraced(): string {
    const first = this.peek();
    if (first === EOF) throw new LexError("syntax error: missing '}'");
    if (first === LBRACE || first === RBRACE || first === COLON) {
      throw new LexError("syntax error: bad substitution");
    }
    const name = this.processName();
    let ch = this.next();
    if (ch === EOF) throw new LexError("syntax error: missing '}'");
    let modifier = charName(ch);

    if (ch === RBRACE) return this.getEnv(name) ?? "";
    if (ch === SLASH) return this.processReplace(name);

    let nullIsUnset = false;
    if (ch === COLON) {
      nullIsUnset = true;
      ch = this.next();
      modifier += charName(ch);
    } else if (!"+-?#%".includes(modifier)) {
      throw new LexError(`unsupported modifier (${modifier}) in substitution`);
    }

    const isPattern = ch === 0x23 /* # */ || ch === 0x25 /* % */;
    let word = this.nested(RBRACE, isPattern, "syntax error: missing '}'");
    const found = this.getEnv(name);
    const set = found !== undefined;
    const value = found ?? "";

    switch (ch) {
      case 0x2d: // -
        return !set || (nullIsUnset && value === "") ? word : value;
      case 0x2b: // +
        return !set || (nullIsUnset && value === "") ? "" : word;
      case 0x3f: // ?
        if (!set) throw new LexError(`${name}: ${word !== "" ? word : "is not allowed to be unset"}`);
        if (nullIsUnset && value === "") {
          throw new LexError(`${name}: ${word !== "" ? word : "is not allowed to be empty"}`);
        }
        return value;
      case 0x23: // #
      case 0x25: {
        // %: one `#`/`%` trims the shortest match, two the longest.
        let greedy = false;
        if (word.charCodeAt(0) === ch) {
          greedy = true;
          word = word.slice(1);
        }
        return ch === 0x25 ? trimSuffix(word, value, greedy) : trimPrefix(word, value, greedy);
      }
      default:
        throw new LexError(`unsupported modifier (${modifier}) in substitution`);
    }
  }

  /** `${name/pattern/replacement}` and `${name//pattern/replacement}`; the first `/` is read. */
  private processReplace(name: string): string {
    const all = this.peek() === SLASH;
    if (all) this.pos++;
    const pattern = this.nested(SLASH, true, "syntax error: missing '/' in ${}");
    const replacement = this.nested(RBRACE, true, "syntax error: missing '}'");
    const value = this.getEnv(name) ?? "";
    const matcher = new Matcher(compilePattern(pattern, true));
    if (all) return replaceAll(matcher, value, replacement);
    const match = matcher.search(value, 0, false, true);
    if (match === null) return value;
    return value.slice(0, match[0]) + replacement + value.slice(match[1]);
  }

  /** A nested part of `${...}`; an error at the end of input becomes `atEnd`, as lex.go does. */
  private nested(stop: number, rawEscapes: boolean, atEnd: string): string {
    try {
      return this.processStopOn(stop, rawEscapes, null);
    } catch (err) {
      if (err instanceof LexError && !(err instanceof DepthError) && this.peek() === EOF) {
        throw new LexError(atEnd);
      }
      throw err;
    }
  }
}

// --- Glob patterns for # % / ----------------------------------------------------------------
// lex.go turns the pattern into a Go regular expression (`*` -> `.*` or `.*?`, `?` -> `.`,
// everything else literal, `\` escapes only `*`, `?`, `\`, and is dropped before `}` or `/`)
// and uses RE2's leftmost-first matching. Here the same program runs on a small Pike VM, so
// matching is linear in the value's length for any pattern. As in Go, `.` never matches `\n`.

const OP_CHAR = 0;
const OP_ANY = 1; // any character except \n
const OP_SPLIT = 2; // try `a`, then `b`
const OP_MATCH = 3;

interface Program {
  op: Int32Array;
  arg: Int32Array; // OP_CHAR: code point; OP_SPLIT: first choice
  alt: Int32Array; // OP_SPLIT: second choice
}

function compilePattern(pattern: string, greedy: boolean): Program {
  const op: number[] = [];
  const arg: number[] = [];
  const alt: number[] = [];
  const emit = (o: number, a = 0, b = 0): number => {
    op.push(o);
    arg.push(a);
    alt.push(b);
    return op.length - 1;
  };
  let i = pattern.charCodeAt(0) === BOM ? 1 : 0; // text/scanner skips a leading BOM
  while (i < pattern.length) {
    let cp = pattern.codePointAt(i) as number;
    i += cp > 0xffff ? 2 : 1;
    if (cp === 0x2a) {
      // `*`: a loop over OP_ANY, preferring to repeat (greedy) or to stop (lazy).
      const split = emit(OP_SPLIT);
      emit(OP_ANY);
      const back = emit(OP_SPLIT, split, split); // unconditional jump back
      const after = back + 1;
      arg[split] = greedy ? split + 1 : after;
      alt[split] = greedy ? after : split + 1;
      continue;
    }
    if (cp === 0x3f) {
      emit(OP_ANY);
      continue;
    }
    if (cp === BACKSLASH) {
      const following = i < pattern.length ? (pattern.codePointAt(i) as number) : EOF;
      if (following === RBRACE || following === SLASH) continue; // escape of ${} syntax only
      i += following > 0xffff ? 2 : following === EOF ? 0 : 1;
      if (following !== 0x2a && following !== 0x3f && following !== BACKSLASH) {
        const shown = following === EOF ? "\\' at the end" : `\\${String.fromCodePoint(following)}'`;
        throw new LexError(`invalid pattern (${pattern}) in substitution: invalid escape '${shown}`);
      }
      cp = following;
    }
    emit(OP_CHAR, cp);
  }
  emit(OP_MATCH);
  return { op: Int32Array.from(op), arg: Int32Array.from(arg), alt: Int32Array.from(alt) };
}

/**
 * Leftmost-first search (RE2/Perl thread priorities) for one compiled pattern, reusable across
 * searches. Forwards it returns [start, end) code-unit offsets. Backwards (the text read from
 * `from` towards its start) it returns [end, start), i.e. the same as matching the reversed
 * pattern against the reversed text, which is how lex.go finds suffixes.
 */
class Matcher {
  private clistPc: Int32Array;
  private clistStart: Int32Array;
  private nlistPc: Int32Array;
  private nlistStart: Int32Array;
  private readonly mark: Float64Array;
  private readonly stack: Int32Array;
  private generation = 0;
  /** The pattern's text when it has no `*` or `?` (program order), else null. */
  private readonly literal: string | null;

  constructor(private readonly prog: Program) {
    const size = prog.op.length;
    this.clistPc = new Int32Array(size);
    this.clistStart = new Int32Array(size);
    this.nlistPc = new Int32Array(size);
    this.nlistStart = new Int32Array(size);
    this.mark = new Float64Array(size).fill(-1);
    this.stack = new Int32Array(2 * size + 2);
    let literal: string | null = "";
    for (let pc = 0; pc < size - 1; pc++) {
      if (prog.op[pc] !== OP_CHAR) {
        literal = null;
        break;
      }
      literal += String.fromCodePoint(prog.arg[pc]);
    }
    this.literal = literal;
  }

  search(text: string, from: number, anchored: boolean, forwards: boolean): [number, number] | null {
    if (this.literal !== null) return this.searchLiteral(this.literal, text, from, anchored, forwards);
    const { op, arg } = this.prog;
    const dir = forwards ? 1 : -1;
    let clen = 0;
    let matched: [number, number] | null = null;
    let pos = from;
    this.generation++;
    for (;;) {
      if (matched === null && (!anchored || pos === from)) {
        clen = this.add(this.clistPc, this.clistStart, clen, 0, pos);
      }
      if (clen === 0) break;
      const cp = forwards ? (pos < text.length ? (text.codePointAt(pos) as number) : EOF) : codePointBefore(text, pos);
      this.generation++;
      let nlen = 0;
      const cpcs = this.clistPc;
      const cstarts = this.clistStart;
      for (let t = 0; t < clen; t++) {
        const pc = cpcs[t];
        const o = op[pc];
        if (o === OP_MATCH) {
          matched = [cstarts[t], pos];
          break; // lower-priority threads are cut off
        }
        if (cp !== EOF && (o === OP_ANY ? cp !== NEWLINE : arg[pc] === cp)) {
          nlen = this.add(this.nlistPc, this.nlistStart, nlen, pc + 1, cstarts[t]);
        }
      }
      if (cp === EOF) break;
      const swapPc = this.clistPc;
      this.clistPc = this.nlistPc;
      this.nlistPc = swapPc;
      const swapStart = this.clistStart;
      this.clistStart = this.nlistStart;
      this.nlistStart = swapStart;
      clen = nlen;
      pos += dir * (cp > 0xffff ? 2 : 1);
    }
    return matched;
  }

  /** Adds the epsilon-closure of `pc0` to a thread list, in priority order. */
  private add(pcs: Int32Array, starts: Int32Array, len: number, pc0: number, start: number): number {
    const { op, arg, alt } = this.prog;
    const mark = this.mark;
    const generation = this.generation;
    if (op[pc0] !== OP_SPLIT) {
      // Common case: no alternatives to explore.
      if (mark[pc0] !== generation) {
        mark[pc0] = generation;
        pcs[len] = pc0;
        starts[len] = start;
        len++;
      }
      return len;
    }
    const stack = this.stack;
    let top = 0;
    stack[top++] = pc0;
    while (top > 0) {
      const pc = stack[--top];
      if (mark[pc] === generation) continue;
      mark[pc] = generation;
      if (op[pc] === OP_SPLIT) {
        stack[top++] = alt[pc];
        stack[top++] = arg[pc]; // explored first
        continue;
      }
      pcs[len] = pc;
      starts[len] = start;
      len++;
    }
    return len;
  }

  private searchLiteral(literal: string, text: string, from: number, anchored: boolean, forwards: boolean): [number, number] | null {
    if (forwards) {
      if (anchored) return text.startsWith(literal, from) ? [from, from + literal.length] : null;
      const at = text.indexOf(literal, from);
      return at < 0 ? null : [at, at + literal.length];
    }
    // Backwards the program lists the characters from the end of the text.
    const inTextOrder = Array.from(literal).reverse().join("");
    if (anchored) {
      const begin = from - inTextOrder.length;
      return begin >= 0 && text.startsWith(inTextOrder, begin) ? [from, begin] : null;
    }
    const at = text.lastIndexOf(inTextOrder, from - inTextOrder.length);
    return at < 0 || from - inTextOrder.length < 0 ? null : [at + inTextOrder.length, at];
  }
}

/** The code point that ends just before `pos` (a lone surrogate counts as one). */
function codePointBefore(text: string, pos: number): number {
  if (pos <= 0) return EOF;
  const low = text.charCodeAt(pos - 1);
  if (low >= 0xdc00 && low <= 0xdfff && pos >= 2) {
    const high = text.charCodeAt(pos - 2);
    if (high >= 0xd800 && high <= 0xdbff) return (high - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
  }
  return low;
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const match = new Matcher(compilePattern(pattern, greedy)).search(value, 0, true, true);
  return match === null ? value : value.slice(match[1]);
}

function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  const matcher = new Matcher(compilePattern(reversePattern(pattern), greedy));
  const match = matcher.search(value, value.length, true, false);
  return match === null ? value : value.slice(0, match[1]);
}

/** Reverses a pattern but keeps each `\x` pair in order, like lex.go's reversePattern. */
function reversePattern(pattern: string): string {
  const cps = Array.from(pattern);
  const out: string[] = [];
  for (let i = 0; i < cps.length; ) {
    if (cps[i] === "\\" && i !== cps.length - 1) {
      out.push(cps[i] + cps[i + 1]);
      i += 2;
    } else {
      out.push(cps[i]);
      i++;
    }
  }
  return out.reverse().join("");
}

/** Go's Regexp.ReplaceAllString: successive non-overlapping matches; `$` in the replacement
 * is a template (`$0`/`${0}` = the match, `$$` = `$`, any other `$name` = empty). */
function replaceAll(matcher: Matcher, value: string, replacement: string): string {
  const out = new TextBuilder();
  const templated = replacement.includes("$");
  let lastMatchEnd = 0;
  let searchPos = 0;
  while (searchPos <= value.length) {
    const m = matcher.search(value, searchPos, false, true);
    if (m === null) break;
    out.appendRange(value, lastMatchEnd, m[0]);
    if (m[1] > lastMatchEnd || m[0] === 0) out.append(templated ? expandTemplate(replacement, value, m) : replacement);
    lastMatchEnd = m[1];
    const width = searchPos >= value.length ? 0 : (value.codePointAt(searchPos) as number) > 0xffff ? 2 : 1;
    if (searchPos + width > m[1]) searchPos += width;
    else if (searchPos + 1 > m[1]) searchPos++;
    else searchPos = m[1];
  }
  out.appendRange(value, lastMatchEnd, value.length);
  return out.toString();
}

function isTemplateNameChar(cp: number): boolean {
  return isLetter(cp) || isDigit(cp) || cp === 0x5f;
}

function expandTemplate(template: string, value: string, match: [number, number]): string {
  if (!template.includes("$")) return template;
  const out: string[] = [];
  let rest = template;
  for (;;) {
    const at = rest.indexOf("$");
    if (at < 0) break;
    out.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
    if (rest.startsWith("$")) {
      out.push("$");
      rest = rest.slice(1);
      continue;
    }
    const brace = rest.startsWith("{");
    let i = brace ? 1 : 0;
    const nameStart = i;
    while (i < rest.length) {
      const cp = rest.codePointAt(i) as number;
      if (!isTemplateNameChar(cp)) break;
      i += cp > 0xffff ? 2 : 1;
    }
    const name = rest.slice(nameStart, i);
    if (name === "" || (brace && rest.charCodeAt(i) !== RBRACE)) {
      out.push("$"); // malformed: the `$` is literal
      continue;
    }
    if (brace) i++;
    rest = rest.slice(i);
    // The program has no capture groups: only group 0 (the whole match) has text.
    if (name === "0") out.push(value.slice(match[0], match[1]));
  }
  out.push(rest);
  return out.join("");
}
