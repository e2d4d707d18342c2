// The docker-archive destination: a tar `docker load` accepts, written Docker 25+ style (an OCI
// layout plus manifest.json [{Config, RepoTags, Layers}] and repositories), temp name + rename.
import { KilnError, abortable } from "../errors.js";
import { isIndexSource, type OutputImage } from "../image/image-index.js";
import type { ImageSource } from "../image/source.js";
import { MediaType, REF_NAME_ANNOTATION } from "../image/oci.js";
import { checkBlobs, layoutTarEntries, tagsFrom, writeTarAtomic } from "./oci-layout.js";
import { descriptorJSON } from "../image/materialize.js";

const blobPath = (digest: string): string => `blobs/sha256/${digest.slice("sha256:".length)}`;

/** Write `img` as a docker-archive tar at `dest`, tagged with `tags` (docker's familiar names); one platform only. */
export function writeDockerArchive(img: OutputImage, options: { dest: string; tags?: string[]; signal?: AbortSignal }): Promise<void> {
  if (isIndexSource(img)) {
    const n = img.images.length;
    return Promise.reject(new KilnError("OUTPUT_DEST_INVALID", `--output type=docker takes one platform, not an index of ${n}; use type=oci for a multi-platform image`));
  }
  return abortable(options.signal, () => writeArchive(img, options));
}

async function writeArchive(img: ImageSource, options: { dest: string; tags?: string[]; signal?: AbortSignal }): Promise<void> {
  const tags = tagsFrom(options.tags);
  await checkBlobs(img);
  const repoTags = [...new Set(tags.map((t) => t.familiar))];
  const manifestJson = JSON.stringify([
    { Config: blobPath(img.config.digest), RepoTags: repoTags, Layers: img.layers.map((l) => blobPath(l.digest)) },
  ]);
  const repositories: Record<string, Record<string, string>> = {};
  for (const t of tags) {
    (repositories[t.repository] ??= {})[t.tag] = img.config.digest.slice("sha256:".length);
  }
  const entry = { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size };
  const manifests =
    tags.length === 0
      ? [descriptorJSON(entry)]
      : tags.map((t) => descriptorJSON({ ...entry, annotations: { "io.containerd.image.name": t.full, [REF_NAME_ANNOTATION]: t.tag } }));
  const indexText = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests });
  const entries = layoutTarEntries(img, indexText, {
    "manifest.json": manifestJson,
    repositories: JSON.stringify(repositories),
  });
  await writeTarAtomic(entries, options.dest, options.signal);
}
