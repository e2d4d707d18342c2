// Node's on-disk compile cache for kiln's own modules (module.enableCompileCache, Node >= 22.1):
// a short command such as `kiln run IMAGE true` otherwise compiles its few dozen modules anew on
// every start. The cache lives in `<default cache dir>/compile-cache` (Node keys it by its own
// version and each file's content); on Node 20 there is none, and a cache that cannot be used
// (a read-only home, NODE_DISABLE_COMPILE_CACHE=1) is only a slower start, never an error.
import module from "node:module";
import { join } from "node:path";
import { defaultCacheDir } from "../store/cache-dir.js";

type EnableCompileCache = (dir?: string) => unknown;

/** Turn the compile cache on when this Node has one (bin/kiln calls it before loading the CLI). */
export function enableCompileCache(): void {
  const enable = (module as unknown as { enableCompileCache?: EnableCompileCache }).enableCompileCache;
  if (typeof enable !== "function") return;
  try {
    enable(join(defaultCacheDir(), "compile-cache"));
  } catch {
    // never in the way of the command
  }
}
