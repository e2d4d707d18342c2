// Build-cache keys: one sha256 per build step over a canonical (sorted-keys) JSON of everything
// the step's result depends on — the parent key, the expanded instruction, the platform, the
// build args/env it can see (proxy args removed, as BuildKit does), and the step's inputs
// (base image, selected sources, another stage's key, instruction flags). Versioned, so a change
// of format invalidates every older entry.
import { createHash } from "node:crypto";
import type { Digest } from "../image/oci.js";

/** Bump when the key's meaning changes: every existing cache entry then misses. */
export const CACHE_KEY_VERSION = "kiln-cache-key/1";

export interface CacheKeyParts {
  /** The previous step's key (null for FROM). */
  parent: Digest | null;
  /** The expanded instruction text. */
  instruction: string;
  /** "os/arch[/variant]" of the step's target. */
  platform: string;
  /** The build args/env the step can see; proxy args (any case) are removed by cacheKey. */
  args: Record<string, string>;
  /** FROM: the base manifest digest, or "scratch". */
  base?: Digest | "scratch";
  /** COPY/ADD: digest of the selected sources (hashSources). */
  sources?: Digest;
  /** COPY --from / RUN --mount from=: that stage's final key. */
  fromStage?: Digest;
  /** Flags (--chown/--chmod/--exclude/--parents/--link...), URL checksums, mount specs. */
  extra?: Record<string, string>;
}

/** Docker's predefined proxy args: never part of a cache key (BuildKit leaves them out too). */
const PROXY_ARGS = new Set(["http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"]);

export function isProxyArg(name: string): boolean {
  return PROXY_ARGS.has(name.toLowerCase());
}

export function cacheKey(parts: CacheKeyParts): Digest {
  const args: Record<string, string> = {};
  for (const [k, v] of Object.entries(parts.args)) if (!isProxyArg(k)) args[k] = v;
  const doc: Record<string, unknown> = {
    v: CACHE_KEY_VERSION,
    parent: parts.parent,
    instruction: parts.instruction,
    platform: parts.platform,
    args,
  };
  if (parts.base !== undefined) doc.base = parts.base;
  if (parts.sources !== undefined) doc.sources = parts.sources;
  if (parts.fromStage !== undefined) doc.fromStage = parts.fromStage;
  if (parts.extra !== undefined && Object.keys(parts.extra).length > 0) doc.extra = parts.extra;
  return `sha256:${createHash("sha256").update(canonicalJSON(doc)).digest("hex")}`;
}

/** JSON with every object's keys sorted by code unit; undefined members dropped. */
export function canonicalJSON(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJSON(v === undefined ? null : v)).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJSON(obj[k])}`).join(",")}}`;
}
