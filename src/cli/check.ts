// checkCommandLine: a kiln command line read as `main` reads it, without running anything, for the
// tests that check the command lines of examples, docs and CI files. It loads every command (once,
// when this module is imported), which a real command line never does.
import { UsageError } from "../errors.js";
import { parseArgs } from "./args.js";
import { buildRequest, type BuildRequest } from "./build-args.js";
import { loadCommands } from "./commands.js";

const commands = new Map(await loadCommands());

/**
 * Checks a command line as `main` would read it, without running anything: the command exists,
 * its options parse, and for `kiln build` every value the command line alone decides (see
 * build-args.ts). Throws the UsageError `main` would print; used to check example and CI files.
 * Returns what a `kiln build` line asks for.
 */
export function checkCommandLine(argv: string[]): BuildRequest | undefined {
  const [name, ...rest] = argv;
  if (name === undefined) throw new UsageError("USAGE", "kiln: no command (see: kiln help)");
  if (["help", "--help", "-h", "--version", "version"].includes(name)) return undefined;
  const cmd = commands.get(name);
  if (!cmd) throw new UsageError("USAGE", `kiln: unknown command "${name}" (see: kiln help)`);
  const args = parseArgs(rest, cmd.options, name, { ...(cmd.hints ? { hints: cmd.hints } : {}) });
  return name === "build" ? buildRequest(args) : undefined;
}
