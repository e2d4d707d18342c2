// The busybox base image for RUN tests, built by kiln itself with no network: Debian's static
// /bin/busybox plus testdata/conformance/_base (Dockerfile, /etc/passwd, /etc/group with root,
// app 1000:1000 and nobody) written as an OCI layout tagged "latest". Built once per test process;
// call releaseBusyboxBase() from afterAll to remove it. vitest's workers may end without an
// "exit" event, so each base also records its process id and the next build removes bases whose
// process is gone.
import { rmSync } from "node:fs";
import { afterAll, beforeAll } from "vitest";
import { access, copyFile, cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expectBuilt, kiln, REPO_ROOT } from "./kiln.js";

/** Debian busybox-static's binary (apt-get install busybox-static). */
export const BUSYBOX_BINARY = "/bin/busybox";

export interface BusyboxBase {
  /** Absolute path of the OCI layout directory. */
  layout: string;
  /** Its tag inside the layout (org.opencontainers.image.ref.name). */
  tag: string;
  /** Manifest digest. */
  digest: string;
  /** `--build-context` value naming it: `oci-layout:///abs/layout:latest`. */
  buildContext: string;
}

let cached: Promise<BusyboxBase> | undefined;
let workDir: string | undefined;

const PREFIX = "kiln-busybox-base-";
const OWNER_FILE = "owner.pid";

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes bases left behind by test processes that have exited. */
async function removeOrphans(): Promise<void> {
  const root = tmpdir();
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(root, name);
    const pid = Number((await readFile(join(dir, OWNER_FILE), "utf8").catch(() => "")).trim());
    if (Number.isInteger(pid) && pid > 0 && !processAlive(pid)) await rm(dir, { recursive: true, force: true });
  }
}

async function buildBase(): Promise<BusyboxBase> {
  try {
    await access(BUSYBOX_BINARY);
  } catch {
    throw new Error(`${BUSYBOX_BINARY} is missing: install Debian's busybox-static`);
  }
  await removeOrphans();
  const dir = await mkdtemp(join(tmpdir(), PREFIX));
  await writeFile(join(dir, OWNER_FILE), `${process.pid}\n`);
  workDir = dir;
  process.once("exit", removeWorkDir);
  const ctx = join(dir, "context");
  await cp(join(REPO_ROOT, "testdata", "conformance", "_base"), ctx, { recursive: true });
  await copyFile(BUSYBOX_BINARY, join(ctx, "busybox"));
  const layout = join(dir, "layout");
  const r = await kiln(["build", "--progress", "quiet", "--cache-dir", join(dir, "cache"), "-o", `type=oci,dest=${layout}`, "-t", "base:latest", ctx]);
  const digest = expectBuilt(r);
  return { layout, tag: "latest", digest, buildContext: `oci-layout://${layout}:latest` };
}

function removeWorkDir(): void {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
}

/** The busybox base layout, built on first use and shared by every caller in this process. */
export function busyboxBase(): Promise<BusyboxBase> {
  cached ??= buildBase().catch((e: unknown) => {
    cached = undefined;
    throw e;
  });
  return cached;
}

/** Removes the base built by busyboxBase() in this process (the next call builds it again). */
export async function releaseBusyboxBase(): Promise<void> {
  const pending = cached;
  cached = undefined;
  if (pending) await pending.catch(() => undefined);
  removeWorkDir();
}

/**
 * For a test file: registers beforeAll/afterAll that build (or reuse) the busybox base and
 * release it, and returns a getter for it.
 */
export function useBusyboxBase(): () => BusyboxBase {
  let base: BusyboxBase | undefined;
  beforeAll(async () => {
    base = await busyboxBase();
  });
  afterAll(() => releaseBusyboxBase());
  return () => {
    if (!base) throw new Error("the busybox base is only available inside tests");
    return base;
  };
}
