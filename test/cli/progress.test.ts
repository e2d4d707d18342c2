// The CLI's rendering of structured transfer events: `kiln build --progress plain` prints one
// readable line per finished blob (push lines as before; pulls that downloaded something), never
// the in-flight events; `kiln pull`/`kiln push` print one line per blob, and on a TTY redraw the
// blob in flight with its bytes done/total.
import { describe, it, expect } from "vitest";
import { PassThrough } from "node:stream";
import { createProgress, createTransferProgress } from "../../src/cli/progress.js";
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
