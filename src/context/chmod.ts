// `COPY/ADD --chmod`: octal modes (`755`, `0644`, `4755`) and symbolic ones (`u+x,g-w,o=r`,
// `a+rX`, `+x`, `g=u`), applied to each copied file and directory the way chmod(1) does.
// `X` sets execute for directories and for files that already have an execute bit.
import { KilnError } from "../errors.js";

export type ChmodFn = (mode: number, isDir: boolean) => number;

const WHO_BITS: Record<string, number> = { u: 0o4700, g: 0o2070, o: 0o1007 };

interface Clause {
  who: number; // mask of affected bits (0 => all, "a")
  ops: Array<{ op: "+" | "-" | "="; perm: string }>;
}

export function parseChmod(spec: string): ChmodFn {
  const s = spec.trim();
  const invalid = () => new KilnError("COPY_CHMOD_INVALID", `invalid --chmod "${spec}"`);
  if (/^[0-9]+$/.test(s)) {
    if (!/^[0-7]{1,4}$/.test(s)) throw invalid();
    const mode = parseInt(s, 8);
    return () => mode;
  }
  const clauses: Clause[] = [];
  for (const part of s.split(",")) {
    const m = /^([ugoa]*)((?:[-+=][rwxXstugo]*)+)$/.exec(part);
    if (!m) throw invalid();
    let who = 0;
    for (const w of m[1]!) who |= w === "a" ? 0o7777 : WHO_BITS[w]!;
    const ops: Clause["ops"] = [];
    const re = /([-+=])([rwxXstugo]*)/g;
    let om: RegExpExecArray | null;
    while ((om = re.exec(m[2]!)) !== null) {
      const perm = om[2]!;
      // Copying from another class (`g=u`) cannot be mixed with rwx letters.
      if (/[ugo]/.test(perm) && !/^[ugo]$/.test(perm)) throw invalid();
      ops.push({ op: om[1] as "+" | "-" | "=", perm });
    }
    clauses.push({ who, ops });
  }
  return (mode: number, isDir: boolean) => {
    let cur = mode & 0o7777;
    for (const c of clauses) {
      const who = c.who === 0 ? 0o7777 : c.who;
      for (const { op, perm } of c.ops) {
        let bits = 0;
        if (/^[ugo]$/.test(perm)) {
          // Copy the permission triplet of another class into each selected class.
          const shift = perm === "u" ? 6 : perm === "g" ? 3 : 0;
          const t = (cur >> shift) & 0o7;
          bits = (t << 6) | (t << 3) | t;
        } else {
          for (const p of perm) {
            if (p === "r") bits |= 0o444;
            else if (p === "w") bits |= 0o222;
            else if (p === "x") bits |= 0o111;
            else if (p === "X") {
              if (isDir || (cur & 0o111) !== 0) bits |= 0o111;
            } else if (p === "s") bits |= 0o6000;
            else if (p === "t") bits |= 0o1000;
          }
        }
        const eff = bits & who;
        if (op === "+") cur |= eff;
        else if (op === "-") cur &= ~eff;
        else {
          // `=` clears the selected classes' rwx (and their special bits) then sets.
          const clear = who & 0o7777;
          cur = (cur & ~clear) | eff;
        }
      }
    }
    return cur & 0o7777;
  };
}
