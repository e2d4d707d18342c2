// Where kiln keeps its cache by default (the blob store, extracted layers, work directories, the
// preflight's report, Node's compile cache): a module of its own, so the launcher can name it
// without loading the blob store.
import { homedir } from "node:os";
import { join } from "node:path";

/** The default cache directory: `$XDG_CACHE_HOME/kiln` or `~/.cache/kiln`. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), ".cache"), "kiln");
}
