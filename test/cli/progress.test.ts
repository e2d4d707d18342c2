// The CLI's rendering of structured transfer events: `kiln build --progress plain` prints one
// readable line per finished blob (push lines as before; pulls that downloaded something), never
// the in-flight events; `kiln pull`/`kiln push` print one line per blob, and on a TTY redraw the
// blob in flight with its bytes done/total.
import { describe, it, expect } from "vitest";
import { PassThrough } from "node:stream";
import { createProgress, createTransferProgress } from "../../src/cli/progress.js";
import { createLiveProgress } from "../../src/cli/live-progress.js";
import type { TransferProgress } from "../../src/registry/options.js";

function sink(tty: boolean): { out: NodeJS.WriteStream; text: () => string } {
  const s = new PassThrough();
  const chunks: Buffer[] = [];
  s.on("data", (c: Buffer) => chunks.push(c));
  Object.assign(s, { isTTY: tty, columns: 120 });
  return { out: s as unknown as NodeJS.WriteStream, text: () => Buffer.concat(chunks).toString("utf8") };
}

const D = `sha256:${"ab".repeat(32)}` as TransferProgress["digest"];
const ev = (kind: "pull" | "push", state: TransferProgress["state"], bytes: number): TransferProgress => ({
  type: kind === "pull" ? "pull-progress" : "push-progress", kind, digest: D, total: 2_000_000, bytes, rate: 1_000_000, state,
});

describe("build progress (plain)", () => {
  it("prints one line per finished blob and nothing for in-flight events", () => {
    const { out, text } = sink(false);
    const p = createProgress("plain", out);
    p(ev("pull", "progress", 1000));
    p(ev("pull", "done", 2_000_000));
    p(ev("pull", "exists", 2_000_000));
    p(ev("push", "progress", 1000));
    p(ev("push", "done", 2_000_000));
    p(ev("push", "exists", 2_000_000));
    p(ev("push", "mounted", 2_000_000));
    expect(text().split("\n")).toEqual([
      "pull sha256:abababababab: pulled 2.00 MB at 1.00 MB/s",
      "push sha256:abababababab: pushed 2.00 MB at 1.00 MB/s",
      "push sha256:abababababab: already in the registry",
      "push sha256:abababababab: mounted",
      "",
    ]);
  });

  it("quiet prints nothing", () => {
    const { out, text } = sink(false);
    const p = createProgress("quiet", out);
    p(ev("push", "done", 10));
    expect(text()).toBe("");
  });
});

describe("kiln pull / kiln push progress", () => {
  it("one line per blob; in-flight bytes only on a TTY, redrawn in place", () => {
    const plain = sink(false);
    const p = createTransferProgress(plain.out);
    p(ev("pull", "progress", 1_000_000));
    p(ev("pull", "done", 2_000_000));
    p(ev("push", "exists", 0));
    expect(plain.text()).toBe("sha256:abababababab  pulled 2.00 MB at 1.00 MB/s\nsha256:abababababab  exists\n");

    const tty = sink(true);
    const t = createTransferProgress(tty.out);
    t(ev("pull", "progress", 1_000_000));
    t(ev("pull", "done", 2_000_000));
    expect(tty.text()).toBe("\r\x1b[2Kpull sha256:abababababab: 1.00 MB / 2.00 MB (50%)\r\x1b[2Ksha256:abababababab  pulled 2.00 MB at 1.00 MB/s\n");
  });
});

/** The screen a terminal shows for `text`: \n, \r, ESC[nA (up), ESC[J (erase below), ESC[2K, colours ignored. */
function screen(text: string): string[] {
  const rows: string[] = [""];
  let row = 0;
  let col = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\x1b") {
      const m = /^\x1b\[(\d*)([A-Za-z])/.exec(text.slice(i))!;
      i += m[0].length - 1;
      if (m[2] === "A") row = Math.max(0, row - Number(m[1] || 1));
      else if (m[2] === "J") rows.splice(row + 1), (rows[row] = rows[row]!.slice(0, col));
      else if (m[2] === "K") rows[row] = "";
      continue;
    }
    if (c === "\n") {
      row++;
      col = 0;
      rows[row] ??= "";
    } else if (c === "\r") col = 0;
    else {
      const line = rows[row]!.padEnd(col);
      rows[row] = line.slice(0, col) + c + line.slice(col + 1);
      col++;
    }
  }
  return rows.filter((r, i) => r !== "" || i < rows.length - 1);
}

describe("live view (a TTY)", () => {
  it("shows running steps with timers and blobs in flight with bytes/total; finished lines stay; close() leaves a total", () => {
    const { out, text } = sink(true);
    let t = 1_000;
    const p = createLiveProgress(out, (e) => `#${e.id} [${e.stage} ${e.step}/${e.steps}] ${e.text}`, () => t);
    expect(createProgress("tty", out).close).toBeTypeOf("function"); // what kiln build uses on a TTY
    p({ type: "step-start", id: 1, stage: "build", step: 1, steps: 2, text: "FROM base" });
    p({ type: "step-start", id: 2, stage: "test", step: 1, steps: 2, text: "FROM base" });
    t += 1_250;
    p(ev("pull", "progress", 1_000_000));
    const mid = screen(text());
    expect(mid).toContain("#1 [build 1/2] FROM base  1.3s");
    expect(mid.some((l) => l.startsWith("#2 [test 1/2] FROM base  "))).toBe(true);
    expect(mid.some((l) => l === "  pull sha256:abababababab: 1.00 MB / 2.00 MB 50% 1.00 MB/s")).toBe(true);
    p(ev("pull", "done", 2_000_000));
    p({ type: "step-done", id: 1, seconds: 1.5, layer: { digest: D, size: 2_000_000 } });
    p({ type: "step-log", id: 2, stream: "stdout", data: Buffer.from("hello\n") });
    p({ type: "step-done", id: 2, seconds: 0.2, cached: true });
    p.close("done");
    expect(screen(text())).toEqual([
      "pull sha256:abababababab: pulled 2.00 MB at 1.00 MB/s",
      "#1 [build 1/2] FROM base  DONE 1.5s  2.00 MB  sha256:abababababab",
      "#2 hello",
      "#2 [test 1/2] FROM base  CACHED",
      "done: 2 steps (1 cached) in 1.3s",
    ]);
  });
});
