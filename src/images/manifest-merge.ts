// Merging the manifests of several sources into one index (`kiln manifest create`): one entry per
// platform, in the sources' order, each child manifest kept byte for byte (so its digest is the
// source's); the same manifest given twice is listed once; two different manifests for one
// platform are an error naming both sources. An OCI index, or a Docker manifest list.
import { createHash } from "node:crypto";
import { KilnError } from "../errors.js";
import { descriptorJSON } from "../image/materialize.js";
import { MediaType, type Descriptor, type Digest, type ImageFormat } from "../image/oci.js";
import { formatPlatform } from "../image/platform.js";
import type { SourceManifest } from "./manifest-sources.js";

export interface MergedIndex {
  descriptor: Descriptor;
  bytes: Buffer;
  /** The manifests it lists, in its order. */
  entries: SourceManifest[];
}

/** The default format: a Docker manifest list when every manifest is Docker schema2, else OCI. */
export function defaultFormat(manifests: SourceManifest[]): ImageFormat {
  return manifests.every((m) => m.descriptor.mediaType === MediaType.dockerManifest) ? "docker" : "oci";
}

export function mergeManifests(manifests: SourceManifest[], format: ImageFormat = defaultFormat(manifests)): MergedIndex {
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
  const list = entries.map((m) => {
    const d: Descriptor = { ...m.descriptor, platform: m.platform };
    if (m.annotations) d.annotations = m.annotations;
    return descriptorJSON(d);
  });
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: list }));
  const digest: Digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  return { descriptor: { mediaType, digest, size: bytes.length }, bytes, entries };
}
