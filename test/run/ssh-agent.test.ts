// proxyMode: the mode of a RUN --mount=type=ssh proxy socket — kept as asked when kiln is root (it
// chowns) or already the owner, widened to reach the step's user when kiln cannot chown to it.
import { describe, expect, it } from "vitest";
import { proxyMode } from "../../src/run/ssh-agent.js";

describe("proxyMode", () => {
  it("root keeps the mode (the socket is chowned instead)", () => {
    expect(proxyMode({ mode: 0o600, uid: 1001000, gid: 1001000 }, { uid: 0, gid: 0 })).toBe(0o600);
  });
  it("not root, owner asked is kiln's own user and group: the mode as asked", () => {
    expect(proxyMode({ mode: 0o600, uid: 1234, gid: 1234 }, { uid: 1234, gid: 1234 })).toBe(0o600);
  });
  it("not root, another owner: the owner's bits for everyone", () => {
    expect(proxyMode({ mode: 0o600, uid: 1500999, gid: 1500999 }, { uid: 1234, gid: 1234 })).toBe(0o666);
    expect(proxyMode({ mode: 0o640, uid: 1500999, gid: 0 }, { uid: 1234, gid: 1234 })).toBe(0o666);
  });
  it("not root, kiln's user but another group: the group's bits go to others too", () => {
    expect(proxyMode({ mode: 0o660, uid: 1234, gid: 1500999 }, { uid: 1234, gid: 1234 })).toBe(0o666);
    expect(proxyMode({ mode: 0o600, uid: 1234, gid: 1500999 }, { uid: 1234, gid: 1234 })).toBe(0o600);
  });
});
