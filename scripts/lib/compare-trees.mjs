// Shared by the differential comparisons (compare-buildah.mjs, compare-docker.mjs): walking an
// unpacked root filesystem into path -> entry (type, mode, owner, size, content sha256, link
// target, hard-link group, xattrs, mtime), comparing two such trees and two image configs into
// one-line differences ("PATH: FIELD kiln=X <oracle>=Y"), and the per-history-entry shape of an
// image (empty or layer). The oracle's name ("buildah", "docker") appears in every line, so the
// known-difference lines in a case.json match exactly.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, lstatSync, lutimesSync, readdirSync } from "node:fs";
import { lstat, open, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tarStream from "tar-stream";

/**
 * Mount stubs: a RUN's mount targets that the oracle may leave in its layers. buildah 1.28
 * (chroot isolation) creates /dev, /proc, /sys, /run directories and empty /etc/hosts,
 * /etc/resolv.conf, /etc/hostname files and commits them; Docker 20.10's BuildKit (v0.8) leaves
 * the /dev, /proc, /sys directories runc creates for the mounts in the RUN's layer. Newer
 * BuildKit removes such stubs after the RUN (moby/buildkit executor/stubs.go, MountStubsCleaner),
 * as kiln does, so a stub path present only in the oracle's image, and empty there, is not a
 * difference.
 */
export const MOUNT_STUBS = new Set(["dev", "proc", "sys", "run", "etc/hosts", "etc/resolv.conf", "etc/hostname", "run/.containerenv"]);
/** Parents an oracle creates for stubs when the base lacks them (only when empty apart from stubs). */
export const STUB_PARENTS = new Set(["etc"]);
/** Layer entries that are buildah 1.28's mount stubs (see MOUNT_STUBS). */
export const BUILDAH_LAYER_STUBS = new Set([...MOUNT_STUBS, ...STUB_PARENTS]);
/**
 * Layer entries that are Docker 20.10's mount stubs: the /dev, /proc, /sys directories runc makes
 * and /etc itself (its times change when runc places the hosts and resolv.conf mounts); never a
 * file below /etc, which a step may really write (e.g. /etc/hostname, which BuildKit does not mount).
 */
export const DOCKER_LAYER_STUBS = new Set(["dev", "proc", "sys", "etc"]);

function runCapture(cmd, args) {
  return new Promise((resolveRun) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out = [];
    child.stdout.on("data", (b) => out.push(b));
    child.stderr.resume();
    child.on("error", () => resolveRun(""));
    child.on("close", () => resolveRun(Buffer.concat(out).toString("utf8")));
  });
}

