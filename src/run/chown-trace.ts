// For a non-root proot step whose image cannot load fakeroot (musl, static binaries only, an
// older glibc): proot's fake root would pretend a chown to another id and the layer would record
// root. proot runs with `-v 3`, which prints every traced system call; this filter drops proot's
// own notices from the step's stderr and notes each chown-family call that names an id other
// than 0 (the fake root's own) or -1 (unchanged). The runner then fails the step with that call:
// an owner it cannot record, never a wrong one.

/** A chown the fake root could not have recorded. */
export interface UnrecordedChown {
  syscall: string;
  uid: number;
  gid: number;
}

const CALL = /proot info: pid \d+: sysenter start: (chown|lchown|fchown|fchownat|chown32|lchown32|fchown32)\(([^)]*)\)/;

function id(hex: string | undefined): number {
  if (!hex) return -1;
  const v = Number(BigInt(hex) & 0xffffffffn);
  return v === 0xffffffff ? -1 : v;
}

export class ChownTrace {
  private partial = "";
  /** The first chown naming another id, if any. */
  first: UnrecordedChown | undefined;

  /** stderr with proot's notice lines removed (a line it printed mid-line of the step's is cut out). */
  readonly filter = (b: Buffer): Buffer => {
    const text = this.partial + b.toString("latin1");
    const end = text.lastIndexOf("\n");
    this.partial = end < 0 ? text : text.slice(end + 1);
    if (end < 0) return Buffer.alloc(0);
    let out = "";
    for (const line of text.slice(0, end + 1).split(/(?<=\n)/)) {
      const at = line.indexOf("proot info: ");
      if (at < 0) {
        out += line;
        continue;
      }
      this.note(line.slice(at));
      out += line.slice(0, at);
    }
    return Buffer.from(out, "latin1");
  };

  /** What is left of a last line without newline (call once the process has ended). */
  flush(): Buffer {
    const rest = this.partial;
    this.partial = "";
    const at = rest.indexOf("proot info: ");
    if (at >= 0) this.note(rest.slice(at));
    return Buffer.from(at < 0 ? rest : rest.slice(0, at), "latin1");
  }

  private note(line: string): void {
    if (this.first) return;
    const m = CALL.exec(line);
    if (!m) return;
    const args = m[2]!.split(",").map((a) => a.trim());
    const at = m[1] === "fchownat" ? 2 : 1;
    const uid = id(args[at]);
    const gid = id(args[at + 1]);
    if ((uid > 0) || (gid > 0)) this.first = { syscall: m[1]!, uid, gid };
  }
}
