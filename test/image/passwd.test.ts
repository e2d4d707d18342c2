// The passwd/group parser both owner resolutions share: comments, blank lines, CRLF endings and
// rows with too few fields, as images ship them.
import { describe, expect, it } from "vitest";
import { parseGroup, parsePasswd } from "../../src/image/passwd.js";

describe("parsePasswd / parseGroup", () => {
  it("reads the rows, skipping comments, blank lines and rows with too few fields", () => {
    const passwd = "# users\nroot:x:0:0:root:/root:/bin/sh\r\n\n  app:x:1000:1001::/home/app:/bin/sh  \nbroken:x\nnohome:x:5:6\n";
    expect(parsePasswd(passwd)).toEqual([
      { name: "root", uid: "0", gid: "0", home: "/root" },
      { name: "app", uid: "1000", gid: "1001", home: "/home/app" },
      { name: "nohome", uid: "5", gid: "6", home: undefined },
    ]);
    expect(parseGroup(Buffer.from("root:x:0:\nstaff:x:50:app,web\r\n#x:x:1:\n"))).toEqual([
      { name: "root", gid: "0", members: [] },
      { name: "staff", gid: "50", members: ["app", "web"] },
    ]);
    expect(parsePasswd(undefined)).toEqual([]);
  });
});
