// `kiln inspect` and `kiln history` as library calls on any ImageSource: the manifest and config
// documents (as stored, parsed), and the history with each non-empty entry paired with its layer
// (in order, as the image spec pairs them) — newest first, as docker history prints it.
import { KilnError } from "../errors.js";
import type { ImageConfig, Manifest } from "../image/oci.js";
import type { ImageSource } from "../image/source.js";

export interface Inspected {
  digest: string;
  mediaType: string;
  manifest: Manifest;
  config: ImageConfig;
}

async function json<T>(img: ImageSource, digest: string, what: string): Promise<T> {
  try {
    return JSON.parse((await img.readBytes(digest as `sha256:${string}`)).toString("utf8")) as T;
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new KilnError("MANIFEST_INVALID", `${what} ${digest} is not valid JSON`);
  }
}

export async function inspectImage(img: ImageSource): Promise<Inspected> {
  return {
    digest: img.manifest.digest,
    mediaType: img.manifest.mediaType,
    manifest: await json<Manifest>(img, img.manifest.digest, "manifest"),
    config: await json<ImageConfig>(img, img.config.digest, "config"),
  };
}

export interface HistoryRow {
  /** The layer's (compressed) digest; absent for an empty_layer entry. */
  layer?: string;
  created?: string;
  createdBy: string;
  /** Compressed size of the layer (0 for an empty layer). */
  size: number;
  comment?: string;
}

/** The image's history, newest first; layers the history does not account for are listed as such. */
export async function imageHistory(img: ImageSource): Promise<HistoryRow[]> {
  const config = await json<ImageConfig>(img, img.config.digest, "config");
  const rows: HistoryRow[] = [];
  let next = 0;
  for (const h of config.history ?? []) {
    const row: HistoryRow = { createdBy: h.created_by ?? "", size: 0, ...(h.created ? { created: h.created } : {}), ...(h.comment ? { comment: h.comment } : {}) };
    if (!h.empty_layer) {
      const l = img.layers[next++];
      if (l) {
        row.layer = l.digest;
        row.size = l.size;
      }
    }
    rows.push(row);
  }
  for (; next < img.layers.length; next++) rows.push({ layer: img.layers[next]!.digest, createdBy: "(no history entry)", size: img.layers[next]!.size });
  return rows.reverse();
}
