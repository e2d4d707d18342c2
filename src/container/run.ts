// `kiln run` as a library call: resolve the image (store, layout or registry), choose the isolation
// as RUN does (the preflight's report kept for minutes in the cache dir: run/preflight-cache.ts), assemble its root filesystem the way RUN's is (the overlay
// snapshotter stacks the layers extracted once per diffID under <cache>/layers, so a second run
// extracts nothing; the writable upper is removed with the container), check what Docker checks
// before starting (user, working directory, the command), start the process with the image's
// ENV/WORKDIR/USER and Docker's ENTRYPOINT/CMD rules, forward signals (then SIGKILL after the stop
// timeout) and hand back its exit status. Nothing is kept afterwards: no mount, directory or process.
// Under the OCI runtime the overlay root is mounted in the runtime's own mount namespace (the
// checks read it through /proc/PID/root) and vanishes with it; its wrapper processes start while
// the image is resolved and its layers are stacked. Other runners get the root mounted here.
import { existsSync, statSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { join, posix, resolve } from "node:path";
import { KilnError, type KilnErrorCode } from "../errors.js";
import { resolveInRoot } from "../snapshot/confine.js";
import { cleanupStale, createRootFS, resolveSnapshotter, type RootFS, type RootFSLayer, type Snapshotter } from "../snapshot/rootfs.js";
import type { ImageConfig } from "../image/oci.js";
import { formatPlatform, hostPlatform, parsePlatform, platformMatches } from "../image/platform.js";
import type { RegistryOptions } from "../registry/options.js";
import { resolveImage, type PullPolicy } from "../images/resolve.js";
import { chooseRunner, resolveUser, type Isolation, type RunControl, type RunFeature, type RunIO, type RunMount, type RunSpec } from "../run/index.js";
import { overlayUnsupported, primeOverlayProbe } from "../snapshot/overlay.js";
import { cachedHostFact, cachedPreflight } from "../run/preflight-cache.js";
import { ensureEmulation, runsNatively } from "../run/emulation.js";
import { newHostname } from "../run/sandbox-files.js";
import { parseAddHost, resolveExtraHosts } from "../run/hosts.js";
import { capabilitySet } from "../run/caps.js";
import { containerArgv } from "./command.js";
import { envEntry, parseMount, parseVolume, readEnvFile } from "./flags.js";

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface ContainerOptions {
  /** A stored name, `oci-layout://DIR[:TAG]` or a registry reference. */
  image: string;
  /** Arguments after the image (replace CMD). */
  args?: string[];
  /** `--entrypoint` ("" clears the image's). */
  entrypoint?: string;
  /** `-e K=V` / `-e K`, in order (after the env files). */
  env?: string[];
  envFiles?: string[];
  workdir?: string;
  user?: string;
  /** `-v HOST:CTR[:ro]` and `--mount type=bind|tmpfs,...` specs, as given. */
  volumes?: string[];
  mounts?: string[];
  network?: "host" | "none";
  hostname?: string;
  /** `--add-host HOST:IP` values, as given. */
  addHosts?: string[];
  /** `--cap-add`/`--cap-drop` names (with or without CAP_, or ALL), on Docker's default set. */
  capAdd?: string[];
  capDrop?: string[];
  /** `--memory` in bytes and `--cpus`: cgroup limits (runners that can set them). */
  memoryBytes?: number;
  cpus?: number;
  /** `--init`: tini (the host's static build) as the container's pid 1 / subreaper. */
  init?: boolean;
  readOnly?: boolean;
  /** `-i`: the process reads kiln's stdin. */
  interactive?: boolean;
  /** `-t`: a pseudo-terminal. */
  tty?: boolean;
  isolation?: Isolation;
  snapshotter?: Snapshotter;
  pull?: PullPolicy;
  platform?: string;
  cacheDir: string;
  registry?: RegistryOptions;
  /** Seconds between a forwarded SIGTERM/SIGINT and SIGKILL (default 10, as docker stop). */
  stopTimeout?: number;
  /** Where the process's output goes when the runner cannot give it kiln's own (default: kiln's). */
  stdout?: (b: Buffer) => void;
  stderr?: (b: Buffer) => void;
  onWarning?: (message: string) => void;
  /** Aborts preparation, or kills the process (SIGKILL). */
  signal?: AbortSignal;
}

export interface ContainerHandle {
  /** The process's exit status (128+N when a signal N ended it); rejects with kiln's own errors. */
  readonly exit: Promise<number>;
  /** Forward a signal to the process; SIGTERM/SIGINT start the stop timeout, then SIGKILL. */
  signal(sig: NodeJS.Signals): void;
}

/** Start a container (see the header); the handle's `exit` settles when it is gone and cleaned up. */
export function runContainer(options: ContainerOptions): ContainerHandle {
  const kill = new AbortController();
  const outer = options.signal;
  const onOuter = (): void => kill.abort(outer?.reason);
  if (outer?.aborted) onOuter();
  else outer?.addEventListener("abort", onOuter, { once: true });
  let control: RunControl | undefined;
  let stopTimer: NodeJS.Timeout | undefined;
  const exit = start(options, kill.signal, (c) => (control = c)).finally(() => {
    outer?.removeEventListener("abort", onOuter);
    if (stopTimer) clearTimeout(stopTimer);
  });
  return {
    exit,
    signal(sig) {
      // before the process runs (or without a runner that can signal it) there is nothing to ask
      if (!control) {
        kill.abort(new KilnError("ABORTED", `interrupted by ${sig}`));
        return;
      }
      void control.kill(sig);
      if ((sig === "SIGTERM" || sig === "SIGINT") && !stopTimer) {
        stopTimer = setTimeout(() => kill.abort(new KilnError("ABORTED", `stop timeout after ${sig}`)), (options.stopTimeout ?? 10) * 1000);
        stopTimer.unref();
      }
    },
  };
}

async function start(o: ContainerOptions, signal: AbortSignal, onControl: (c: RunControl) => void): Promise<number> {
  const cacheDir = resolve(o.cacheDir);
  // what earlier runs left behind (their owners gone) goes beside this run: never this process's own
  const stale = cleanupStale(cacheDir).catch(() => undefined);
  try {
    return await startContainer(o, cacheDir, signal, onControl);
  } finally {
    await stale;
  }
}

/** What the image decides about the process (see start()): checked before anything is assembled. */
interface Prepared {
  name: string;
  cc: NonNullable<ImageConfig["config"]>;
  argv: string[];
  cwd: string;
  user: string;
  mounts: RunMount[];
  layers: RootFSLayer[];
  fail: (code: KilnErrorCode, msg: string) => never;
}

async function startContainer(o: ContainerOptions, cacheDir: string, signal: AbortSignal, onControl: (c: RunControl) => void): Promise<number> {
  const host = hostPlatform();
  const platform = o.platform ? parsePlatform(o.platform) : host;
  const extraHosts = resolveExtraHosts((o.addHosts ?? []).map(parseAddHost), o.network ?? "host");
  const capsGiven = (o.capAdd?.length ?? 0) + (o.capDrop?.length ?? 0) > 0;
  const capabilities = capsGiven ? capabilitySet(o.capAdd ?? [], o.capDrop ?? []) : undefined;
  // the preflight (a few probe processes unless remembered) runs while the image is resolved
  const choosing = cachedPreflight(cacheDir).then((report) => chooseRunner(o.isolation ?? "auto", { workDir: join(cacheDir, "run"), report }));
  choosing.catch(() => undefined); // observed below
  const overlayKnown = (o.snapshotter ?? "auto") !== "dir" ? rememberOverlayProbe(cacheDir) : Promise.resolve();
  overlayKnown.catch(() => undefined); // observed below
  // the image is resolved and read meanwhile (called off when kiln fails before it is needed)
  const prep = new AbortController();
  const preparing = prepareImage(o, cacheDir, platform, host, AbortSignal.any([signal, prep.signal]));
  preparing.catch(() => undefined); // observed below
  let assembling: Promise<Prepared> = preparing;
  let rootfs: RootFS | undefined;
  let disposing: Promise<void> | undefined;
  const dispose = (): Promise<void> => (disposing ??= rootfs ? rootfs.dispose() : Promise.resolve());
  try {
    return await startOn(await choosing);
  } catch (err) {
    prep.abort(err);
    throw err;
  } finally {
    await assembling.catch(() => undefined); // settled before the root is removed
    await dispose();
  }

  async function startOn(chosen: Awaited<typeof choosing>): Promise<number> {
    const runner = chosen.runner;
    const has = (f: RunFeature): boolean => runner.features?.has(f) ?? false;
    if ((o.interactive || o.tty) && !has("stdio")) throw new KilnError("FEATURE_UNSUPPORTED", `-i and -t need a runner that hands kiln's terminal over (--isolation oci or chroot); ${chosen.isolation} cannot`);
    if (capabilities && !has("capabilities")) throw new KilnError("FEATURE_UNSUPPORTED", `--cap-add/--cap-drop need --isolation oci or chroot; ${chosen.isolation} cannot set the process's capabilities`);
    const limits = o.memoryBytes !== undefined || o.cpus !== undefined;
    if (limits && !has("resources")) {
      throw new KilnError("FEATURE_UNSUPPORTED", `--memory/--cpus need cgroups, which are not available for isolation ${chosen.isolation}${chosen.isolation === "oci" ? " run rootless" : ""} (only --isolation oci as root sets them)`);
    }
    if (o.readOnly && !has("readonly-rootfs")) throw new KilnError("FEATURE_UNSUPPORTED", `--read-only needs --isolation oci or chroot; ${chosen.isolation} cannot mount the root read-only`);
    // Without namespaces (plain-chroot, proot) the rootfs must be a plain tree (no overlay, no device nodes).
    const noMounts = needsPlainTree(chosen.isolation);
    const wanted = o.snapshotter ?? "auto";
    await overlayKnown;
    const { snapshotter } = await resolveSnapshotter(cacheDir, noMounts && wanted === "auto" ? "dir" : wanted);

    // the image's checks and the root's layers, then the root file system itself
    assembling = preparing.then(async (p) => {
      rootfs = await assembleRootfs(cacheDir, snapshotter, noMounts, o, p.layers);
      return p;
    });
    // the process's lifetime and I/O first: a runner that mounts the root itself starts with them
    const io: RunIO = {
      signal,
      ...(has("signals") ? { onStart: onControl } : {}),
      // the root is unmounted and removed as soon as the process has ended, while the runner removes its bundle
      onExited: () => void dispose().catch(() => undefined), // awaited (and thrown) below
    };
    if (has("stdio") && !o.stdout) io.stdio = { stdin: !!o.interactive, tty: !!o.tty };
    else {
      io.stdout = o.stdout ?? ((b) => process.stdout.write(b));
      io.stderr = o.stderr ?? ((b) => process.stderr.write(b));
    }
    // what runs, checked against the root as the runner shows it (`dir`)
    const build = async (dir: string): Promise<RunSpec> => {
      const { cc, argv, cwd, user, mounts, fail } = await assembling;
      let resolvedUser;
      try {
        resolvedUser = await resolveUser(dir, user);
      } catch (err) {
        const m = /^unable to find (user|group) (.*): no matching entries in (passwd|group) file$/.exec((err as Error).message);
        fail("USER_UNKNOWN", m ? `${m[1]} ${JSON.stringify(m[2])} not found in /etc/${m[3]}` : (err as Error).message);
      }
      const hostname = o.hostname ?? newHostname();
      const env = await environment(o, cc.Env ?? [], hostname, resolvedUser!.home);
      await checkCommand(dir, argv[0]!, cwd, env.get("PATH") ?? DEFAULT_PATH, mounts, fail);
      const runMounts = [...mounts];
      const runArgv = [...argv];
      if (o.init) {
        // tini as pid 1 (oci) or as the subreaper of the command (-s: chroot's pid 1 is its setup shell)
        runMounts.push({ type: "bind", source: initBinary(), target: INIT_PATH, readonly: true, label: "--init" });
        runArgv.unshift(INIT_PATH, "-s", "--");
      }
      return {
        ...io,
        rootfs: dir,
        argv: runArgv,
        env: [...env].map(([k, v]) => `${k}=${v}`),
        cwd,
        user,
        resolvedUser: resolvedUser!,
        network: o.network ?? "host",
        hostname,
        ...(extraHosts.length > 0 ? { extraHosts } : {}),
        ...(capabilities ? { capabilities } : {}),
        ...(limits ? { resources: { ...(o.memoryBytes !== undefined ? { memoryBytes: o.memoryBytes } : {}), ...(o.cpus !== undefined ? { cpus: o.cpus } : {}) } } : {}),
        mounts: runMounts,
        // the container's root (and the mount points placed in it) goes with the container
        disposableRootfs: true,
        ...(o.readOnly ? { readonlyRootfs: true } : {}),
      };
    };
    // The overlay root is mounted by an OCI runner in its own namespace (it vanishes with the
    // container: nothing to unmount here), whose wrapper starts now, while the image is resolved
    // and its layers are stacked; other runners get it mounted here.
    if (runner.runOnRoot && snapshotter === "overlay" && !noMounts) {
      const root = assembling.then(() => rootfs!.takeMount!());
      root.catch(() => undefined); // observed by the runner
      return (await runner.runOnRoot(root, io, build)).exitCode;
    }
    await assembling;
    signal.throwIfAborted();
    await rootfs!.mount?.();
    return (await runner.run(await build(rootfs!.dir))).exitCode;
  }
}

/** The image resolved and read: what runs, as whom, where, with which mounts, on which layers. */
async function prepareImage(o: ContainerOptions, cacheDir: string, platform: ReturnType<typeof hostPlatform>, host: ReturnType<typeof hostPlatform>, signal: AbortSignal): Promise<Prepared> {
  const img = await resolveImage(o.image, { ...(o.registry ?? {}), cacheDir, platform, pull: o.pull ?? "missing", signal });
  const name = img.name;
  const fail = (code: KilnErrorCode, msg: string): never => {
    throw new KilnError(code, `${name}: ${msg}`);
  };
  const config = JSON.parse((await img.source.readBytes(img.source.config.digest)).toString("utf8")) as ImageConfig;
  // the image's own platform decides (a single-platform image needs no --platform); a foreign
  // one runs under qemu-user-static through binfmt_misc, as emulated RUN steps do
  const imagePlatform = config.os && config.architecture ? { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) } : platform;
  if (o.platform && !platformMatches(platform, imagePlatform)) fail("PLATFORM_MISMATCH", `the image is for ${formatPlatform(imagePlatform)}, not --platform ${formatPlatform(platform)}`);
  if (!runsNatively(imagePlatform, host)) {
    await ensureEmulation(imagePlatform, { purpose: `kiln run of ${name} (${formatPlatform(imagePlatform)})` });
  }
  const cc = config.config ?? {};
  const argv = containerArgv(cc, { args: o.args ?? [], ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}) }, name);
  const cwd = o.workdir ?? (cc.WorkingDir || "/");
  if (!cwd.startsWith("/")) fail("OPTION_INVALID", `the working directory ${JSON.stringify(cwd)} must be an absolute path`);
  const user = o.user ?? cc.User ?? "";
  const mounts: RunMount[] = [...(o.volumes ?? []).map(parseVolume), ...(o.mounts ?? []).map(parseMount)];
  for (const m of mounts) {
    if (m.type !== "bind") continue;
    const exists = await stat(m.source!).then(() => true, () => false);
    if (exists) continue;
    // as docker: -v creates a missing host directory, --mount refuses it
    if (m.label?.startsWith("-v ")) await mkdir(m.source!, { recursive: true });
    else fail("CONTAINER_MOUNT_INVALID", `${m.label}: the source ${m.source} does not exist`);
  }
  const layers = img.source.layers.map((l): RootFSLayer => {
    if (!l.diffID) fail("MANIFEST_INVALID", `layer ${l.digest} has no diff_id in the image config`);
    return { diffID: l.diffID!, digest: l.digest, origin: `image ${name}`, mediaType: l.mediaType, open: () => img.source.open(l.digest) };
  });
  return { name, cc, argv, cwd, user, mounts, layers, fail };
}

