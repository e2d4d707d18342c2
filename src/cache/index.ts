// The build cache's public surface: step keys, source digests and the stat cache, the local
// record index, and export/import through registries and OCI layout directories.
export { CACHE_KEY_VERSION, cacheKey, canonicalJSON, isProxyArg, type CacheKeyParts } from "./key.js";
export { StatCache, hashSources } from "./sources.js";
export { LocalCache, isCacheRecord, type CacheRecord } from "./local.js";
export { instructionExtra } from "./step-extra.js";
export {
  CACHE_CONFIG_MEDIA_TYPE,
  exportCache,
  importCache,
  type ExportOptions,
  type ImportOptions,
  type RemoteCache,
} from "./remote.js";
export { DEFAULT_LOCAL_CACHE_TAG, parseCacheSpec, type CacheMode, type CacheSpec, type LocalCacheSpec, type RegistryCacheSpec } from "./spec.js";
