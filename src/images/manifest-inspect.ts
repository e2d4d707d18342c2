// `kiln manifest inspect`: what a registry reference or OCI layout holds: its media type and
// digest, and for each image manifest (one, or an index's entries) the platform, digest, media
// type, manifest size and image size (config plus compressed layers).
import { formatPlatform } from "../image/platform.js";
import { ClientPool } from "../registry/client.js";
import type { RegistryOptions } from "../registry/options.js";
import type { BlobStore } from "../store/blob-store.js";
import { formatBytes } from "../units.js";
import { resolveSource } from "./manifest-sources.js";

export interface InspectedManifest {
  platform: string;
  digest: string;
  mediaType: string;
  /** The manifest's own size in bytes. */
  size: number;
  /** Config plus layers, compressed, in bytes. */
  imageSize: number;
  annotations?: Record<string, string>;
}

export interface InspectedImage {
  name: string;
  mediaType: string;
  digest: string;
  size: number;
  manifests: InspectedManifest[];
}

export async function inspectManifest(name: string, options: RegistryOptions & { store: BlobStore }): Promise<InspectedImage> {
  const pool = new ClientPool(options);
  try {
    const r = await resolveSource(name, { store: options.store, pool, options });
    return {
      name,
      mediaType: r.top.mediaType,
      digest: r.top.digest,
      size: r.top.size,
      manifests: r.manifests.map((m) => ({
        platform: formatPlatform(m.platform),
        digest: m.descriptor.digest,
        mediaType: m.descriptor.mediaType,
        size: m.descriptor.size,
        imageSize: m.manifest.config.size + m.manifest.layers.reduce((n, l) => n + l.size, 0),
        ...(m.annotations ? { annotations: m.annotations } : {}),
      })),
    };
  } finally {
    await pool.close();
  }
}

/** The text form: a header, then one row per manifest. */
export function formatInspected(img: InspectedImage): string {
  const rows = [
    `Name:      ${img.name}`,
    `MediaType: ${img.mediaType}`,
    `Digest:    ${img.digest}`,
    "",
  ];
  const table = [["PLATFORM", "DIGEST", "SIZE", "MANIFEST"], ...img.manifests.map((m) => [m.platform, m.digest, formatBytes(m.imageSize), `${m.size} B`])];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table) rows.push(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("   "));
  return `${rows.join("\n")}\n`;
}
