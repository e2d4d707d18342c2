#!/usr/bin/env node
// Fetches an official Node.js binary from the npm registry (the `node-linux-<arch>` package that the
// `node` package installs) into DIR and prints the directory holding `node`, for CI runs of the
// suite on another Node line:  PATH="$(node scripts/node-dist.mjs 24 /tmp/node24):$PATH" npm test
// Reuses DIR when it already holds that major version. Errors: one line, exit 1.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const [major, dirArg] = process.argv.slice(2);
if (!major || !/^\d+$/.test(major) || !dirArg) {
  console.error("usage: node scripts/node-dist.mjs MAJOR DIR");
  process.exit(2);
}
const dir = resolve(dirArg);
const bin = join(dir, "package", "bin");
const arch = { x64: "x64", arm64: "arm64" }[process.arch];
try {
  if (!arch) throw new Error(`no node-linux package for architecture ${process.arch}`);
  const have = existsSync(join(bin, "node")) ? execFileSync(join(bin, "node"), ["--version"], { encoding: "utf8" }).trim() : "";
  if (!have.startsWith(`v${major}.`)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    execFileSync("npm", ["pack", "--silent", `node-linux-${arch}@${major}`], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
    const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
    if (!tgz) throw new Error(`npm pack node-linux-${arch}@${major} gave no tarball`);
    execFileSync("tar", ["-xzf", tgz], { cwd: dir });
    rmSync(join(dir, tgz));
  }
  const version = execFileSync(join(bin, "node"), ["--version"], { encoding: "utf8" }).trim();
  if (!version.startsWith(`v${major}.`)) throw new Error(`fetched node is ${version}, not ${major}.x`);
  process.stdout.write(`${bin}\n`);
} catch (err) {
  console.error(`node-dist: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
