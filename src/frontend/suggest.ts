// Nearest-name suggestions for typos ("RUNN" -> "RUN", "--form" -> "--from").
// Owns the bounded edit distance and the "did you mean" choice, BuildKit-style
// (a candidate must be fewer than 3 edits away; the first closest one wins).

/** The 18 Dockerfile instruction keywords, upper-case. */
export const INSTRUCTION_NAMES: readonly string[] = [
  "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
  "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
];

/**
 * Levenshtein distance between `a` and `b`, or `limit` when it is at least `limit`.
 * Cost is O(len(a) * len(b)) at most, and O(1) when the lengths alone exceed the limit.
 */
export function editDistance(a: string, b: string, limit = Number.POSITIVE_INFINITY): number {
  if (Math.abs(a.length - b.length) >= limit) return limit;
  if (a.length === 0) return Math.min(b.length, limit);
  if (b.length === 0) return Math.min(a.length, limit);
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let rowMin = cur[0];
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (cur[j] < rowMin) rowMin = cur[j];
    }
    if (rowMin >= limit) return limit;
    [prev, cur] = [cur, prev];
  }
  return Math.min(prev[b.length], limit);
}

export interface SuggestOptions {
  /** Compare case-sensitively (default false). */
  caseSensitive?: boolean;
}

/**
 * The option closest to `value` (fewer than 3 edits), or undefined when none is close or
 * when `value` matches an option exactly. Case-insensitive matches are returned in the
 * case the user wrote (all lower -> lower, otherwise upper).
 */
export function suggest(value: string, options: readonly string[], opts: SuggestOptions = {}): string | undefined {
  const caseSensitive = opts.caseSensitive ?? false;
  if (value === "" || value.length > 64) return undefined;
  const v = caseSensitive ? value : value.toLowerCase();
  let best: string | undefined;
  let bestDist = 3;
  for (const option of options) {
    const o = caseSensitive ? option : option.toLowerCase();
    if (o === v) return undefined;
    const d = editDistance(v, o, bestDist);
    if (d < bestDist) {
      bestDist = d;
      best = option;
    }
  }
  if (best === undefined || caseSensitive) return best;
  return value === value.toLowerCase() ? best.toLowerCase() : best.toUpperCase();
}

/** The instruction keyword nearest to a mistyped one, e.g. "RUNN" -> "RUN". */
export function suggestInstruction(word: string): string | undefined {
  return suggest(word, INSTRUCTION_NAMES);
}
