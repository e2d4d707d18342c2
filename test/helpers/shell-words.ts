// POSIX-shell words of one simple command line, for the tests that check the command lines in
// examples/ and docs/ with kiln's own argument parser: quotes, backslashes, ${VAR} / $VAR from
// `env` (an unknown variable fails: a typo in a doc must not pass unseen).

/** POSIX-shell words of one simple command: quotes, backslashes, ${VAR} / $VAR from `env` (unknown variables fail). */
export function shellWords(line: string, env: Record<string, string>): string[] {
  const words: string[] = [];
  let cur: string | null = null;
  let quote: "'" | '"' | null = null;
  const expand = (i: number): [string, number] => {
    const m = /^\$(?:\{(\w+)\}|(\w+))/.exec(line.slice(i));
    if (!m) return ["$", i + 1];
    const name = (m[1] ?? m[2])!;
    if (!(name in env)) throw new Error(`unknown variable ${name} in: ${line}`);
    return [env[name]!, i + m[0].length];
  };
  for (let i = 0; i < line.length; ) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
      i++;
    } else if (c === "$") {
      const [v, next] = expand(i);
      cur = (cur ?? "") + v;
      i = next;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === "\\" && i + 1 < line.length) cur += line[++i]!;
      else cur += c;
      i++;
    } else if (c === "'" || c === '"') {
      quote = c;
      cur ??= "";
      i++;
    } else if (c === " " || c === "\t") {
      if (cur !== null) words.push(cur);
      cur = null;
      i++;
    } else {
      cur = (cur ?? "") + (c === "\\" ? line[++i] ?? "" : c);
      i++;
    }
  }
  if (quote) throw new Error(`unterminated quote in: ${line}`);
  if (cur !== null) words.push(cur);
  return words;
}
