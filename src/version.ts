// The version kiln reports (`kiln --version`, the library's VERSION), read from package.json so
// there is one place to change it (src/ and dist/ both sit one level below the package root).
import { createRequire } from "node:module";

export const VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;
