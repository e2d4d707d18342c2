#!/usr/bin/env node
// The start-time bundles of the commands whose start is part of what users wait for (`kiln run`:
// a container's start-to-exit; `kiln build`: a warm build in CI): the compiled tree of dist/
// (tsc's output, one file per module) rolled up by rolldown into a few files per command under
// dist/bundle/<command>/, which bin/kiln loads for that command when the bundle is at least as new
// as the compiled tree. Node 20 pays ~0.5 ms per ES module it loads (resolve, open, read, compile,
// link); `kiln run` needs ~45 of them (its bundle: ~10 files), `kiln build` ~120 (~20). Nothing
// else changes: the same compiled code, the package's dependencies and Node's built-ins stay
// imports, every other command's module stays the compiled tree's (a bundled command never loads
// one), and the library (dist/index.js) is not bundled.
// Run by `npm run build` after tsc; written to a temporary directory, then renamed into place.
//
//   node scripts/bundle-cli.mjs
import { existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { rolldown } from "rolldown";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(repo, "dist");
const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));

/** The bundled commands, each with the module of src/cli/commands.ts's table that holds it. */
const BUNDLED = { run: "run-command.js", build: "build-command.js" };

function die(msg) {
  console.error(`bundle-cli: ${msg}`);
  process.exit(1);
}
if (!existsSync(join(dist, "cli", "main.js"))) die("dist/cli/main.js is missing: run tsc first (npm run build does both)");
const dependencies = Object.keys(pkg.dependencies ?? {});
const commandTable = join(dist, "cli", "commands.js");

async function bundle(command, module) {
  const out = join(dist, "bundle", command);
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const build = await rolldown({
    input: { main: join(dist, "cli", "main.js") },
    platform: "node",
    // Node's built-ins and the package's dependencies are loaded as they are (from node_modules)
    external: (id) => id.startsWith("node:") || dependencies.some((d) => id === d || id.startsWith(`${d}/`)),
    plugins: [
      {
        name: "kiln-bundle",
        resolveId(id, importer) {
          // the other commands' modules stay the compiled tree's (loaded only for those commands)
          if (importer === commandTable && id.startsWith("./") && id !== `./${module}`) return { id: `../../cli/${id.slice(2)}`, external: true };
          return null;
        },
        transform(code, id) {
          // the version is read from package.json beside dist/ (one level up from dist/version.js,
          // two from a bundle's file): the bundle carries the value it was built with
          if (id === join(dist, "version.js")) return { code: `export const VERSION = ${JSON.stringify(pkg.version)};\n` };
          return null;
        },
      },
    ],
    // (rolldown's notes on dynamic imports of modules also imported statically are expected here)
    onLog: (level, log) => {
      if (level === "warn" && log.code !== "INEFFECTIVE_DYNAMIC_IMPORT") console.error(`bundle-cli: ${command}: ${log.message}`);
    },
  });
  await build.write({ dir: tmp, format: "esm", entryFileNames: "[name].js", chunkFileNames: "[name]-[hash].js" });
  await build.close();
  if (!existsSync(join(tmp, "main.js"))) die(`${command}: rolldown wrote no main.js`);
  const old = `${out}.old-${process.pid}`;
  if (existsSync(out)) renameSync(out, old);
  renameSync(tmp, out);
  rmSync(old, { recursive: true, force: true });
}

for (const [command, module] of Object.entries(BUNDLED)) {
  if (!existsSync(join(dist, "cli", module))) die(`${command}: dist/cli/${module} is missing (src/cli/commands.ts names the command's module)`);
  if (!readFileSync(commandTable, "utf8").includes(`import("./${module}")`)) die(`${command}: dist/cli/commands.js does not import ./${module}`);
  await bundle(command, module);
}
