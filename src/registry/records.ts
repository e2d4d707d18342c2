// Small store side-files the registry code owns: where each blob was pulled from or pushed to
// (<store>/origins/sha256/<hex>, for cross-repo mounts) and which manifest a reference last
// resolved to (<store>/refs/sha256/<hash of the reference>, for pull "missing"/"never").
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { isDigest, type Descriptor, type Digest } from "../image/oci.js";
import { formatReference, type Reference } from "../image/reference.js";
import type { BlobStore } from "../store/blob-store.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import { KilnError } from "../errors.js";

export interface BlobOrigin {
  registry: string;
  repository: string;
}

const MAX_ORIGINS = 8;

function hexOf(d: Digest): string {
  if (!isDigest(d)) throw new KilnError("DIGEST_INVALID", `not a sha256 digest: ${d}`);
  return d.slice("sha256:".length);
}


async function readJSON<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

function originPath(store: BlobStore, d: Digest): string {
  return join(store.root, "origins", "sha256", hexOf(d));
}

/** Known registry locations of a blob, most recent first. */
export async function readOrigins(store: BlobStore, d: Digest): Promise<BlobOrigin[]> {
  const list = await readJSON<BlobOrigin[]>(originPath(store, d));
  return Array.isArray(list) ? list.filter((o) => typeof o?.registry === "string" && typeof o?.repository === "string") : [];
}

export async function addOrigin(store: BlobStore, d: Digest, origin: BlobOrigin): Promise<void> {
  const list = await readOrigins(store, d);
  const next = [origin, ...list.filter((o) => o.registry !== origin.registry || o.repository !== origin.repository)];
  await writeFileAtomic(originPath(store, d), JSON.stringify(next.slice(0, MAX_ORIGINS)), { mkdirMode: 0o755 });
}

export interface RefRecord {
  reference: string;
  descriptor: Descriptor;
}

function refPath(store: BlobStore, ref: Reference): string {
  const key = createHash("sha256").update(formatReference(ref)).digest("hex");
  return join(store.root, "refs", "sha256", key);
}

export async function readRefRecord(store: BlobStore, ref: Reference): Promise<Descriptor | undefined> {
  const rec = await readJSON<RefRecord>(refPath(store, ref));
  if (!rec || rec.reference !== formatReference(ref) || !isDigest(rec.descriptor?.digest ?? "")) return undefined;
  return rec.descriptor;
}

export async function writeRefRecord(store: BlobStore, ref: Reference, descriptor: Descriptor): Promise<void> {
  const rec: RefRecord = { reference: formatReference(ref), descriptor };
  await writeFileAtomic(refPath(store, ref), JSON.stringify(rec), { mkdirMode: 0o755 });
}
