// Tests for Dockerfile word expansion (src/frontend/expand.ts): quoting, escapes, every
// `${...}` operator, glob patterns, errors, matched/unmatched names, word splitting, heredoc
// bodies, the nesting guard and large inputs.

import { describe, it, expect } from "vitest";
import { KilnError } from "../../src/errors.js";
import {
  ExpansionError,
  expandHeredoc,
  expandWord,
  expandWordDetailed,
  expandWords,
} from "../../src/frontend/expand.js";

const env = { HOME: "/root", EMPTY: "", NAME: "kiln", PATHS: "/usr/lib/x/lib.so", SP: "one  two " };

function expectError(word: string, envIn: Record<string, string>, message: string | RegExp, opts = {}): void {
  let caught: unknown;
  try {
    expandWord(word, envIn, opts);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ExpansionError);
  expect(caught).toBeInstanceOf(KilnError);
  const msg = (caught as ExpansionError).message;
  expect(msg).not.toContain("\n");
  if (typeof message === "string") expect(msg).toContain(message);
  else expect(msg).toMatch(message);
}

/** CPU milliseconds spent by this process in `f` (wall time is unreliable on a busy machine). */
function cpuMs(f: () => void): number {
  const start = process.cpuUsage();
  f();
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

describe("plain words, quotes and escapes", () => {
  it("substitutes $name and ${name}", () => {
    expect(expandWord("$HOME/bin", env)).toBe("/root/bin");
    expect(expandWord("${NAME}rc", env)).toBe("kilnrc");
    expect(expandWord("$NAMErc", env)).toBe("");
    expect(expandWord("a$UNSET-b", env)).toBe("a-b");
  });

  it("keeps $ followed by a non-name character", () => {
    expect(expandWord("cost: 5$", env)).toBe("cost: 5$");
    expect(expandWord("$/x $% $", env)).toBe("$/x $% $");
    expect(expandWord("a$.b", env)).toBe("a$.b");
  });

  it("treats digits and special parameters as unset names", () => {
    expect(expandWord("x$12y", env)).toBe("xy");
    expect(expandWord("[$@][$*][$#][$?][$-][$$][$!][$0]", env)).toBe("[][][][][][][][]");
    expect(expandWord("${7:-seven}", env)).toBe("seven");
    expect(expandWord("${#:+set}|${?-dflt}", env)).toBe("|dflt");
  });

  it("takes single-quoted text literally", () => {
    expect(expandWord("'$HOME \\n \"x\"'", env)).toBe('$HOME \\n "x"');
    expect(expandWord("a'b c'd", env)).toBe("ab cd");
  });

  it("expands inside double quotes and only escapes \" $ and the escape token there", () => {
    expect(expandWord('"$NAME\'s home is ${HOME}"', env)).toBe("kiln's home is /root");
    expect(expandWord('"\\$HOME \\" \\\\ \\n"', env)).toBe('$HOME " \\ \\n');
  });

  it("removes the escape token outside quotes, dropping one at the end", () => {
    expect(expandWord("\\$HOME \\a\\\\", env)).toBe("$HOME a\\");
    expect(expandWord("tail\\", env)).toBe("tail");
    expect(expandWord("\\'x\\\"", env)).toBe("'x\"");
  });

  it("honours the backtick escape token", () => {
    const bt = { escapeToken: "`" } as const;
    expect(expandWord("`$HOME C:\\dir", env, bt)).toBe("$HOME C:\\dir");
    expect(expandWord('"a`"b ``"', env, bt)).toBe('a"b `');
    expect(expandWord('"`x"', env, bt)).toBe("`x");
    expect(expandWord("${UNSET:-`}}", env, bt)).toBe("}");
  });

  it("handles non-ASCII names and text", () => {
    expect(expandWord("Grüße $ÄPFEL!", { ÄPFEL: "🍎🍎" })).toBe("Grüße 🍎🍎!");
    expect(expandWord("'日本'語$X", { X: "!" })).toBe("日本語!");
  });

  it("accepts a Map or a plain object, and ignores inherited object keys", () => {
    expect(expandWord("${A}-${B:-none}", new Map([["A", "1"]]))).toBe("1-none");
    expect(expandWord("[$constructor][${toString-unset}]", {})).toBe("[][unset]");
  });
});

describe("${...} operators", () => {
  it("defaults: - and :-", () => {
    expect(expandWord("${UNSET-d} ${EMPTY-d} ${NAME-d}", env)).toBe("d  kiln");
    expect(expandWord("${UNSET:-d} ${EMPTY:-d} ${NAME:-d}", env)).toBe("d d kiln");
  });

  it("alternatives: + and :+", () => {
    expect(expandWord("[${UNSET+a}][${EMPTY+a}][${NAME+a}]", env)).toBe("[][a][a]");
    expect(expandWord("[${UNSET:+a}][${EMPTY:+a}][${NAME:+a}]", env)).toBe("[][][a]");
  });

  it("required: ? and :?", () => {
    expect(expandWord("${NAME?} ${NAME:?}", env)).toBe("kiln kiln");
    expect(expandWord("[${EMPTY?}]", env)).toBe("[]");
    expectError("${UNSET?}", env, "UNSET: is not allowed to be unset");
    expectError("${UNSET:?}", env, "UNSET: is not allowed to be unset");
    expectError("${EMPTY:?}", env, "EMPTY: is not allowed to be empty");
    expectError("${EMPTY:?set it, $NAME}", env, "EMPTY: set it, kiln");
  });

  it("nests expansions inside the word part", () => {
    expect(expandWord("${A:-${B:-${NAME}-x}}", env)).toBe("kiln-x");
    expect(expandWord("${NAME:+<${HOME:+$HOME}>}", env)).toBe("</root>");
    expect(expandWord("${U:-'}' \"${NAME}\"}", env)).toBe("} kiln");
  });

  it("prefix removal: # shortest, ## longest", () => {
    expect(expandWord("${PATHS#*/}", env)).toBe("usr/lib/x/lib.so");
    expect(expandWord("${PATHS##*/}", env)).toBe("lib.so");
    expect(expandWord("${PATHS#/usr}", env)).toBe("/lib/x/lib.so");
    expect(expandWord("${PATHS#nomatch}", env)).toBe("/usr/lib/x/lib.so");
    expect(expandWord("${PATHS#}", env)).toBe("/usr/lib/x/lib.so");
  });

  it("suffix removal: % shortest, %% longest", () => {
    expect(expandWord("${PATHS%/*}", env)).toBe("/usr/lib/x");
    expect(expandWord("${PATHS%%/lib*}", env)).toBe("/usr");
    expect(expandWord("${PATHS%.so}", env)).toBe("/usr/lib/x/lib");
    expect(expandWord("${PATHS%%}", env)).toBe("/usr/lib/x/lib.so");
  });

  it("replacement: / first match, // every match", () => {
    expect(expandWord("${PATHS/lib/LIB}", env)).toBe("/usr/LIB/x/lib.so");
    expect(expandWord("${PATHS//lib/LIB}", env)).toBe("/usr/LIB/x/LIB.so");
    expect(expandWord("${PATHS//l?b/_}", env)).toBe("/usr/_/x/_.so");
    expect(expandWord("${PATHS//\\//:}", env)).toBe(":usr:lib:x:lib.so");
    expect(expandWord("${PATHS/x/}", env)).toBe("/usr/lib//lib.so");
    expect(expandWord("${UNSET//a/b}", env)).toBe("");
    expect(expandWord("${NAME/$EMPTY/>}", env)).toBe(">kiln");
  });

  it("treats $0 in a // replacement as the matched text, like Go's ReplaceAllString", () => {
    expect(expandWord("${NAME//i/$R}", { NAME: "kiln", R: "<$0>" })).toBe("k<i>ln");
    expect(expandWord("${NAME/i/$R}", { NAME: "kiln", R: "<$0>" })).toBe("k<$0>ln");
  });

  it("lets a variable supply the pattern", () => {
    expect(expandWord("${V#$P}", { V: "v1.2.3", P: "v" })).toBe("1.2.3");
    expect(expandWord("${V%$P}", { V: "v1.2.3", P: ".*" })).toBe("v1.2");
    // A leading # that comes from the value still turns # into ##, as in lex.go.
    expect(expandWord("${V#$P}", { V: "aXbXc", P: "#*X" })).toBe("c");
  });
});

describe("glob patterns in # % /", () => {
  const v = { V: "a*b?c[d]e.f" };
  it("* matches any run and ? one character", () => {
    expect(expandWord("${V#a?b}", v)).toBe("?c[d]e.f");
    expect(expandWord("${V%%?c*}", v)).toBe("a*b");
    expect(expandWord("${E//?/x}", { E: "é😀a" })).toBe("xxx");
  });

  it("escaped * ? and \\ are literal", () => {
    expect(expandWord("${V#a\\*}", v)).toBe("b?c[d]e.f");
    expect(expandWord("${V//\\?/Q}", v)).toBe("a*bQc[d]e.f");
    expect(expandWord("${W#\\\\}", { W: "\\tail" })).toBe("tail");
  });

  it("regular-expression characters and brackets are literal (BuildKit has no [...] classes)", () => {
    expect(expandWord("${V//[d]/D}", v)).toBe("a*b?cDe.f");
    expect(expandWord("${V//./_}", v)).toBe("a*b?c[d]e_f");
    expect(expandWord("${W//(a|b)+/x}", { W: "(a|b)+(a|b)+" })).toBe("xx");
  });

  it("chooses the shortest or longest match", () => {
    const x = { X: "aXbXc" };
    expect(expandWord("${X#*X}|${X##*X}|${X%X*}|${X%%X*}", x)).toBe("bXc|c|aXb|a");
    expect(expandWord("${X/X*/-}|${X//X?/-}", x)).toBe("a-|a--");
  });

  it("never lets * cross a newline (Go's . semantics)", () => {
    expect(expandWord("${M##*}", { M: "one\ntwo" })).toBe("\ntwo");
    expect(expandWord("${M%%o*}", { M: "one\ntwo" })).toBe("one\ntw");
  });

  it("rejects other escapes in a pattern", () => {
    expectError("${V#\\a}", v, "invalid pattern");
    expectError("${V%x\\q}", v, "invalid escape '\\q'");
  });
});

describe("errors", () => {
  it("reports unterminated quotes", () => {
    expectError("it's", env, "matching single-quote");
    expectError('say "hi', env, "matching double-quote");
    expectError('"end\\"', env, "matching double-quote");
  });

  it("reports unterminated or malformed ${", () => {
    expectError("${NAME", env, "missing '}'");
    expectError("${NAME:-x", env, "missing '}'");
    expectError("${NAME:-${HOME}", env, "missing '}'");
    expectError("x${", env, "missing '}'");
    expectError("${}", env, "bad substitution");
    expectError("${:-a}", env, "bad substitution");
    expectError("${{NAME}}", env, "bad substitution");
    expectError("${NAME/x", env, "missing '/' in ${}");
  });

  it("reports unsupported modifiers", () => {
    expectError("${NAME:=x}", env, "unsupported modifier (:=) in substitution");
    expectError("${NAME=x}", env, "unsupported modifier (=) in substitution");
    expectError("${NAME.x}", env, "unsupported modifier (.) in substitution");
    expectError("${NAME:x}", env, "unsupported modifier (:x) in substitution");
  });

  it("names the word that failed, on one line", () => {
    expectError("a\nb ${X:?gone}", env, 'failed to process "a\\nb ${X:?gone}": X: gone');
  });

  it("still evaluates unused default words, so their errors surface", () => {
    expectError("${NAME:-${UNSET:?needed}}", env, "UNSET: needed");
  });
});

describe("matched and unmatched names", () => {
  it("reports names that were set and not set, including those in unused parts", () => {
    const r = expandWordDetailed("$NAME ${EMPTY:-$U1} ${NAME:+${U2}} ${U3-x} '$U4'", env);
    expect(r.value).toBe("kiln   x $U4");
    expect([...r.matched].sort()).toEqual(["EMPTY", "NAME"]);
    expect([...r.unmatched].sort()).toEqual(["U1", "U2", "U3"]);
  });

  it("reports pattern and replacement variables", () => {
    const r = expandWordDetailed("${PATHS//$FROM/$TO}", { PATHS: "a/b", FROM: "/" });
    expect(r.value).toBe("ab");
    expect([...r.matched].sort()).toEqual(["FROM", "PATHS"]);
    expect([...r.unmatched]).toEqual(["TO"]);
  });

  it("reports nothing for a word without variables", () => {
    const r = expandWordDetailed("'$A' \\$B plain", {});
    expect(r.value).toBe("$A $B plain");
    expect(r.matched.size + r.unmatched.size).toBe(0);
  });
});

describe("word splitting", () => {
  it("splits on unquoted white space", () => {
    expect(expandWords("  a  b\tc\n d ", {})).toEqual(["a", "b", "c", "d"]);
    expect(expandWords("", {})).toEqual([]);
    expect(expandWords("''  \"\"", {})).toEqual([]);
  });

  it("keeps quoted and escaped white space in a word", () => {
    expect(expandWords("'a b' \"c  d\"e f\\ g", {})).toEqual(["a b", "c  de", "f g"]);
  });

  it("splits unquoted variable values but not quoted ones", () => {
    expect(expandWords("x${SP}y", env)).toEqual(["xone", "two", "y"]);
    expect(expandWords('x"${SP}"y', env)).toEqual(["xone  two y"]);
    expect(expandWords("${SP:-}", env)).toEqual(["one", "two"]);
    expect(expandWords("a ${EMPTY} b", env)).toEqual(["a", "b"]);
  });

  it("fails like expandWord on bad input", () => {
    expect(() => expandWords("a 'b", {})).toThrow(ExpansionError);
  });
});

describe("heredoc bodies", () => {
  it("expands variables and keeps quotes as text", () => {
    const body = "name='$NAME'\nhome=\"${HOME}\"\n${UNSET:-'dflt'}\n";
    expect(expandHeredoc(body, env)).toBe("name='kiln'\nhome=\"/root\"\n'dflt'\n");
  });

  it("processes backslash escapes, even with the backtick escape directive", () => {
    const body = "echo \\$HOME \\\\ \\n $HOME`x\n";
    expect(expandHeredoc(body, env)).toBe("echo $HOME \\ n /root`x\n");
    expect(expandHeredoc(body, env, { escapeToken: "`" })).toBe("echo $HOME \\ n /root`x\n");
  });

  it("does not fail on apostrophes, and still reports bad substitutions", () => {
    expect(expandHeredoc("it's \"fine\n", env)).toBe("it's \"fine\n");
    expect(() => expandHeredoc("x ${NAME\n", env)).toThrow(ExpansionError);
  });
});

describe("limits", () => {
  const nested = (n: number): string => "${A:-".repeat(n) + "deep" + "}".repeat(n);

  it("expands reasonable nesting", () => {
    expect(expandWord(nested(500), {})).toBe("deep");
  });

  it("refuses 10,000 nested expansions with an ExpansionError, not a crash", () => {
    expectError(nested(10_000), {}, "nested more than");
    expectError("${A:-".repeat(10_000), {}, "nested more than");
    expectError('${A:-"'.repeat(10_000), {}, "nested more than");
    expectError("${A#".repeat(50_000), {}, "nested more than");
  });

  it("expands a 5 MB word in well under a second of CPU", () => {
    const word = "ab $X \\$ 'q' ".repeat(400_000);
    let out = "";
    const ms = cpuMs(() => {
      out = expandWord(word, { X: "y" });
    });
    expect(word.length).toBeGreaterThan(5_000_000);
    expect(out.length).toBe(9 * 400_000);
    expect(out.startsWith("ab y $ q ab y")).toBe(true);
    expect(ms).toBeLessThan(1000);
  });

  it("splits a 5 MB line and matches patterns on a 5 MB value in linear time", () => {
    let words: string[] = [];
    const splitMs = cpuMs(() => {
      words = expandWords("ab cd ".repeat(900_000), {});
    });
    expect(words.length).toBe(1_800_000);
    expect(splitMs).toBeLessThan(2000);

    const big = { V: "a".repeat(5_000_000) };
    let trimmed = "";
    let replaced = "";
    const matchMs = cpuMs(() => {
      trimmed = expandWord("${V##*a}|${V%%a*}", { V: big.V + "b" });
      replaced = expandWord("${V//*x/y}", big); // no match: quadratic for a backtracking engine
    });
    expect(trimmed).toBe("b|");
    expect(replaced.length).toBe(5_000_000);
    expect(matchMs).toBeLessThan(2500); // three full scans; a quadratic engine would take hours
  });
});