/** Where `--init` puts tini in the container (docker uses /sbin/docker-init; /dev is the container's own tmpfs). */
const INIT_PATH = "/dev/init";

/** The host's static tini (it must run in any image). */
function initBinary(): string {
  for (const p of ["/usr/bin/tini-static", "/usr/local/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/docker/docker-init"]) if (existsSync(p)) return p;
  throw new KilnError("HOST_TOOL_MISSING", "--init needs a static tini on the host (Debian package tini: /usr/bin/tini-static)");
}

/** Isolation modes without mount namespaces: their rootfs is a plain tree (no overlay, no device nodes). */
const needsPlainTree = (isolation: string): boolean => isolation === "plain-chroot" || isolation === "proot";

/** The overlay probe's answer (a test mount) remembered across runs, as the preflight is, made this process's (read while the image is resolved). */
async function rememberOverlayProbe(cacheDir: string): Promise<void> {
  const base = join(cacheDir, "rootfs");
  const answer = await cachedHostFact(cacheDir, `overlay:${base}`, () => overlayUnsupported(base), (v): v is string | null => v === null || typeof v === "string");
  primeOverlayProbe(base, answer);
}

/** The root filesystem: overlay of the extracted layers with a throw-away upper (dir where overlay cannot be used). */
async function assembleRootfs(cacheDir: string, snapshotter: "overlay" | "dir", noMounts: boolean, o: ContainerOptions, layers: RootFSLayer[]): Promise<RootFS> {
  const common = { ...(noMounts ? { deviceNodes: "skip" as const } : {}), ...(o.onWarning ? { onWarning: o.onWarning } : {}) };
  // no scratch file system: a container's writes are few, and the upper goes with the work directory
  // (overlay: mounted later, by the runner where it can: see startContainer())
  const rootfs = await createRootFS(cacheDir, { ...common, snapshotter, ...(snapshotter === "overlay" ? { scratch: false, lazyMount: true } : {}) });
  try {
    await rootfs.applyLayers(layers);
  } catch (err) {
    await rootfs.dispose();
    throw err;
  }
  return rootfs;
}

