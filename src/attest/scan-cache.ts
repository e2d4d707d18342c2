// Per-layer SBOM scan results kept in the blob store's directory (sbom-scan/v2-<blob hex>.json; the
// version goes up whenever the scan keeps more, so older entries are not taken as complete),
// so a warm build with --sbom does not stream its base layers again. Keyed by the layer blob's
// digest: the store's blobs are verified against their digest when they arrive, and a scan is a
// pure function of the blob's bytes. A missing or unreadable entry is simply scanned again.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { isDigest } from "../image/oci.js";
import type { BlobStore } from "../store/blob-store.js";
import { writeFileAtomic } from "../store/atomic-file.js";
import type { LayerScan, ScanCache } from "./scan-files.js";

interface Stored {
  added: Array<[string, string]>;
  opaque: string[];
  whiteouts: string[];
  replaced: string[];
}

function strings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

/** The name of the layer blob `hex`'s scan entry in sbom-scan/ (what prune removes with the blob). */
export function layerScanName(hex: string): string {
  return `v2-${hex}.json`;
}

export function storeScanCache(store: BlobStore): ScanCache {
  const file = (key: string): string | undefined => (isDigest(key) ? join(store.root, "sbom-scan", layerScanName(key.slice("sha256:".length))) : undefined);
  return {
    async get(key) {
      const f = file(key);
      if (!f) return undefined;
      try {
        const s = JSON.parse(await readFile(f, "utf8")) as Stored;
        if (!Array.isArray(s.added) || !strings(s.opaque) || !strings(s.whiteouts) || !strings(s.replaced)) return undefined;
        const added = new Map<string, Buffer>();
        for (const e of s.added) {
          if (!Array.isArray(e) || typeof e[0] !== "string" || typeof e[1] !== "string") return undefined;
          added.set(e[0], Buffer.from(e[1], "base64"));
        }
        return { added, opaque: s.opaque, whiteouts: s.whiteouts, replaced: s.replaced };
      } catch {
        return undefined;
      }
    },
    async put(key, scan: LayerScan) {
      const f = file(key);
      if (!f) return;
      const s: Stored = { added: [...scan.added].map(([k, v]) => [k, v.toString("base64")]), opaque: scan.opaque, whiteouts: scan.whiteouts, replaced: scan.replaced };
      await writeFileAtomic(f, JSON.stringify(s), { mkdirMode: 0o755 }).catch(() => undefined); // a cache: failing to keep it is no error
    },
  };
}