/** Paths of a layer tar, gzipped or not (names without "./" or trailing "/"), streamed. */
export async function layerPaths(file) {
  const names = [];
  const extract = tarStream.extract();
  extract.on("entry", (header, stream, next) => {
    names.push(header.name.replace(/^\.\//, "").replace(/\/+$/, ""));
    stream.on("end", next);
    stream.resume();
  });
  const head = Buffer.alloc(2);
  const fd = await open(file, "r");
  await fd.read(head, 0, 2, 0);
  await fd.close();
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  await (gz ? pipeline(createReadStream(file), createGunzip(), extract) : pipeline(createReadStream(file), extract));
  return names.filter((n) => n !== "" && n !== ".");
}

/**
 * One flag per history entry: "empty" (empty_layer, or a layer with nothing in it) or "layer".
 * `layerFiles` are the image's layer blobs in order. With `stubs` (the layer entries an oracle
 * leaves as mount stubs), a layer holding only those counts as empty: newer BuildKit drops stubs,
 * and drops empty layers, marking the history entry empty_layer. kiln's own empty layer tars
 * show as "empty-tar" (kiln should never write one).
 */
export async function historyShape(history, layerFiles, { stubs } = {}) {
  const stubsAreEmpty = stubs !== undefined;
  const shape = [];
  let li = 0;
  for (const h of history ?? []) {
    if (h.empty_layer) {
      shape.push("empty");
      continue;
    }
    const file = layerFiles[li++];
    if (!file) {
      shape.push("missing-layer");
      continue;
    }
    let names = await layerPaths(file);
    if (stubsAreEmpty) names = names.filter((n) => !stubs.has(n));
    shape.push(names.length === 0 ? (stubsAreEmpty ? "empty" : "empty-tar") : "layer");
  }
  if (li !== layerFiles.length) shape.push(`(${layerFiles.length - li} layers without history)`);
  return shape;
}

async function sha256File(path) {
  const h = createHash("sha256");
  await pipeline(createReadStream(path), h);
  return h.digest("hex");
}

/** getfattr's escaped names (\ooo octal bytes, \\) back to a string. */
function unescapeGetfattr(s) {
  const bytes = [];
  for (let i = 0; i < s.length; ) {
    if (s[i] === "\\" && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 4;
    } else if (s[i] === "\\" && s[i + 1] === "\\") {
      bytes.push(0x5c);
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i], "utf8"));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Every xattr below root (symlinks not followed): relative path -> { name: hexvalue }. */
async function readXattrs(root) {
  const stdout = await runCapture("getfattr", ["-R", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", root]);
  const map = new Map();
  let cur = null;
  for (const line of stdout.split("\n")) {
    if (line.startsWith("# file: ")) {
      const abs = unescapeGetfattr(line.slice(8));
      cur = abs === root ? "" : abs.slice(root.length + 1);
      map.set(cur, {});
    } else if (cur !== null && line.includes("=")) {
      const eq = line.indexOf("=");
      map.get(cur)[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  return map;
}

/** Walks an unpacked rootfs into path -> entry. */
export async function walk(root) {
  const tree = new Map();
  const inodes = new Map();
  const visit = async (rel) => {
    const abs = rel === "" ? root : join(root, rel);
    const st = await lstat(abs);
    const e = { mode: (st.mode & 0o7777).toString(8).padStart(4, "0"), uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
    if (st.isSymbolicLink()) Object.assign(e, { type: "symlink", target: await readlink(abs) });
    else if (st.isFile()) Object.assign(e, { type: "file", size: st.size, sha256: await sha256File(abs) });
    else if (st.isDirectory()) e.type = "dir";
    else if (st.isFIFO()) e.type = "fifo";
    else if (st.isCharacterDevice() || st.isBlockDevice()) Object.assign(e, { type: st.isCharacterDevice() ? "char" : "block", rdev: st.rdev });
    else e.type = "other";
    if (!st.isDirectory() && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      if (!inodes.has(key)) inodes.set(key, []);
      inodes.get(key).push(rel);
    }
    tree.set(rel, e);
    if (st.isDirectory()) for (const n of (await readdir(abs)).sort()) await visit(rel === "" ? n : `${rel}/${n}`);
  };
  await visit("");
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    for (const p of group) tree.get(p).hardlinks = group.filter((q) => q !== p).sort().join(",");
  }
  for (const [p, x] of await readXattrs(root)) {
    const e = tree.get(p);
    if (e && Object.keys(x).length) e.xattrs = Object.entries(x).sort().map(([k, v]) => `${k}=${v}`).join(" ");
  }
  return tree;
}

function isEmptyStub(tree, path) {
  const e = tree.get(path);
  if (!e) return false;
  if (e.type === "file") return e.size === 0;
  if (e.type !== "dir") return false;
  const prefix = `${path}/`;
  for (const p of tree.keys()) if (p.startsWith(prefix) && !(MOUNT_STUBS.has(p) && isEmptyStub(tree, p))) return false;
  return true;
}

function describe(e) {
  if (!e) return "absent";
  const parts = [e.type, e.mode, `${e.uid}:${e.gid}`];
  if (e.type === "file") parts.push(`${e.size}B`, e.sha256.slice(0, 12));
  if (e.target !== undefined) parts.push(`-> ${e.target}`);
  if (e.hardlinks) parts.push(`links=${e.hardlinks}`);
  if (e.xattrs) parts.push(`xattrs=${e.xattrs}`);
  return parts.join(" ");
}

const FIELDS = ["type", "mode", "uid", "gid", "size", "sha256", "target", "rdev", "hardlinks", "xattrs"];

/**
 * Differences between kiln's tree and the oracle's (`name`), one line each. An empty mount stub
 * only in the oracle's tree is skipped (see MOUNT_STUBS). mtimes are compared for non-directories
 * that predate the build (`buildStart`, seconds) in either image (base, context or `touch -d`
 * files); files both builders create during the run carry the build's wall-clock time, which
 * differs by design. Directory mtimes are not compared.
 */
export function compareTrees(kiln, other, buildStart, name) {
  const diffs = [];
  const paths = [...new Set([...kiln.keys(), ...other.keys()])].sort();
  const time = (s) => new Date(s * 1000).toISOString();
  for (const p of paths) {
    const k = kiln.get(p);
    const b = other.get(p);
    const shown = p === "" ? "/" : `/${p}`;
    if (!k && b) {
      if ((MOUNT_STUBS.has(p) || STUB_PARENTS.has(p)) && isEmptyStub(other, p)) continue;
      diffs.push(`${shown}: only in ${name} (${describe(b)})`);
      continue;
    }
    if (k && !b) {
      diffs.push(`${shown}: only in kiln (${describe(k)})`);
      continue;
    }
    const bad = FIELDS.filter((f) => (k[f] ?? null) !== (b[f] ?? null));
    if (k.type !== "dir" && Math.min(k.mtime, b.mtime) < buildStart - 2 && k.mtime !== b.mtime) bad.push("mtime");
    if (bad.length) {
      diffs.push(`${shown}: ${bad.map((f) => `${f} kiln=${f === "mtime" ? time(k.mtime) : k[f] ?? "-"} ${name}=${f === "mtime" ? time(b.mtime) : b[f] ?? "-"}`).join("; ")}`);
    }
  }
  return diffs;
}

function normalizeConfigValue(v) {
  if (v === undefined || v === null || v === "") return undefined;
  if (Array.isArray(v)) return v.length ? v : undefined;
  if (typeof v === "object") {
    const keys = Object.keys(v).sort();
    if (!keys.length) return undefined;
    return Object.fromEntries(keys.map((k) => [k, v[k]]));
  }
  return v;
}

/** The config fields compareConfigs checks unless told otherwise. */
export const BASIC_CONFIG_FIELDS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "StopSignal", "architecture", "os"];
/** Every field of the config Docker's builder sets. */
export const ALL_CONFIG_FIELDS = [...BASIC_CONFIG_FIELDS, "Healthcheck", "Shell", "OnBuild", "ArgsEscaped", "variant"];

/**
 * Differences between two image configs (the OCI/Docker config JSON: { config: {...},
 * architecture, os }) in `fields`. `ignoreLabels` are labels the oracle adds on its own. An unset
 * field, null, "", [] and {} are all "unset" (Docker writes null where OCI omits).
 */
export function compareConfigs(k, b, name, { ignoreLabels = new Set(), fields: only = BASIC_CONFIG_FIELDS } = {}) {
  const diffs = [];
  const kc = k.config ?? {};
  const bc = b.config ?? {};
  const bLabels = Object.fromEntries(Object.entries(bc.Labels ?? {}).filter(([label]) => !ignoreLabels.has(label)));
  const fields = {
    Env: [kc.Env, bc.Env],
    Cmd: [kc.Cmd, bc.Cmd],
    Entrypoint: [kc.Entrypoint, bc.Entrypoint],
    WorkingDir: [kc.WorkingDir, bc.WorkingDir],
    User: [kc.User, bc.User],
    ExposedPorts: [kc.ExposedPorts, bc.ExposedPorts],
    Volumes: [kc.Volumes, bc.Volumes],
    Labels: [kc.Labels, bLabels],
    StopSignal: [kc.StopSignal, bc.StopSignal],
    Healthcheck: [kc.Healthcheck, bc.Healthcheck],
    Shell: [kc.Shell, bc.Shell],
    OnBuild: [kc.OnBuild, bc.OnBuild],
    ArgsEscaped: [kc.ArgsEscaped, bc.ArgsEscaped],
    architecture: [k.architecture, b.architecture],
    variant: [k.variant, b.variant],
    os: [k.os, b.os],
  };
  for (const [field, [kv, bv]] of Object.entries(fields)) {
    if (!only.includes(field)) continue;
    const a = JSON.stringify(normalizeConfigValue(kv));
    const c = JSON.stringify(normalizeConfigValue(bv));
    if (a !== c) diffs.push(`config ${field}: kiln=${a ?? "-"} ${name}=${c ?? "-"}`);
  }
  return diffs;
}

/** Truncate the mtime of everything under `dir` (symlinks included, not followed) to a whole second. */
export function wholeSecondMtimes(dir) {
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isDirectory()) wholeSecondMtimes(p);
    const st = lstatSync(p);
    const t = Math.floor(st.mtimeMs / 1000);
    lutimesSync(p, t, t);
  }
}
