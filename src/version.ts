// The version kiln reports (`kiln --version`, the library's VERSION), read from package.json so
// there is one place to change it (src/ and dist/ both sit one level below the package root).
// Read as a file, not through createRequire: a JSON require sets up the CommonJS loader, about a
// millisecond of every command's start.
import { readFileSync } from "node:fs";

export const VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
