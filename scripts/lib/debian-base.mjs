// Shared by the benchmarks: a Debian minbase root file system made with debootstrap from apt's
// configured mirror (kept in a caller-chosen directory and reused when already there), and its
// import as a kiln base image — an OCI layout built by kiln from `FROM scratch` + `COPY rootfs/ /`
// (device nodes and /proc, /sys content left out), usable as
// `--build-context base=oci-layout://<layout>:<tag>` with `FROM base`.
//
//   import { aptMirror, ensureDebianRootfs, importDebianBase } from "./lib/debian-base.mjs";
//
// Needs root (debootstrap) and the compiled kiln CLI (bin/kiln). Errors are thrown as Error with
// a one-line message; callers print it.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

/** One line from a child's output, for error messages. */
function tail(r, n = 3) {
  return `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").slice(-n).join(" | ");
}

/**
 * The Debian archive URI apt is configured with (first `URIs:` of a deb822 .sources file or first
 * `deb` line ending in /debian), else http://deb.debian.org/debian.
 */
export function aptMirror() {
  const files = ["/etc/apt/sources.list"];
  const d = "/etc/apt/sources.list.d";
  if (existsSync(d)) for (const f of readdirSync(d).sort()) if (/\.(list|sources)$/.test(f)) files.push(join(d, f));
  for (const f of files) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, "utf8");
    const m = text.match(/^\s*URIs:\s*(\S+\/debian)\s*$/m) ?? text.match(/^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+/m);
    if (m) return m[1];
  }
  return "http://deb.debian.org/debian";
}

/** True when `dir` holds a finished debootstrap tree (a shell is there). */
export function isDebianRootfs(dir) {
  return existsSync(join(dir, "bin", "sh")) || existsSync(join(dir, "usr", "bin", "sh"));
}

/** Number of entries below `root` (directories walked, symlinks not followed). */
export function countEntries(root) {
  let n = 0;
  const stack = [root];
  while (stack.length) {
    const d = stack.pop();
    for (const e of readdirSync(d, { withFileTypes: true })) {
      n++;
      if (e.isDirectory()) stack.push(join(d, e.name));
    }
  }
  return n;
}

/**
 * A `debootstrap --variant=minbase` tree of `suite` in `dir`: reused when `dir` already holds one,
 * else made in a sibling temp directory and renamed into place when complete (an interrupted run
 * never leaves a half tree that a later run would reuse). Returns { rootfs, made, seconds }.
 */
export function ensureDebianRootfs({ dir, suite = "bookworm", mirror = aptMirror(), log = () => {} }) {
  const rootfs = resolve(dir);
  if (isDebianRootfs(rootfs)) return { rootfs, made: false, seconds: 0 };
  if (existsSync(rootfs) && readdirSync(rootfs).length > 0) {
    throw new Error(`${rootfs} exists but is not a debootstrap tree (no /bin/sh): remove it or pick another directory`);
  }
  if (spawnSync("sh", ["-c", "command -v debootstrap"]).status !== 0) throw new Error("debootstrap is not installed (apt-get install debootstrap)");
  if (process.getuid?.() !== 0) throw new Error("debootstrap needs root");
  mkdirSync(dirname(rootfs), { recursive: true });
  const partial = join(dirname(rootfs), `.${basename(rootfs)}.partial-${process.pid}`);
  spawnSync("rm", ["-rf", partial]);
  log(`debootstrap --variant=minbase ${suite} ${rootfs} ${mirror} ...`);
  const t0 = performance.now();
  const r = spawnSync("debootstrap", ["--variant=minbase", suite, partial, mirror], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    spawnSync("rm", ["-rf", partial]);
    throw new Error(`debootstrap failed: ${tail(r)}`);
  }
  if (existsSync(rootfs)) spawnSync("rmdir", [rootfs]); // an empty directory the caller made
  renameSync(partial, rootfs);
  const seconds = (performance.now() - t0) / 1000;
  log(`  done in ${seconds.toFixed(0)} s`);
  return { rootfs, made: true, seconds };
}

/**
 * Imports `rootfs` as a kiln base image: builds `FROM scratch` + `COPY rootfs/ /` + CMD bash with
 * the kiln CLI `kilnBin` into the OCI layout `layout` tagged `tag`, using `workDir` for the
 * temporary context (a copy of the tree, removed afterwards) and its own cache dir (removed too,
 * so the caller's stores stay cold). Returns { layout, tag, ref, seconds } where ref is the
 * `oci-layout://...` value for --build-context.
 */
export function importDebianBase({ rootfs, layout, kilnBin, workDir, tag = "latest", env = {} }) {
  const ctx = join(workDir, `debian-base-context-${process.pid}`);
  const cacheDir = join(workDir, `debian-base-cache-${process.pid}`);
  spawnSync("rm", ["-rf", ctx, cacheDir]);
  mkdirSync(ctx, { recursive: true });
  try {
    const cp = spawnSync("cp", ["-a", rootfs, join(ctx, "rootfs")], { encoding: "utf8" });
    if (cp.status !== 0) throw new Error(`copying ${rootfs} failed: ${tail(cp)}`);
    writeFileSync(join(ctx, "Dockerfile"), 'FROM scratch\nCOPY rootfs/ /\nCMD ["/bin/bash"]\n');
    writeFileSync(join(ctx, ".dockerignore"), "rootfs/dev/*\nrootfs/proc/*\nrootfs/sys/*\n");
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [kilnBin, "build", "--progress", "quiet", "--cache-dir", cacheDir, "-o", `type=oci,dest=${layout}`, "-t", `base:${tag}`, ctx], {
      encoding: "utf8",
      env: { ...process.env, ...env },
      maxBuffer: 64 << 20,
    });
    const seconds = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`kiln build of the Debian base failed (exit ${r.status}): ${tail(r)}`);
    return { layout, tag, ref: `oci-layout://${layout}:${tag}`, seconds };
  } finally {
    spawnSync("rm", ["-rf", ctx, cacheDir]);
  }
}
