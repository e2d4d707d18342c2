// Merging the manifests of several sources into one index (`kiln manifest create`): one entry per
// platform, in the sources' order, each child manifest kept byte for byte (so its digest is the
// source's); the same manifest given twice is listed once; two different manifests for one
// platform are an error naming both sources. An OCI index, or a Docker manifest list; annotations
// on the index and on its image entries (imagetools' `index:` and `manifest-descriptor[PLATFORM]:`),
// never on a child manifest (that would change its digest).
import { createHash } from "node:crypto";
import { KilnError } from "../errors.js";
import { descriptorJSON } from "../image/materialize.js";
import { MediaType, type Descriptor, type Digest, type ImageFormat, type Platform } from "../image/oci.js";
import { formatPlatform, normalizePlatform } from "../image/platform.js";
import type { SourceManifest } from "./manifest-sources.js";

export interface MergedIndex {
  descriptor: Descriptor;
  bytes: Buffer;
  /** The manifests it lists, in its order. */
  entries: SourceManifest[];
}

/** Annotations of the new index: on the index itself, and on its image entries (all, or those of some platforms). */
export interface IndexAnnotations {
  index?: Record<string, string>;
  descriptors?: Array<{ platforms?: Platform[]; key: string; value: string }>;
}

function hasAnnotations(a: IndexAnnotations | undefined): boolean {
  return Object.keys(a?.index ?? {}).length > 0 || (a?.descriptors ?? []).length > 0;
}

/**
 * The default format: a Docker manifest list when every manifest is Docker schema2 and the index
 * gets no annotations of its own (a manifest list has no field for them), else OCI.
 */
export function defaultFormat(manifests: SourceManifest[], annotations?: IndexAnnotations): ImageFormat {
  return !hasAnnotations(annotations) && manifests.every((m) => m.descriptor.mediaType === MediaType.dockerManifest) ? "docker" : "oci";
}

/** The entries' annotations with the `descriptors` ones laid over (image entries only; a platform named must match one). */
function entryAnnotations(entries: SourceManifest[], descriptors: NonNullable<IndexAnnotations["descriptors"]>): Array<Record<string, string> | undefined> {
  const out = entries.map((m) => (m.annotations ? { ...m.annotations } : undefined));
  for (const a of descriptors) {
    const wanted = a.platforms?.map((p) => formatPlatform(normalizePlatform(p)));
    const matched = new Set<string>();
    entries.forEach((m, i) => {
      if (m.attestation) return;
      const key = formatPlatform(m.platform);
      if (wanted && !wanted.includes(key)) return;
      matched.add(key);
      out[i] = { ...(out[i] ?? {}), [a.key]: a.value };
    });
    const missing = (wanted ?? []).filter((w) => !matched.has(w));
    if (missing.length > 0) throw new KilnError("OPTION_INVALID", `manifest create: annotation ${a.key}: no image for platform ${missing.join(", ")} in the index`);
  }
  return out;
}

export function mergeManifests(manifests: SourceManifest[], format: ImageFormat = defaultFormat(manifests), annotations: IndexAnnotations = {}): MergedIndex {
  if (format === "docker" && hasAnnotations(annotations)) {
    throw new KilnError("OPTION_INVALID", "manifest create: a Docker manifest list cannot carry annotations: use --format oci (the default with --annotation)");
  }
  if (manifests.length === 0) throw new KilnError("OPTION_INVALID", "manifest create: the sources hold no manifests");
  const byPlatform = new Map<string, SourceManifest>();
  const seen = new Set<Digest>();
  const entries: SourceManifest[] = [];
  for (const m of manifests) {
    if (seen.has(m.descriptor.digest)) continue;
    if (!m.attestation) {
      const key = formatPlatform(m.platform);
      const other = byPlatform.get(key);
      if (other) {
        throw new KilnError("PLATFORM_DUPLICATE", `platform ${key} is in two sources: ${other.source} (${other.descriptor.digest}) and ${m.source} (${m.descriptor.digest})`);
      }
      byPlatform.set(key, m);
    }
    seen.add(m.descriptor.digest);
    entries.push(m);
  }
  const mediaType = format === "oci" ? MediaType.ociIndex : MediaType.dockerManifestList;
  const onEntries = entryAnnotations(entries, annotations.descriptors ?? []);
  const list = entries.map((m, i) => {
    const d: Descriptor = { ...m.descriptor, platform: m.platform };
    if (onEntries[i]) d.annotations = onEntries[i];
    return descriptorJSON(d);
  });
  const own = annotations.index ?? {};
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: list, ...(Object.keys(own).length > 0 ? { annotations: own } : {}) }));
  const digest: Digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  return { descriptor: { mediaType, digest, size: bytes.length }, bytes, entries };
}
