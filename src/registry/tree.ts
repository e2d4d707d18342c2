// Fetch an image's manifest tree without its layers: the root (tag or digest), and, when it is an
// index, every manifest it lists, into the BlobStore; blobs of those manifests are fetched only
// when `wantBlob` asks for them (small artifact blobs such as in-toto statements, never image
// layers by default). What reads attestations of a registry image uses it.
import { KilnError, abortable } from "../errors.js";
import { isIndexType, type Descriptor, type Index, type Manifest } from "../image/oci.js";
import { familiarName, referenceTarget, toReference, type Reference } from "../image/reference.js";
import type { BlobStore } from "../store/blob-store.js";
import { RegistryClient } from "./client.js";
import type { RegistryOptions } from "./options.js";
import { CONFIG_LIMIT, fetchBlob, fetchManifest } from "./pull.js";

export interface TreeOptions extends RegistryOptions {
  store: BlobStore;
  /** Which blobs of a listed manifest to fetch too (config and layers; default none). */
  wantBlob?: (blob: Descriptor, manifest: Descriptor) => boolean;
}

/** Fetch the tree of `ref` (see the header); returns the root's descriptor and the reference. */
export function fetchManifestTree(refIn: string | Reference, options: TreeOptions): Promise<{ root: Descriptor; reference: Reference }> {
  return abortable(options.signal, async () => {
    const ref = toReference(refIn);
    const client = new RegistryClient(ref.registry, options);
    client.useRepository(ref.repository);
    try {
      const top = await fetchManifest(client, ref, referenceTarget(ref), options.store);
      const manifests: Array<{ desc: Descriptor; doc: Manifest }> = [];
      if (isIndexType(top.descriptor.mediaType)) {
        const index = top.doc as Index;
        if (!Array.isArray(index.manifests)) throw new KilnError("MANIFEST_INVALID", `registry ${ref.registry}: index for ${familiarName(ref)} has no manifests`);
        for (const child of index.manifests) {
          const got = await fetchManifest(client, ref, child.digest, options.store, child);
          if (!isIndexType(got.descriptor.mediaType)) manifests.push({ desc: { ...child, mediaType: got.descriptor.mediaType }, doc: got.doc as Manifest });
        }
      } else {
        manifests.push({ desc: top.descriptor, doc: top.doc as Manifest });
      }
      for (const { desc, doc } of manifests) {
        for (const blob of [doc.config, ...(Array.isArray(doc.layers) ? doc.layers : [])]) {
          if (blob && options.wantBlob?.(blob, desc)) await fetchBlob(client, ref, blob, options.store, options, CONFIG_LIMIT);
        }
      }
      return { root: top.descriptor, reference: ref };
    } finally {
      await client.close();
    }
  });
}
