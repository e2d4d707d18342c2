// The resources one build holds across its stages: its temporary root (removed with the build),
// the root filesystems it creates (disposed with it), the RUN runner the preflight chose, step
// numbering, the layers identical COPY/ADD steps of several platforms share (made once), and
// clean-up of everything a killed build left behind. The RUN backends and the
// snapshotters come in through EngineBackends: the real ones by default, fakes in tests of the
// engine (test/engine/engine.test.ts).
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { createRootFS, resolveSnapshotter, type DirRootFSOptions, type DisposeOptions, type RootFS, type Snapshotter } from "../snapshot/rootfs.js";
import { chooseRunner, type Isolation, type Runner } from "../run/index.js";
import type { EngineConfig } from "./config.js";
import type { Layer } from "../image/image.js";

/** What RUN steps run with and in: the isolation backends and the snapshotters. */
export interface EngineBackends {
  /** Probe and choose the RUN isolation (a mode that cannot work is a one-line KilnError). */
  chooseRunner(isolation: Isolation, options: { workDir: string }): Promise<{ runner: Runner; isolation: string; why: string }>;
  /** Fails when the wanted snapshotter cannot work here (checked before any work). */
  checkSnapshotter(cacheDir: string, wanted: Snapshotter): Promise<void>;
  createRootFS(cacheDir: string, options: DirRootFSOptions & { snapshotter: Snapshotter }): Promise<RootFS>;
}

export const DEFAULT_BACKENDS: EngineBackends = {
  chooseRunner,
  checkSnapshotter: async (cacheDir, wanted) => {
    await resolveSnapshotter(cacheDir, wanted);
  },
  createRootFS,
};

export class BuildSession {
  private stepCounter = 0;
  private readonly disposables: Array<(options: DisposeOptions) => Promise<void>> = [];
  private runnerPromise?: Promise<Runner>;
  private tmp: Promise<string> | undefined;
  private chosen?: string;
  private readonly layers = new Map<string, Promise<Layer | undefined>>();

  constructor(
    private readonly config: EngineConfig,
    private readonly backends: EngineBackends,
  ) {
    // Made at once: a build's temporary root exists for as long as the build runs.
    this.tmp = (async () => {
      const base = join(config.cacheDir, "tmp");
      await mkdir(base, { recursive: true });
      return mkdtemp(join(base, `build-${process.pid}-`));
    })();
    this.tmp.catch(() => undefined); // surfaces on first use
  }

  /** The isolation the preflight chose for RUN (once runner() resolved). */
  get isolation(): string | undefined {
    return this.chosen;
  }

  nextStepId(): number {
    return ++this.stepCounter;
  }

  /** A fresh directory under the build's temporary root (`<cache>/tmp/build-<pid>-*`). */
  async tmpDir(prefix: string): Promise<string> {
    if (!this.tmp) throw new KilnError("INTERNAL", "internal: the build session is disposed");
    return mkdtemp(join(await this.tmp, prefix));
  }

  /**
   * The layer for the content key `key`: made once per build by the first step asking (`make`),
   * the others wait for it (identical COPY/ADD steps of several platforms; undefined: no layer).
   */
  sharedLayer(key: string, make: () => Promise<Layer | undefined>): Promise<Layer | undefined> {
    let p = this.layers.get(key);
    if (!p) {
      p = make();
      this.layers.set(key, p);
      p.catch(() => this.layers.delete(key));
    }
    return p;
  }

  /** Isolation and snapshotter problems surface here, before any work. */
  async preflight(): Promise<void> {
    await this.runner();
    await this.backends.checkSnapshotter(this.config.cacheDir, this.config.snapshotter);
  }

  async newRootFS(): Promise<RootFS> {
    // Without namespaces nothing (no nodev mount) would stop a RUN from opening device nodes
    // from layers: keep them in the layer data only, on the dir snapshotter (overlay needs mount).
    const noMounts = this.chosen === "plain-chroot" || this.chosen === "proot";
    const snapshotter = this.config.snapshotter;
    const rootfs = await this.backends.createRootFS(this.config.cacheDir, {
      snapshotter: noMounts && snapshotter === "auto" ? "dir" : snapshotter,
      ...(noMounts ? { deviceNodes: "skip" as const } : {}),
      onWarning: (message) => this.config.emit({ type: "warning", message }),
    });
    this.disposables.push((o) => rootfs.dispose(o));
    return rootfs;
  }

  runner(): Promise<Runner> {
    this.runnerPromise ??= this.backends.chooseRunner(this.config.isolation, { workDir: join(this.config.cacheDir, "run") }).then((c) => {
      this.chosen = c.isolation;
      this.config.emit({ type: "info", message: `isolation: ${c.isolation} (${c.why})` });
      return c.runner;
    });
    return this.runnerPromise;
  }

  /**
   * Remove every temporary tree, rootfs and mount this build made (the temporary root last).
   * `background`: root filesystems are removed by a detached process (a build that succeeded).
   */
  async dispose(options: DisposeOptions = {}): Promise<void> {
    const errors: unknown[] = [];
    const tmp = this.tmp;
    this.tmp = undefined;
    if (tmp) {
      this.disposables.unshift(async () => {
        const dir = await tmp.catch(() => undefined);
        if (dir) await rm(dir, { recursive: true, force: true });
      });
    }
    for (const d of this.disposables.reverse()) {
      try {
        await d(options);
      } catch (err) {
        errors.push(err);
      }
    }
    this.disposables.length = 0;
    if (errors.length > 0) this.config.emit({ type: "warning", message: `clean-up: ${String(errors[0])}` });
  }
}

/** Remove `tmp/build-<pid>-*` directories whose build process is gone (killed with SIGKILL). */
export async function cleanupStaleTemp(cacheDir: string): Promise<void> {
  const base = join(cacheDir, "tmp");
  const names = await readdir(base).catch(() => [] as string[]);
  for (const name of names) {
    const m = /^build-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === "EPERM";
    }
    if (!alive) await rm(join(base, name), { recursive: true, force: true }).catch(() => undefined);
  }
}
