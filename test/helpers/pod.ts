// The simulated pod for test/pod/: kiln's own image (scripts/lib/kiln-image.mjs, built once per
// source hash under $TMPDIR/kiln-pod-cache and loaded into podman once), the Debian minbase base
// layout (made once there too), Docker's default seccomp profile (scripts/lib/pod-seccomp.mjs),
// and `podman run` with a pod's restrictions (scripts/lib/pod.mjs: Docker's 14 default
// capabilities or a uid 1000 variant, that profile, runc, no --privileged, no --userns). Builds of more than one test process share the cache
// directory under a lock. Nothing here skips: when podman cannot run a container, the first
// caller throws with podman's reason.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { chmod, chown, mkdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGunzip } from "node:zlib";
import * as tar from "tar-stream";
import { run, type RunResult } from "./kiln.js";

// plain JavaScript modules shared with scripts/build-image.mjs and scripts/bench-pod.mjs
import { buildKilnImage, debianBase } from "../../scripts/lib/kiln-image.mjs";
import { podSeccompProfile } from "../../scripts/lib/pod-seccomp.mjs";
import { COMMON_ARGS, DOCKER_DEFAULT_CAPS, loadImage, lostExitCode, variantArgs } from "../../scripts/lib/pod.mjs";

/** Where the image, the Debian rootfs and its layout are kept between runs ($KILN_POD_CACHE to move it). */
export const POD_CACHE = process.env.KILN_POD_CACHE ?? join(tmpdir(), "kiln-pod-cache");

export { DOCKER_DEFAULT_CAPS };

/** The pod variants (scripts/lib/pod.mjs explains each one's podman flags). */
export type PodVariant = "root" | "user1000" | "user1000-nocaps";

export interface PodImage {
  /** podman image id (the config digest's hex). */
  id: string;
  /** Manifest digest in the OCI layout. */
  digest: string;
  layout: string;
  dockerArchive: string;
  compressed: number;
  uncompressed: number;
}

export interface DebianBase {
  /** The OCI layout directory (tag latest), readable by any uid. */
  layout: string;
  /** `--build-context` value on the host. */
  ref: string;
  /** The debootstrap root file system the layout was imported from. */
  rootfs: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `fn` holding the cache directory's lock (a directory holding the owner's pid): another
 * test process waits; a lock whose process is gone is taken over.
 */
async function locked<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(POD_CACHE, { recursive: true });
  const lock = join(POD_CACHE, "cache.lock");
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), `${process.pid}\n`);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let pid = 0;
      try {
        pid = Number(readFileSync(join(lock, "pid"), "utf8").trim());
      } catch {
        // being created or removed: look again
      }
      if (pid > 0 && !alive(pid)) rmSync(lock, { recursive: true, force: true });
      else await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

let image: Promise<PodImage> | undefined;

/** kiln's image, built (or reused by source hash) and loaded into podman. */
export function podImage(): Promise<PodImage> {
  image ??= locked(async () => {
    const img = (await buildKilnImage({ workRoot: POD_CACHE })) as { layout: string; dockerArchive: string; digest: string; compressed: number; uncompressed: number };
    const id = loadImage(img) as string;
    return { id, digest: img.digest, layout: img.layout, dockerArchive: img.dockerArchive, compressed: img.compressed, uncompressed: img.uncompressed };
  });
  return image;
}

let debian: Promise<DebianBase> | undefined;

/** The Debian 12 minbase (debootstrap) as a base layout, made once per cache directory. */
export function podDebianBase(): Promise<DebianBase> {
  debian ??= locked(async () => {
    const b = debianBase({ workRoot: POD_CACHE }) as { layout: string; ref: string; rootfs: string };
    spawnSync("chmod", ["-R", "a+rX", b.layout]);
    return { layout: b.layout, ref: b.ref, rootfs: b.rootfs };
  });
  return debian;
}

