// Test helpers for the context/layer-view tests: temp dirs, file trees, and layer blobs built
// with tar-stream + gzip into a real BlobStore.
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink, writeFile, utimes, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import * as tar from "tar-stream";
import type { Layer } from "../../src/image/image.js";
import { MediaType, type Digest } from "../../src/image/oci.js";
import type { BlobStore } from "../../src/store/blob-store.js";
import type { LayerEntry } from "../../src/layer/entry.js";

export async function tempDir(prefix = "kiln-ctx-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export type TreeSpec = Record<string, string | { content?: string; mode?: number; mtime?: number } | { symlink: string } | { dir: true; mode?: number; mtime?: number }>;

/** Writes files/dirs/symlinks below `root` (keys are relative paths). */
export async function writeTree(root: string, tree: TreeSpec): Promise<void> {
  for (const [rel, spec] of Object.entries(tree)) {
    const abs = join(root, rel);
    await mkdir(dirname(abs), { recursive: true });
    if (typeof spec === "string") {
      await writeFile(abs, spec);
    } else if ("symlink" in spec) {
      await symlink(spec.symlink, abs);
    } else if ("dir" in spec) {
      await mkdir(abs, { recursive: true });
      if (spec.mode !== undefined) await chmod(abs, spec.mode);
      if (spec.mtime !== undefined) await utimes(abs, spec.mtime, spec.mtime);
    } else {
      await writeFile(abs, spec.content ?? "");
      if (spec.mode !== undefined) await chmod(abs, spec.mode);
      if (spec.mtime !== undefined) await utimes(abs, spec.mtime, spec.mtime);
    }
  }
}

export interface TarMember {
  name: string;
  type?: "file" | "directory" | "symlink" | "link";
  content?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
}

/** A tar archive in memory (tests only; small). */
export async function makeTar(members: TarMember[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on("data", (c: unknown) => chunks.push(c as Buffer));
    pack.on("end", () => resolve());
    pack.on("error", reject);
  });
  for (const m of members) {
    const type = m.type ?? "file";
    const header: Partial<tar.Header> & { name: string } = {
      name: m.name,
      type,
      mode: m.mode ?? (type === "directory" ? 0o755 : 0o644),
      uid: m.uid ?? 0,
      gid: m.gid ?? 0,
      mtime: new Date((m.mtime ?? 1_600_000_000) * 1000),
    };
    if (m.linkname !== undefined) header.linkname = m.linkname;
    await new Promise<void>((resolve, reject) => {
      if (type === "file") pack.entry(header, Buffer.from(m.content ?? ""), (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Stores a gzip layer built from `members`; returns the Layer value. */
export async function putLayer(store: BlobStore, members: TarMember[]): Promise<Layer> {
  const raw = await makeTar(members);
  const diffID = `sha256:${createHash("sha256").update(raw).digest("hex")}` as Digest;
  const gz = gzipSync(raw);
  const info = await store.putBytes(gz);
  return { descriptor: { mediaType: MediaType.ociLayerGzip, digest: info.digest, size: info.size }, diffID };
}

/** Reads a LayerEntry's content. */
export async function readEntry(e: LayerEntry): Promise<string> {
  if (!e.open) throw new Error(`${e.path} has no content`);
  const chunks: Buffer[] = [];
  for await (const c of e.open()) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export function byPath(entries: LayerEntry[]): Map<string, LayerEntry> {
  return new Map(entries.map((e) => [e.path, e]));
}
