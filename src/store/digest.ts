// Content addresses: the "sha256:<64 hex>" digest type the store names blobs by (src/image/oci.ts
// re-exports it for the OCI types).

/** "sha256:<64 hex>" */
export type Digest = `sha256:${string}`;

export function isDigest(s: string): s is Digest {
  return /^sha256:[0-9a-f]{64}$/.test(s);
}
