// Instruction flags (`--from=build`, `--link`, `--mount=...`): parsing the raw "--x=y" strings the
// parser keeps into typed values against a per-instruction spec, with BuildKit's BFlags rules
// (bool flags may omit their value, string flags may not and may appear once, list flags repeat),
// plus the small value parsers flags need (Go durations, "did you mean" suggestions).
import { suggest } from "./suggest.js";

/** How a flag takes its value: one string, a boolean, or a repeatable list of strings. */
export type FlagKind = "string" | "bool" | "strings";

/** Flag name (without "--") -> kind. */
export type FlagSpec = Readonly<Record<string, FlagKind>>;

/** A flag problem; the caller prefixes the instruction keyword and line. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

/** The flags of one instruction after parsing. Absent flags read as undefined / false / []. */
export class ParsedFlags {
  private readonly strings = new Map<string, string>();
  private readonly bools = new Map<string, boolean>();
  private readonly lists = new Map<string, string[]>();

  /** @internal */ setString(name: string, value: string): void {
    this.strings.set(name, value);
  }
  /** @internal */ setBool(name: string, value: boolean): void {
    this.bools.set(name, value);
  }
  /** @internal */ addToList(name: string, value: string): void {
    const list = this.lists.get(name);
    if (list) list.push(value);
    else this.lists.set(name, [value]);
  }

  string(name: string): string | undefined {
    return this.strings.get(name);
  }
  bool(name: string): boolean {
    return this.bools.get(name) ?? false;
  }
  /** The bool's value, or undefined when the flag was not given at all. */
  optionalBool(name: string): boolean | undefined {
    return this.bools.get(name);
  }
  list(name: string): string[] {
    return [...(this.lists.get(name) ?? [])];
  }
  /** Names of the flags that were given, in no particular order. */
  used(): string[] {
    return [...this.strings.keys(), ...this.bools.keys(), ...this.lists.keys()];
  }
}

/** Shared result for the common no-flags case (never mutated: setters are only used below). */
const NO_FLAGS = new ParsedFlags();

/**
 * Parse raw flags (as the parser keeps them: "--name=value" or "--name") against `spec`.
 * Throws FlagError for: a flag not in the spec (with a suggestion when one is close), a
 * string/list flag without a value, a string flag given twice, a bool flag with a value other
 * than true/false.
 */
export function parseFlags(raw: readonly string[], spec: FlagSpec): ParsedFlags {
  if (raw.length === 0) return NO_FLAGS;
  const out = new ParsedFlags();
  const seen = new Set<string>();
  const names = Object.keys(spec);
  for (const arg of raw) {
    if (!arg.startsWith("--")) throw new FlagError(`flag ${JSON.stringify(arg)} must start with "--"`);
    if (arg === "--") break;
    const body = arg.slice(2);
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    const value = eq < 0 ? undefined : body.slice(eq + 1);
    const kind = Object.prototype.hasOwnProperty.call(spec, name) ? spec[name] : undefined;
    if (kind === undefined) {
      if (names.length === 0) throw new FlagError(`takes no flags (got --${name})`);
      const hint = suggestName(name, names);
      throw new FlagError(`unknown flag --${name}${hint ? ` (did you mean --${hint}?)` : ""}`);
    }
    switch (kind) {
      case "bool": {
        if (seen.has(name)) throw new FlagError(`duplicate flag --${name}`);
        if (value === undefined) {
          out.setBool(name, true);
        } else {
          const v = value.toLowerCase();
          if (v !== "true" && v !== "false") {
            throw new FlagError(`--${name} expects true or false, not ${JSON.stringify(value)}`);
          }
          out.setBool(name, v === "true");
        }
        break;
      }
      case "string": {
        if (value === undefined) throw new FlagError(`missing a value on flag --${name}`);
        if (seen.has(name)) throw new FlagError(`duplicate flag --${name}`);
        out.setString(name, value);
        break;
      }
      case "strings": {
        if (value === undefined) throw new FlagError(`missing a value on flag --${name}`);
        out.addToList(name, value);
        break;
      }
    }
    seen.add(name);
  }
  return out;
}

/** The closest candidate to `word`, if it is close enough to be a typo (see suggest.ts). */
export function suggestName(word: string, candidates: readonly string[]): string | undefined {
  return suggest(word, candidates, { caseSensitive: true }) ?? suggest(word, candidates);
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  "µs": 1e3,
  "μs": 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/**
 * Parse a Go duration ("30s", "1m30s", "500ms", "1.5h", "0") into nanoseconds, as Go's
 * time.ParseDuration does. Throws FlagError on anything else.
 */
export function parseGoDuration(text: string): number {
  const bad = (): FlagError => new FlagError(`invalid duration ${JSON.stringify(text)}`);
  let s = text;
  let sign = 1;
  if (s.startsWith("-") || s.startsWith("+")) {
    if (s[0] === "-") sign = -1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw bad();
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw bad();
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    pos = re.lastIndex;
  }
  return sign * Math.round(total);
}
