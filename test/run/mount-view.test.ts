// MountView (targets resolved through the mounts before them) and MountTargets' clean-up (every
// path re-resolved after the step, acted on only while it is still the object kiln created),
// on real directories: symlinks inside an earlier bind's source, inside the rootfs, into kiln's
// own /proc and /dev, a tmpfs that starts empty, and a step that swapped a stub's parent.
import { lstatSync, mkdirSync, readdirSync, renameSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { KilnError } from "../../src/errors.js";
import { MountView, addSystemMounts } from "../../src/run/mount-view.js";
import { MountTargets } from "../../src/run/sandbox-files.js";
import { tempDir } from "../snapshot/helpers.js";

let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups) c();
  cleanups = [];
});

function dirs(): { rootfs: string; src: string; host: string } {
  const t = tempDir("kiln-mountview-");
  cleanups.push(t.cleanup);
  const rootfs = join(t.dir, "rootfs");
  const src = join(t.dir, "src");
  const host = join(t.dir, "host");
  for (const d of [rootfs, src, host]) mkdirSync(d);
  return { rootfs, src, host };
}

describe("MountView", () => {
  it("continues inside an earlier bind's source and resolves its symlinks from the container root", () => {
    const { rootfs, src, host } = dirs();
    symlinkSync(host, join(src, "escape")); // absolute: the container's own path of that name
    symlinkSync("../inner", join(src, "up")); // relative: climbs to the mount's parent, /
    mkdirSync(join(rootfs, "inner"));
    const view = new MountView(rootfs);
    view.add({ target: "/m", kind: "bind-dir", source: src, writable: false });
    const viaAbs = view.resolve("/m/escape/new", "--mount=x", { followFinal: true });
    expect(viaAbs).toEqual({ path: `${host}/new`, exists: false });
    const viaRel = view.resolve("/m/up", "--mount=x", { followFinal: true });
    expect(viaRel).toEqual({ path: "/inner", exists: true });
    expect(readdirSync(host)).toEqual([]);
  });

  it("sees a mount made inside a tmpfs, and resolves the symlinks in its source", () => {
    const { rootfs, src, host } = dirs();
    symlinkSync(host, join(src, "escape"));
    const view = new MountView(rootfs);
    view.add({ target: "/t", kind: "tmpfs", writable: true });
    view.add({ target: "/t/a/b", kind: "bind-dir", source: src, writable: true });
    expect(view.resolve("/t/a/b/escape/x", "--mount=x")).toEqual({ path: `${host}/x`, exists: false });
  });

  it("treats a tmpfs as empty and refuses new directories in a read-only bind", () => {
    const { rootfs, src } = dirs();
    const view = new MountView(rootfs);
    view.add({ target: "/t", kind: "tmpfs", writable: true });
    view.add({ target: "/ro", kind: "bind-dir", source: src, writable: false });
    expect(view.resolve("/t/a/b", "--mount=x").within?.target).toBe("/t");
    expect(view.resolve("/t/a/b", "--mount=x").exists).toBe(false);
    expect(() => view.resolve("/ro/new", "--mount=type=tmpfs,target=/ro/new")).toThrow(
      /^--mount=type=tmpfs,target=\/ro\/new: target \/ro\/new does not exist inside the read-only mount at \/ro/,
    );
  });

  it("refuses targets on kiln's /proc, /sys and /dev nodes, through a mounted file, and the root", () => {
    const { rootfs } = dirs();
    symlinkSync("/proc/self", join(rootfs, "p"));
    const view = new MountView(rootfs);
    addSystemMounts(view, { proc: "/proc", dev: "/dev", sys: "/sys" });
    view.add({ target: "/etc/hosts", kind: "bind-file", source: "/dev/null", writable: true });
    for (const t of ["/proc/x", "/p/x", "/sys", "/dev/pts/x", "/dev/fd/3", "/etc/hosts/x", "/"]) {
      expect(() => view.resolve(t, "--mount=y", { followFinal: true }), t).toThrow(KilnError);
    }
    expect(view.resolve("/dev/shm/x", "--mount=y").within?.target).toBe("/dev/shm");
    expect(view.resolve("/dev/pipes", "--mount=y").within?.target).toBe("/dev");
  });
});

describe("MountTargets.cleanup", () => {
  it("removes its stubs and restores the parent's times", async () => {
    const { rootfs } = dirs();
    mkdirSync(join(rootfs, "etc"));
    const old = new Date("2001-01-01T00:00:00Z");
    utimesSync(join(rootfs, "etc"), old, old);
    const targets = new MountTargets(rootfs);
    await targets.ensure("/etc/hosts", "file");
    await targets.ensure("/a/b/c", "dir");
    await targets.cleanup();
    expect(readdirSync(rootfs).sort()).toEqual(["etc"]);
    expect(readdirSync(join(rootfs, "etc"))).toEqual([]);
    expect(statSync(join(rootfs, "etc")).mtimeMs).toBe(old.getTime());
  });

  it("leaves a host directory alone when the step replaced a stub's parent by a symlink to it", async () => {
    const { rootfs, host } = dirs();
    mkdirSync(join(host, "b", "c"), { recursive: true });
    writeFileSync(join(host, "hosts"), "");
    const old = new Date("2001-01-01T00:00:00Z");
    for (const p of ["b/c", "b", "hosts", ""]) utimesSync(join(host, p), old, old);
    const targets = new MountTargets(rootfs);
    await targets.ensure("/etc/hosts", "file");
    await targets.ensure("/a/b/c", "dir");
    // what a hostile step does while the mounts are in place
    renameSync(join(rootfs, "a"), join(rootfs, "a.moved"));
    symlinkSync(host, join(rootfs, "a"));
    renameSync(join(rootfs, "etc"), join(rootfs, "etc.moved"));
    symlinkSync(host, join(rootfs, "etc"));
    await targets.cleanup();
    expect(readdirSync(host).sort()).toEqual(["b", "hosts"]);
    expect(readdirSync(join(host, "b"))).toEqual(["c"]);
    for (const p of ["b/c", "b", "hosts", ""]) expect(lstatSync(join(host, p)).mtimeMs, p).toBe(old.getTime());
    expect(lstatSync(join(rootfs, "a")).isSymbolicLink()).toBe(true);
  });

  it("keeps a stub the step replaced by another object of the same name", async () => {
    const { rootfs } = dirs();
    const targets = new MountTargets(rootfs);
    await targets.ensure("/x", "file");
    renameSync(join(rootfs, "x"), join(rootfs, "y"));
    writeFileSync(join(rootfs, "x"), ""); // empty, like the stub, but not kiln's
    await targets.cleanup();
    expect(readdirSync(rootfs).sort()).toEqual(["x", "y"]);
  });
});
