// The busybox base image for RUN tests, built by kiln itself with no network: Debian's static
// /bin/busybox plus testdata/conformance/_base (Dockerfile, /etc/passwd, /etc/group with root,
// app 1000:1000 and nobody) written as an OCI layout tagged "latest". Built once per test process;
// call releaseBusyboxBase() from afterAll to remove it (vitest's workers may end without an
// "exit" event, so the exit hook is only a fallback).
import { rmSync } from "node:fs";
import { access, copyFile, cp, mkdtemp } from "node:fs/promises";
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

async function buildBase(): Promise<BusyboxBase> {
  try {
    await access(BUSYBOX_BINARY);
  } catch {
    throw new Error(`${BUSYBOX_BINARY} is missing: install Debian's busybox-static`);
  }
  const dir = await mkdtemp(join(tmpdir(), "kiln-busybox-base-"));
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