/** Writes the pod's seccomp profile into `dir` and returns its path (and which profile it is). */
export async function writeSeccomp(dir: string, opts: { ptrace?: boolean; prefer?: "shared" | "generated" } = {}): Promise<{ path: string; source: string }> {
  const p = podSeccompProfile(opts) as { json: string; source: string };
  const path = join(dir, `seccomp-${p.source}${opts.ptrace === false ? "-noptrace" : ""}.json`);
  await writeFile(path, p.json);
  await chmod(path, 0o644);
  return { path, source: p.source };
}

export interface PodRun {
  variant: PodVariant;
  seccomp: string;
  /** host path -> container path (":ro" suffix on the container path for read-only). */
  mounts?: Record<string, string>;
  /** Run this instead of the entrypoint (kiln): argv[0] is the program. */
  entrypoint?: string;
  env?: Record<string, string>;
  /** --network host (the Debian mirror) */
  hostNetwork?: boolean;
}

/** `podman run --rm` of kiln's image as the pod `p` describes, with `args` after the image. */
export async function podRun(p: PodRun, args: string[]): Promise<RunResult> {
  const img = await podImage();
  const argv = ["run", "--rm", ...COMMON_ARGS, "--security-opt", `seccomp=${p.seccomp}`, ...(variantArgs(p.variant) as string[])];
  if (p.hostNetwork) argv.push("--network", "host");
  for (const [host, ctr] of Object.entries(p.mounts ?? {})) argv.push("-v", `${host}:${ctr}`);
  for (const [k, v] of Object.entries(p.env ?? {})) argv.push("-e", `${k}=${v}`);
  if (p.entrypoint) argv.push("--entrypoint", p.entrypoint);
  // podman 4.3 under load sometimes loses a --rm container's exit code: run once more (pod.mjs)
  for (let attempt = 1; ; attempt++) {
    const r = await run("podman", [...argv, img.id, ...args]);
    if (attempt >= 2 || !lostExitCode(r.code, r.stderr)) return r;
  }
}

/** A directory the pod's user can write (owned by 1000 for the uid 1000 variants). */
export async function podWritableDir(dir: string, variant: PodVariant): Promise<string> {
  await mkdir(dir, { recursive: true });
  if (variant !== "root") await chown(dir, 1000, 0);
  await chmod(dir, 0o755);
  return dir;
}

/** One layer entry with what an image records for it (timestamps aside) and a content hash. */
export interface LayerEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkname?: string;
  sha256?: string;
}

/** Every entry of a gzipped layer blob, in order, with file contents hashed (tar-stream, not kiln). */
export function layerEntries(blobPath: string): Promise<LayerEntry[]> {
  const out: LayerEntry[] = [];
  const extract = tar.extract();
  return new Promise((resolve, reject) => {
    extract.on("entry", (h, stream, next) => {
      const hash = createHash("sha256");
      stream.on("data", (b: Buffer) => hash.update(b));
      stream.on("end", () => {
        const type = h.type ?? "file";
        out.push({
          name: h.name, type, mode: h.mode ?? 0, uid: h.uid ?? 0, gid: h.gid ?? 0, size: h.size ?? 0,
          ...(h.linkname ? { linkname: h.linkname } : {}),
          ...(type === "file" ? { sha256: hash.digest("hex") } : {}),
        });
        next();
      });
    });
    extract.on("finish", () => resolve(out));
    extract.on("error", reject);
    createReadStream(blobPath).pipe(createGunzip()).on("error", reject).pipe(extract);
  });
}

/** The manifest digest of `tag` in a layout and its layers' entries. */
export async function layoutLayers(layout: string): Promise<{ digest: string; layers: LayerEntry[][] }> {
  const blob = (d: string) => join(layout, "blobs", "sha256", d.slice("sha256:".length));
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
  const digest = index.manifests[0]!.digest;
  const m = JSON.parse(await readFile(blob(digest), "utf8")) as { layers: Array<{ digest: string }> };
  const layers: LayerEntry[][] = [];
  for (const l of m.layers) layers.push(await layerEntries(blob(l.digest)));
  return { digest, layers };
}

/** Writes a build context (Dockerfile + files) readable by any uid. */
export async function writeContext(dir: string, files: Record<string, string | Buffer>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  spawnSync("chmod", ["-R", "a+rX", dir]);
  return dir;
}
