// The proot trace filter for images that cannot load fakeroot: proot's notices leave the step's
// stderr (also mid-line and across chunks), and a chown-family call naming an id other than 0 or
// -1 is noted with its ids.
import { describe, expect, it } from "vitest";
import { ChownTrace } from "../../src/run/chown-trace.js";

const call = (name: string, args: string) => `proot info: pid 12: sysenter start: ${name}(${args}) = 0xffffffffffffffda [0x7ffe, 0]\n`;

describe("ChownTrace", () => {
  it("drops proot's lines, keeps the step's, across chunk boundaries", () => {
    const t = new ChownTrace();
    const text = `hello\n${call("write", "0x2, 0x1, 0x3")}par` + "tial" + call("chown", "0x7ffe, 0x0, 0x0") + "end\nlast";
    const out: string[] = [];
    for (let i = 0; i < text.length; i += 7) out.push(t.filter(Buffer.from(text.slice(i, i + 7))).toString());
    out.push(t.flush().toString());
    expect(out.join("")).toBe("hello\npartialend\nlast");
    expect(t.first).toBeUndefined(); // chown to 0:0 is the fake root's own
  });

  it("notes the first chown to another id (fchownat's ids are its third and fourth arguments; -1 is unchanged)", () => {
    const t = new ChownTrace();
    t.filter(Buffer.from(call("fchownat", "0xffffff9c, 0x7ffe, 0xffffffff, 0x65, 0x0, 0x0") + call("chown", "0x1, 0x64, 0x65")));
    expect(t.first).toEqual({ syscall: "fchownat", uid: -1, gid: 101 });
    const l = new ChownTrace();
    l.filter(Buffer.from(call("lchown", "0x1, 0x64, 0xffffffffffffffff")));
    expect(l.first).toEqual({ syscall: "lchown", uid: 100, gid: -1 });
  });
});
