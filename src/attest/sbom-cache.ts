// The SBOM of a whole image filesystem, kept between builds: the SPDX packages' JSON text (and the
// scan's warnings) of the image whose ordered layer blobs are these, keyed by the sha256 of that
// list (and kiln's version, whose scanners made it). A merged scan is a pure function of the layer
// blobs' bytes, which their digests name; a changed layer is a new digest and so a new entry. Kept
// in the blob store's directory (sbom-scan/image-v1-<top layer hex>-<key hex>.txt, the top layer
// named so that prune drops the entry with it) and, for a process's later builds, in memory.
// A warm build with --sbom then neither reads the layer scans nor parses nor serializes a package;
// the statements made from an entry are remembered beside it (…<key hex>.statement-<hex>.json:
// their blob, see statementFile), so that attesting the same image again reads nothing but that.
// A missing or unreadable entry is simply made again.
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../store/atomic-file.js";
import type { BlobStore } from "../store/blob-store.js";
import type { SpdxPackagesJSON } from "./spdx.js";

/** One image filesystem's SBOM findings. */
export interface ImageSbom extends SpdxPackagesJSON {
  /** What the scan reported (an RPM database kiln does not read), said again on every build. */
  warnings: string[];
}

/** The layers as the cache keys them: each blob's media type and digest, bottom first. */
export interface SbomLayer {
  mediaType: string;
  digest: string;
}

const PREFIX = "image-v1-";
/** Memory kept for the process's later builds: entries up to this many bytes in all. */
const MEMORY_BYTES = 64 * 1024 * 1024;
const memory = new Map<string, ImageSbom>();
let memoryBytes = 0;

function remember(file: string, sbom: ImageSbom): void {
  const size = (s: ImageSbom): number => s.packages.length + s.relationships.length;
  if (size(sbom) > MEMORY_BYTES) return;
  const old = memory.get(file);
  if (old) {
    memory.delete(file);
    memoryBytes -= size(old);
  }
  memory.set(file, sbom);
  memoryBytes += size(sbom);
  for (const [k, v] of memory) {
    if (memoryBytes <= MEMORY_BYTES) break;
    memory.delete(k);
    memoryBytes -= size(v);
  }
}

/** The entry's file for these layers and kiln version (no layers: none, nothing to keep). */
function entryFile(store: BlobStore, layers: SbomLayer[], version: string): string | undefined {
  const top = layers[layers.length - 1];
  if (!top || !/^sha256:[0-9a-f]{64}$/.test(top.digest)) return undefined;
  const key = createHash("sha256").update(JSON.stringify([version, layers.map((l) => [l.mediaType, l.digest])])).digest("hex");
  return join(store.root, "sbom-scan", `${PREFIX}${top.digest.slice("sha256:".length)}-${key}.txt`);
}

/**
 * A statement made from an entry is remembered beside it, by the entry and the statement's text
 * before its packages (spdxStatementHead: subjects, name, namespace, time, kiln's version): the
 * blob's digest and size, and the scan's warnings. The same image attested again (a warm build)
 * then reads neither the entry nor the statement: the blob is in the store already.
 */
function statementFile(entry: string, head: string): string {
  return `${entry.slice(0, -".txt".length)}.statement-${createHash("sha256").update(head).digest("hex").slice(0, 32)}.json`;
}

export interface RememberedStatement {
  digest: string;
  size: number;
  warnings: string[];
}

/** The SBOM statement made before for the image of `layers` with this `head`, when the store still holds its blob. */
export async function cachedSbomStatement(store: BlobStore, layers: SbomLayer[], version: string, head: string): Promise<RememberedStatement | undefined> {
  const entry = entryFile(store, layers, version);
  if (!entry) return undefined;
  try {
    const r = JSON.parse(await readFile(statementFile(entry, head), "utf8")) as RememberedStatement;
    if (typeof r.digest !== "string" || !/^sha256:[0-9a-f]{64}$/.test(r.digest) || !Number.isSafeInteger(r.size) || !Array.isArray(r.warnings) || !r.warnings.every((w) => typeof w === "string")) return undefined;
    // the blob must still be there, whole (a prune may have removed it)
    if (statSync(store.path(r.digest as `sha256:${string}`), { throwIfNoEntry: false })?.size !== r.size) return undefined;
    return r;
  } catch {
    return undefined;
  }
}

/** Remember the statement stored for the image of `layers` with this `head` (a cache: failing to is no error). */
export async function rememberSbomStatement(store: BlobStore, layers: SbomLayer[], version: string, head: string, statement: RememberedStatement): Promise<void> {
  const entry = entryFile(store, layers, version);
  if (!entry) return;
  await writeFileAtomic(statementFile(entry, head), JSON.stringify(statement), { mkdirMode: 0o755 }).catch(() => undefined);
}

/** The name prefix of the entries whose top layer is the blob `hex` (what prune removes with it). */
export function imageSbomPrefix(hex: string): string {
  return `${PREFIX}${hex}-`;
}

/** An array's JSON text: "[" ... "]". */
function isArrayText(b: Buffer): boolean {
  return b.length >= 2 && b[0] === 0x5b && b[b.length - 1] === 0x5d;
}

/** Three lines: the warnings (JSON), the packages' JSON, the relationships' JSON (JSON text holds no raw newline). */
function parse(data: Buffer): ImageSbom | undefined {
  const a = data.indexOf(0x0a);
  const b = a < 0 ? -1 : data.indexOf(0x0a, a + 1);
  const c = b < 0 ? -1 : data.indexOf(0x0a, b + 1);
  if (c !== data.length - 1) return undefined;
  try {
    const warnings = JSON.parse(data.subarray(0, a).toString("utf8")) as unknown;
    if (!Array.isArray(warnings) || !warnings.every((w) => typeof w === "string")) return undefined;
    const packages = data.subarray(a + 1, b);
    const relationships = data.subarray(b + 1, c);
    if (!isArrayText(packages) || !isArrayText(relationships)) return undefined;
    return { warnings, packages, relationships };
  } catch {
    return undefined;
  }
}

/**
 * The SBOM findings of the image of `layers`: from memory, else from the store's entry, else
 * `make()` (then kept in both).
 */
export async function cachedImageSbom(store: BlobStore, layers: SbomLayer[], version: string, make: () => Promise<ImageSbom>): Promise<ImageSbom> {
  const file = entryFile(store, layers, version);
  if (!file) return make();
  const inMemory = memory.get(file);
  if (inMemory) return inMemory;
  const kept = parse(await readFile(file).catch(() => Buffer.alloc(0)));
  if (kept) {
    remember(file, kept);
    return kept;
  }
  const made = await make();
  const text = Buffer.concat([Buffer.from(`${JSON.stringify(made.warnings)}\n`), made.packages, Buffer.from("\n"), made.relationships, Buffer.from("\n")]);
  // a cache: failing to keep it is no error
  await writeFileAtomic(file, text, { mkdirMode: 0o755 }).catch(() => undefined);
  remember(file, made);
  return made;
}
