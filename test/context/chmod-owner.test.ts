import { describe, it, expect } from "vitest";
import { parseChmod } from "../../src/context/chmod.js";
import { resolveChown } from "../../src/context/owner.js";
import { KilnError } from "../../src/errors.js";

describe("parseChmod", () => {
  it("octal modes replace the mode, including special bits", () => {
    expect(parseChmod("755")(0o600, false)).toBe(0o755);
    expect(parseChmod("0644")(0o777, true)).toBe(0o644);
    expect(parseChmod("4755")(0o644, false)).toBe(0o4755);
  });
  it("symbolic clauses apply like chmod(1)", () => {
    expect(parseChmod("u+x,g-w,o=r")(0o664, false)).toBe(0o744);
    expect(parseChmod("+x")(0o644, false)).toBe(0o755);
    expect(parseChmod("a=r")(0o777, false)).toBe(0o444);
    expect(parseChmod("go-rwx")(0o755, false)).toBe(0o700);
    expect(parseChmod("u+s,+t")(0o755, true)).toBe(0o5755);
    expect(parseChmod("g=u")(0o740, false)).toBe(0o770);
    expect(parseChmod("u=rw,go=")(0o777, false)).toBe(0o600);
  });
  it("X adds execute to directories and already-executable files only", () => {
    const f = parseChmod("a+rX");
    expect(f(0o600, false)).toBe(0o644);
    expect(f(0o700, false)).toBe(0o755);
    expect(f(0o700, true)).toBe(0o755);
    expect(f(0o600, true)).toBe(0o755);
  });
  it("rejects invalid specs with one clear line", () => {
    for (const bad of ["999", "8", "77777", "u+z", "q+x", "u", "", "u+x,"]) {
      const err = (() => {
        try {
          parseChmod(bad);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err, bad).toBeInstanceOf(KilnError);
      expect((err as Error).message).toBe(`invalid --chmod "${bad}"`);
    }
  });
});

const passwd = Buffer.from("root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1001::/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n");
const group = Buffer.from("root:x:0:\nstaff:x:50:app\napp:x:1001:\n");

describe("resolveChown", () => {
  it("numeric user alone gives gid = uid", () => {
    expect(resolveChown("1000")).toEqual({ uid: 1000, gid: 1000 });
    expect(resolveChown("1000:50")).toEqual({ uid: 1000, gid: 50 });
  });
  it("names come from passwd/group; a named user alone gets its primary group", () => {
    expect(resolveChown("app", passwd, group)).toEqual({ uid: 1000, gid: 1001 });
    expect(resolveChown("app:staff", passwd, group)).toEqual({ uid: 1000, gid: 50 });
    expect(resolveChown("web:0", passwd, group)).toEqual({ uid: 33, gid: 0 });
    expect(resolveChown("5:staff", passwd, group)).toEqual({ uid: 5, gid: 50 });
    expect(resolveChown(":staff", passwd, group)).toEqual({ uid: 0, gid: 50 });
  });
  it("unknown names are KilnErrors naming the file", () => {
    expect(() => resolveChown("nobody", passwd, group)).toThrow('unable to find user "nobody": no matching entries in passwd file');
    expect(() => resolveChown("app", undefined, undefined)).toThrow('unable to find user "app": no matching entries in passwd file');
    expect(() => resolveChown("app:wheel", passwd, group)).toThrow('unable to find group "wheel": no matching entries in group file');
    expect(() => resolveChown("99999999999")).toThrow(KilnError);
  });
});