/** Docker's environment: HOSTNAME, TERM with -t, the image's Env, PATH and HOME when missing, then --env-file and -e. */
async function environment(o: ContainerOptions, imageEnv: string[], hostname: string, home: string | undefined): Promise<Map<string, string>> {
  const env = new Map<string, string>();
  env.set("HOSTNAME", hostname);
  if (o.tty) env.set("TERM", "xterm");
  for (const e of imageEnv) {
    const eq = e.indexOf("=");
    if (eq > 0) env.set(e.slice(0, eq), e.slice(eq + 1));
  }
  if (!env.has("PATH")) env.set("PATH", DEFAULT_PATH);
  for (const f of o.envFiles ?? []) for (const [k, v] of await readEnvFile(f, process.env)) env.set(k, v);
  for (const item of o.env ?? []) {
    const e = envEntry(item, process.env, "-e");
    if (e) env.set(e[0], e[1]);
  }
  if (!env.has("HOME")) env.set("HOME", home || "/");
  return env;
}

/** The command must exist in the image (as a path, or on PATH) unless a mount provides it. */
async function checkCommand(root: string, cmd: string, cwd: string, path: string, mounts: RunMount[], fail: (code: KilnErrorCode, m: string) => never): Promise<void> {
  const onMount = (p: string): boolean => mounts.some((m) => p === m.target || p.startsWith(`${m.target}/`));
  const executable = async (p: string): Promise<boolean> => {
    if (onMount(p)) return true;
    try {
      // (synchronous, as resolveInRoot's lookups: PATH is tried directory by directory)
      const st = statSync(await resolveInRoot(root, p, { followFinal: true }));
      return st.isFile() && (st.mode & 0o111) !== 0;
    } catch {
      return false;
    }
  };
  if (cmd.includes("/")) {
    const p = posix.resolve(cwd, cmd);
    if (!(await executable(p))) fail("CONTAINER_COMMAND_NOT_FOUND", `${JSON.stringify(cmd)}: no such executable file in the image`);
    return;
  }
  for (const dir of path.split(":")) {
    if (dir.startsWith("/") && (await executable(posix.join(dir, cmd)))) return;
  }
  fail("CONTAINER_COMMAND_NOT_FOUND", `executable ${JSON.stringify(cmd)} not found in $PATH (${path})`);
}
