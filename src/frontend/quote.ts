// Go-compatible string quoting (strconv.Quote), for one-line error messages and the BuildKit
// AST dump (src/frontend/dump.ts).

// strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
// Anything that may need escaping: quotes, backslash, non-ASCII, controls.
const NEEDS_WORK = /["\\\u0000-\u001f\u007f-\uffff]/;

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}

function quoteRune(cp: number, ch: string): string {
  switch (cp) {
    case 0x22: return '\\"';
    case 0x5c: return "\\\\";
    case 0x07: return "\\a";
    case 0x08: return "\\b";
    case 0x0c: return "\\f";
    case 0x0a: return "\\n";
    case 0x0d: return "\\r";
    case 0x09: return "\\t";
    case 0x0b: return "\\v";
  }
  if (cp >= 0xd800 && cp <= 0xdfff) return "\ufffd"; // lone surrogate: Go would hold U+FFFD
  if (PRINTABLE.test(ch)) return ch;
  if (cp < 0x20 || cp === 0x7f) return "\\x" + hex(cp, 2);
  if (cp < 0x10000) return "\\u" + hex(cp, 4);
  return "\\U" + hex(cp, 8);
}

// Runes that are neither printable nor `"`/`\\` (those two are handled by a plain replace),
// plus lone surrogates.
const UNPRINTABLE = /[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/gu;

/** Quote `s` exactly as Go's strconv.Quote does (for valid UTF-16 input). */
export function goQuote(s: string): string {
  if (!NEEDS_WORK.test(s)) return `"${s}"`;
  let out = s.includes('"') || s.includes("\\") ? s.replace(/["\\]/g, "\\$&") : s;
  if (UNPRINTABLE.test(out)) {
    UNPRINTABLE.lastIndex = 0;
    out = out.replace(UNPRINTABLE, (ch) => quoteRune(ch.codePointAt(0) ?? 0, ch));
  }
  UNPRINTABLE.lastIndex = 0;
  return `"${out}"`;
}
