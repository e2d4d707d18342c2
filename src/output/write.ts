// Hands an image to every requested destination: OCI layout (directory or tar), docker archive,
// or a registry push; a multi-platform image (an index) goes to all but the docker archive. Each destination writes atomically (temp name, then rename). OutputSpec,
// the description of one destination, lives in spec.ts (re-exported here and by the engine).
import type { OutputImage } from "../image/image-index.js";
import type { PushOptions } from "../registry/push.js";
import { UsageError, throwIfAborted } from "../errors.js";
import { sameCompression, type LayerCompression } from "../layer/recompress.js";
import type { ImageFormat } from "../image/oci.js";

export { checkAttestationOutputs, type OutputSpec } from "./spec.js";
import type { OutputSpec } from "./spec.js";

/** Options of a registry destination: PushOptions, with push progress under its older name. */
export type OutputRegistryOptions = Omit<PushOptions, "onProgress"> & { onPushProgress?: PushOptions["onProgress"] };

/**
 * The one layer compression the outputs ask for (`compression=` of type=oci|docker|image; none:
 * the layers as written, gzip). Outputs asking for different ones are refused, as is zstd in
 * Docker media types (schema2 has no zstd layer type).
 */
export function outputCompression(outputs: OutputSpec[], format: ImageFormat): LayerCompression | undefined {
  const asked = outputs.filter((o) => o.type === "oci" || o.type === "docker" || o.type === "image");
  const first = asked[0]?.compression;
  for (const o of asked) {
    if (!sameCompression(o.compression, first)) {
      throw new UsageError("OPTION_INVALID", "--output: every image output must use the same compression (kiln builds one image for all of them)");
    }
    if (o.compression?.type === "zstd" && (o.type === "docker" || format === "docker")) {
      throw new UsageError("OPTION_INVALID", `--output type=${o.type},compression=zstd${format === "docker" ? " with --format docker" : ""}: Docker media types have no zstd layers; use --format oci (type=oci or type=image)`);
    }
  }
  return first;
}

export async function writeOutputs(img: OutputImage, outputs: OutputSpec[], tags: string[], registry: OutputRegistryOptions = {}): Promise<void> {
  const { onPushProgress, ...rest } = registry;
  for (const out of outputs) {
    throwIfAborted(registry.signal);
    switch (out.type) {
      case "oci": {
        // the writers load when an image is written (the CLI parses outputs for every command)
        const { writeOciLayout } = await import("./oci-layout.js");
        await writeOciLayout(img, { dest: out.dest, tags, tar: out.tar, ...(registry.signal ? { signal: registry.signal } : {}) });
        break;
      }
      case "docker": {
        const { writeDockerArchive } = await import("./docker-archive.js");
        await writeDockerArchive(img, { dest: out.dest, tags, ...(registry.signal ? { signal: registry.signal } : {}) });
        break;
      }
      case "local":
      case "tar":
        break; // file system outputs need the layers applied: the engine writes them
      case "image": {
        if (!out.push) break; // without push there is no local image store to write to
        const names = out.names.length > 0 ? out.names : tags;
        const { pushImage } = await import("../registry/push.js"); // undici only when pushing
        // `store` (where pulled blobs came from) lets same-registry base layers be mounted, not uploaded
        await pushImage(img, names, { ...rest, ...(onPushProgress ? { onProgress: onPushProgress } : {}) });
        break;
      }
    }
  }
}
