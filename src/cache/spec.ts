// `--cache-to` / `--cache-from` values as buildx writes them: `type=registry,ref=REF[,mode=min|max]`,
// `type=local,dest=DIR` / `type=local,src=DIR[,tag=T]`, `ignore-error=true`, or a bare reference
// (= type=registry). Mistakes are one-line usage errors.
import { UsageError } from "../errors.js";
import { parseReference } from "../image/reference.js";

/** The tag a cache has inside a `type=local` OCI layout unless `tag=` says otherwise. */
export const DEFAULT_LOCAL_CACHE_TAG = "cache";

export type CacheMode = "min" | "max";

export interface RegistryCacheSpec {
  type: "registry";
  ref: string;
  /** min: the caller exports only the final image's steps; max: every stage's steps. */
  mode: CacheMode;
  /** Failures to import/export become warnings instead of errors. */
  ignoreError: boolean;
}

export interface LocalCacheSpec {
  type: "local";
  /** The OCI layout directory (`dest=` for --cache-to, `src=` for --cache-from). */
  dir: string;
  tag: string;
  mode: CacheMode;
  ignoreError: boolean;
}

export type CacheSpec = RegistryCacheSpec | LocalCacheSpec;

/** buildx's cache back ends that talk to a service's own API (GitHub Actions, S3, Azure Blob). */
const SERVICE_CACHES = new Set(["gha", "s3", "azblob"]);

/** Options buildx accepts that mean what kiln always does (an OCI image manifest). */
const ALWAYS_TRUE = new Set(["image-manifest", "oci-mediatypes"]);

/** Parse a `--cache-to` / `--cache-from` value. A bare reference means `type=registry,ref=REF`. */
export function parseCacheSpec(s: string, direction: "to" | "from"): CacheSpec {
  const flag = `--cache-${direction}`;
  const text = s.trim();
  if (text === "") throw new UsageError("OPTION_INVALID", `${flag}: empty cache spec`);
  if (!text.includes("=")) return { type: "registry", ref: checkRef(text, flag), mode: "min", ignoreError: false };
  const fields = new Map<string, string>();
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UsageError("OPTION_INVALID", `${flag}: invalid field "${part}" in "${s}" (expected key=value)`);
    const k = part.slice(0, eq).trim().toLowerCase();
    if (fields.has(k)) throw new UsageError("OPTION_INVALID", `${flag}: "${k}" given twice in "${s}"`);
    fields.set(k, part.slice(eq + 1).trim());
  }
  const type = fields.get("type") ?? (fields.has("ref") ? "registry" : undefined);
  if (type === undefined) throw new UsageError("OPTION_INVALID", `${flag}: missing type= in "${s}" (registry or local)`);
  fields.delete("type");
  const mode = (fields.get("mode") ?? "min").toLowerCase();
  if (mode !== "min" && mode !== "max") throw new UsageError("OPTION_INVALID", `${flag}: mode must be min or max, not "${mode}"`);
  fields.delete("mode");
  const ignoreError = parseBool(fields.get("ignore-error") ?? "false", "ignore-error", flag);
  fields.delete("ignore-error");
  for (const k of ALWAYS_TRUE) {
    const v = fields.get(k);
    if (v === undefined) continue;
    if (!parseBool(v, k, flag)) throw new UsageError("OPTION_INVALID", `${flag}: ${k}=false is not supported (kiln always writes an OCI image manifest)`);
    fields.delete(k);
  }
  let spec: CacheSpec;
  if (type === "registry") {
    const ref = fields.get("ref");
    if (!ref) throw new UsageError("OPTION_INVALID", `${flag}: type=registry needs ref=REFERENCE`);
    fields.delete("ref");
    spec = { type: "registry", ref: checkRef(ref, flag), mode, ignoreError };
  } else if (type === "local") {
    const key = direction === "to" ? "dest" : "src";
    const dir = fields.get(key);
    if (!dir) throw new UsageError("OPTION_INVALID", `${flag}: type=local needs ${key}=DIR`);
    fields.delete(key);
    const tag = fields.get("tag") ?? DEFAULT_LOCAL_CACHE_TAG;
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) throw new UsageError("OPTION_INVALID", `${flag}: invalid tag "${tag}"`);
    fields.delete("tag");
    spec = { type: "local", dir, tag, mode, ignoreError };
  } else if (SERVICE_CACHES.has(type)) {
    throw new UsageError("OPTION_INVALID", `${flag} type=${type} is not supported: kiln keeps its cache in a registry (type=registry,ref=REF) or an OCI layout directory (type=local,${direction === "to" ? "dest" : "src"}=DIR, which a CI cache step can save and restore)`);
  } else {
    throw new UsageError("OPTION_INVALID", `${flag}: unsupported cache type "${type}" (supported: registry, local)`);
  }
  const unknown = [...fields.keys()];
  if (unknown.length > 0) throw new UsageError("OPTION_INVALID", `${flag}: unknown option "${unknown[0]}" for type=${type}`);
  return spec;
}

function parseBool(v: string, key: string, flag: string): boolean {
  const l = v.toLowerCase();
  if (l === "true" || l === "1" || l === "") return true;
  if (l === "false" || l === "0") return false;
  throw new UsageError("OPTION_INVALID", `${flag}: ${key} must be true or false, not "${v}"`);
}

function checkRef(ref: string, flag: string): string {
  try {
    parseReference(ref);
  } catch (err) {
    throw new UsageError("OPTION_INVALID", `${flag}: ${(err as Error).message}`);
  }
  return ref;
}

