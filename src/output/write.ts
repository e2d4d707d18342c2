// Hands a built image to every requested destination: OCI layout (directory or tar), docker
// archive, or a registry push. Each destination writes atomically (temp name, then rename).
import type { MaterializedImage } from "../image/image.js";
import type { OutputSpec } from "../build/options.js";
import type { BlobStore } from "../store/blob-store.js";
import { writeOciLayout } from "./oci-layout.js";
import { writeDockerArchive } from "./docker-archive.js";
import type { RegistryOptions } from "../registry/options.js";

export async function writeOutputs(
  img: MaterializedImage,
  store: BlobStore,
  outputs: OutputSpec[],
  tags: string[],
  registry: { insecureRegistries?: string[]; caFile?: string; timeouts?: RegistryOptions["timeouts"]; onPushProgress?: RegistryOptions["onProgress"] },
): Promise<void> {
  for (const out of outputs) {
    switch (out.type) {
      case "oci":
        await writeOciLayout(img, store, { dest: out.dest, tags, tar: out.tar });
        break;
      case "docker":
        await writeDockerArchive(img, store, { dest: out.dest, tags });
        break;
      case "image": {
        if (!out.push) break; // without push there is no local image store to write to
        const names = out.names.length > 0 ? out.names : tags;
        const { pushImage, storeSource } = await import("../registry/push.js"); // undici only when pushing
        await pushImage(storeSource(store), img.manifest, names, {
          store, // where pulled blobs came from: same-registry base layers are mounted, not uploaded
          ...(registry.insecureRegistries ? { insecureRegistries: registry.insecureRegistries } : {}),
          ...(registry.caFile ? { caFile: registry.caFile } : {}),
          ...(registry.timeouts ? { timeouts: registry.timeouts } : {}),
          ...(registry.onPushProgress ? { onProgress: registry.onPushProgress } : {}),
        });
        break;
      }
    }
  }
}
