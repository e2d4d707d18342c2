// Units people type and read: human-readable sizes for progress lines and messages (decimal
// units, as docker prints them), and the size and duration values flags take.
import { UsageError } from "./errors.js";

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

const SIZE_UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * "10GB", "512MiB", "1g", "1.5 t", "4096" -> bytes. Units are binary whether or not they carry
 * an "i" (as Docker's --keep-storage reads them).
 */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$/i.exec(s);
  if (!m) throw new UsageError("OPTION_INVALID", `invalid size "${s}" (examples: 512MiB, 10GB, 1g)`);
  const unit = m[2]!.toLowerCase();
  if (unit === "" && m[3]!.toLowerCase().startsWith("i")) throw new UsageError("OPTION_INVALID", `invalid size "${s}" (examples: 512MiB, 10GB, 1g)`);
  return Math.floor(Number(m[1]) * SIZE_UNITS[unit]!);
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** "24h", "7d", "90m", "1h30m", "1.5h", "500ms" -> milliseconds. */
export function parseDuration(s: string): number {
  const text = s.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (text === "" || matched !== text.length) throw new UsageError("OPTION_INVALID", `invalid duration "${s}" (examples: 90m, 24h, 7d)`);
  return Math.round(total);
}
