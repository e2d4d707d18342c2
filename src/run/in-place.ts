// What a RUN gets when nothing can be mounted (plain-chroot): the /etc files written in place
// (the original content restored after the step; a change to the read-only ones is reported), /dev nodes made with mknod, the RUN's mounts as
// private copies in their (missing) targets (an agent socket: a proxy listening there), and kiln's static busybox in a hidden stub directory.
// Everything is undone after the step, and touched then only while it is still the object kiln
// made or wrote (same dev/ino, resolved again inside the rootfs), so a step cannot steer it.
import { lstatSync } from "node:fs";
import { chmod, chown, copyFile, link, lstat, mkdir, mkdtemp, readFile, rm, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { KilnError } from "../errors.js";
import { resolveInRoot } from "../snapshot/confine.js";
import { copyTreeNoFollow } from "../snapshot/copy-tree.js";
import { runQuiet } from "./output.js";
import type { MountTargets } from "./sandbox-files.js";
import type { RunMount } from "./types.js";
import { listenAgentProxy, type AgentProxy } from "./ssh-agent.js";

/** The stub directory (in-container path) that holds kiln's busybox during a plain-chroot step. */
export const STUB_DIR = "/.kiln-run";

/** Paths (relative, as layer excludes) a plain-chroot step's own files occupy: never in a layer. */
export const IN_PLACE_EXCLUDES = ["etc/hosts", "etc/resolv.conf", "dev", STUB_DIR.slice(1)];

const DEV_NODES: Array<[string, number, number]> = [["null", 1, 3], ["zero", 1, 5], ["full", 1, 7], ["random", 1, 8], ["urandom", 1, 9], ["tty", 5, 0]];

interface Undo {
  host: string;
  dev: number;
  ino: number;
  run: () => Promise<void>;
}

function same(host: string, u: Undo): boolean {
  const st = lstatSync(host, { throwIfNoEntry: false });
  return st !== undefined && st.dev === u.dev && st.ino === u.ino;
}

export class InPlace {
  private readonly undo: Undo[] = [];
  private readonly proxies: AgentProxy[] = [];
  private readonly readonlyFiles: Array<{ path: string; host: string; content: string; dev: number; ino: number }> = [];
  /** What could not be provided (e.g. "mknod refused"), for one warning. */
  readonly notes: string[] = [];

  constructor(
    private readonly rootfs: string,
    private readonly targets: MountTargets,
  ) {}

  private record(host: string, run: () => Promise<void>): void {
    const st = lstatSync(host);
    this.undo.push({ host, dev: st.dev, ino: st.ino, run });
  }

  /** Copy the host's static busybox into the stub directory; returns its in-container path. */
  async stubBusybox(busybox: string): Promise<string> {
    const dir = await this.targets.ensure(STUB_DIR, "dir");
    await chmod(dir, 0o755);
    const host = join(dir, "busybox");
    await copyFile(busybox, host);
    await chmod(host, 0o755);
    this.record(host, () => unlink(host));
    return `${STUB_DIR}/busybox`;
  }

  /** /dev with null, zero, full, random, urandom and tty made by mknod (where it is permitted). */
  async devNodes(): Promise<void> {
    const dev = await this.targets.ensure("/dev", "dir");
    const before = await stat(dev);
    // recorded first, so it is undone after the nodes are removed
    this.record(dev, () => utimes(dev, before.atime, before.mtime));
    for (const [name, major, minor] of DEV_NODES) {
      const host = join(dev, name);
      if (lstatSync(host, { throwIfNoEntry: false })) continue;
      const r = await runQuiet("mknod", ["-m", "666", host, "c", String(major), String(minor)]);
      if (r.code !== 0) {
        this.notes.push(`/dev/${name} not created (mknod: ${r.stderr.trim().split("\n")[0] ?? "refused"})`);
        continue;
      }
      await chmod(host, 0o666);
      this.record(host, () => unlink(host));
    }
  }

  /**
   * Write `content` at in-container `path` for the step; afterwards the original comes back.
   * `readonly`: the step must not change it (see readOnlyWritten()).
   */
  async file(path: string, content: string, options: { readonly?: boolean } = {}): Promise<void> {
    const host = await resolveInRoot(this.rootfs, path, { followFinal: true });
    const st = lstatSync(host, { throwIfNoEntry: false });
    if (st && !st.isFile()) return; // a directory or device there: leave the image's object alone
    const guard = (): void => {
      if (!options.readonly) return;
      const now = lstatSync(host);
      this.readonlyFiles.push({ path, host, content, dev: now.dev, ino: now.ino });
    };
    if (!st) {
      await this.targets.ensure(path, "file");
      await writeFile(host, content);
      await chmod(host, 0o644);
      guard();
      // emptied again afterwards, so the stub clean-up removes it
      this.record(host, () => writeFile(host, ""));
      return;
    }
    const original = await readFile(host);
    await writeFile(host, content);
    guard();
    this.record(host, async () => {
      await writeFile(host, original);
      await chmod(host, st.mode & 0o7777);
      await utimes(host, st.atime, st.mtime);
    });
  }

  /**
   * A RUN mount without mount(2): a private copy of its source (or an empty directory for tmpfs)
   * made as its target, which must not exist in the image; removed after the step, and the
   * parent's times restored.
   */
  async mount(m: RunMount): Promise<void> {
    const label = m.label ?? `the ${m.target} mount`;
    const resolved = await resolveInRoot(this.rootfs, m.target, { followFinal: true });
    if (lstatSync(resolved, { throwIfNoEntry: false })) {
      throw new KilnError("RUN_MOUNT_INVALID", `${label}: isolation "plain-chroot" cannot mount over ${m.target}, which exists in the image (no mount(2) here); use a target that does not exist`);
    }
    const source = m.type === "bind" ? (m.source as string) : undefined;
    // the target's parent, resolved inside the rootfs (created as stubs when missing)
    const parent = await this.targets.ensure(posix.dirname("/" + posix.relative(this.rootfs, resolved)), "dir");
    const host = join(parent, posix.basename(resolved));
    const before = await stat(parent);
    if (m.type === "secret") {
      // no mount(2): the secret is a plain file in the rootfs for the step (see the README)
      await writeFile(host, m.data ?? Buffer.alloc(0), { mode: 0o600, flag: "wx" });
      await chown(host, m.uid ?? 0, m.gid ?? 0);
      await chmod(host, m.mode ?? 0o400);
    } else if (source === undefined) await mkdir(host, { mode: 0o1777 });
    else if ((await lstat(source)).isSocket()) {
      // an agent socket (RUN --mount=type=ssh) cannot be copied: kiln listens at the target itself
      const st = await lstat(source);
      const owner = { mode: st.mode & 0o777, uid: st.uid, gid: st.gid };
      // listening on a private path and hard-linking it in: closing unlinks only the private path
      // (the target is removed by the guarded undo below, never through a path the step may have changed)
      const priv = await mkdtemp(join(dirname(this.rootfs), ".kiln-ssh-")).catch(() => undefined);
      const proxy = priv ? await listenAgentProxy(join(priv, "s"), source, owner).catch(() => undefined) : undefined;
      if (proxy && (await link(proxy.path, host).then(() => true, () => false))) {
        this.proxies.push({ path: proxy.path, close: async () => {
          await proxy.close();
          await rm(priv as string, { recursive: true, force: true });
        } });
      } else {
        if (proxy) await proxy.close();
        if (priv) await rm(priv, { recursive: true, force: true });
        this.proxies.push(await listenAgentProxy(host, source, owner, false));
      }
    } else if ((await lstat(source)).isDirectory()) await copyTreeNoFollow(source, host);
    else await copyFile(source, host);
    if (m.type === "tmpfs") await chmod(host, 0o1777);
    const parentId = lstatSync(parent);
    this.record(host, async () => {
      await rm(host, { recursive: true, force: true });
      const now = lstatSync(parent, { throwIfNoEntry: false });
      if (now && now.dev === parentId.dev && now.ino === parentId.ino) await utimes(parent, before.atime, before.mtime);
    });
  }

  /** In-container paths placed with `readonly` that the step replaced, removed or changed. */
  async readOnlyWritten(): Promise<string[]> {
    const out: string[] = [];
    for (const f of this.readonlyFiles) {
      const st = lstatSync(f.host, { throwIfNoEntry: false });
      const same = st?.isFile() && st.dev === f.dev && st.ino === f.ino && (await readFile(f.host, "utf8")) === f.content;
      if (!same) out.push(f.path);
    }
    return out;
  }

  /** Undo everything, newest first; objects a step replaced are left as the step left them. */
  async cleanup(): Promise<void> {
    for (const p of this.proxies.splice(0)) await p.close().catch(() => undefined);
    while (this.undo.length > 0) {
      const u = this.undo.pop() as Undo;
      if (same(u.host, u)) await u.run().catch(() => undefined);
    }
  }
}
