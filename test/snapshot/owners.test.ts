// Host owners mapped back to container ids through a runner's id map (rootless user namespaces,
// fake roots): mapped ranges, untouched whiteouts, and a one-line error for an unmapped owner.
import { describe, it, expect } from "vitest";
import { KilnError } from "../../src/errors.js";
import type { LayerEntry } from "../../src/layer/entry.js";
import { containerID, toContainerOwners } from "../../src/snapshot/owners.js";

const map = {
  uid: [{ containerID: 0, hostID: 1001, size: 1 }, { containerID: 1, hostID: 100_000, size: 65_536 }],
  gid: [{ containerID: 0, hostID: 1002, size: 1 }, { containerID: 1, hostID: 200_000, size: 65_536 }],
};
const e = (path: string, uid: number, gid: number): LayerEntry => ({ path, type: "file", mode: 0o644, uid, gid, mtime: 0, size: 0 });

describe("toContainerOwners", () => {
  it("maps each owner through its range and leaves whiteouts and unmapped steps alone", () => {
    expect(containerID(map.uid, 1001)).toBe(0);
    expect(containerID(map.uid, 100_999)).toBe(1000);
    expect(containerID(map.uid, 165_535)).toBe(65_536);
    expect(containerID(map.uid, 165_536)).toBeUndefined();
    const input = [e("a", 1001, 1002), e("b", 100_999, 200_999), e("c", 165_533, 265_533), e("d/.wh.gone", 0, 0)];
    expect(toContainerOwners(input, map).map((x) => [x.path, x.uid, x.gid])).toEqual([
      ["a", 0, 0],
      ["b", 1000, 1000],
      ["c", 65_534, 65_534],
      ["d/.wh.gone", 0, 0],
    ]);
    expect(input[0]!.uid).toBe(1001); // the snapshot's own entries are not changed
    expect(toContainerOwners(input, undefined)).toBe(input);
  });

  it("an owner with no id inside the container is a step error", () => {
    expect(() => toContainerOwners([e("etc/x", 0, 1002)], map)).toThrow(new KilnError("OWNER_UNMAPPED", "RUN created /etc/x owned by host uid 0, which has no id inside the container"));
    expect(() => toContainerOwners([e("etc/y", 1001, 5)], map)).toThrow(/^RUN created \/etc\/y owned by host gid 5, which has no id inside the container$/);
  });
});
