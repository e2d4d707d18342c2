// The local image store's names: `<cache>/names/<sha256 of the name>.json`, one small file per
// name holding the manifest (or index) descriptor it points at. Each write is a temp file renamed
// over the old one, so concurrent builds tagging the same name leave one whole record (the last
// rename wins) and builds tagging different names never touch the same file. Names arrive here
// already normalized (src/images/name.ts); the blobs they point at live in the BlobStore and are
// kept by prune while a name reaches them.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "./atomic-file.js";
import { isDigest, type Digest } from "./digest.js";

/** What a name points at (an OCI descriptor's identifying fields). */
export interface NamedTarget {
  mediaType: string;
  digest: Digest;
  size: number;
}

export interface NameRecord {
  name: string;
  target: NamedTarget;
  /** When the name was (last) set, RFC 3339. */
  tagged: string;
}

export const namesDir = (cacheDir: string): string => join(cacheDir, "names");

function recordPath(cacheDir: string, name: string): string {
  return join(namesDir(cacheDir), `${createHash("sha256").update(name).digest("hex")}.json`);
}

function valid(rec: unknown, name?: string): rec is NameRecord {
  const r = rec as NameRecord | null;
  return (
    !!r &&
    typeof r.name === "string" &&
    (name === undefined || r.name === name) &&
    typeof r.target?.mediaType === "string" &&
    typeof r.target?.digest === "string" &&
    isDigest(r.target.digest) &&
    Number.isSafeInteger(r.target.size) &&
    typeof r.tagged === "string"
  );
}

async function readRecord(path: string, name?: string): Promise<NameRecord | undefined> {
  try {
    // a record is a few hundred bytes: read at once (a thread-pool round trip per call made this a millisecond)
    const rec = JSON.parse(readFileSync(path, "utf8")) as unknown;
    return valid(rec, name) ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** Point `name` at `target` (replacing what it pointed at before). */
export async function setName(cacheDir: string, name: string, target: NamedTarget, now = new Date()): Promise<void> {
  const rec: NameRecord = {
    name,
    target: { mediaType: target.mediaType, digest: target.digest, size: target.size },
    tagged: now.toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
  await writeFileAtomic(recordPath(cacheDir, name), `${JSON.stringify(rec)}\n`, { mkdirMode: 0o755 });
}

export function getName(cacheDir: string, name: string): Promise<NameRecord | undefined> {
  return readRecord(recordPath(cacheDir, name), name);
}

/** Remove `name`; false when there was no such name. */
export async function removeName(cacheDir: string, name: string): Promise<boolean> {
  if (!(await getName(cacheDir, name))) return false;
  await rm(recordPath(cacheDir, name), { force: true });
  return true;
}

/** Every name, sorted by name (unreadable or half-written records are skipped). */
export async function listNames(cacheDir: string): Promise<NameRecord[]> {
  let files: string[];
  try {
    files = await readdir(namesDir(cacheDir));
  } catch {
    return [];
  }
  const out: NameRecord[] = [];
  for (const f of files) {
    if (!/^[0-9a-f]{64}\.json$/.test(f)) continue;
    const rec = await readRecord(join(namesDir(cacheDir), f));
    // a record must sit at its own name's path (a copied or renamed file names nothing)
    if (rec && recordPath(cacheDir, rec.name) === join(namesDir(cacheDir), f)) out.push(rec);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
