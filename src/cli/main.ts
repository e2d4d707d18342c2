// kiln's command line: dispatches `kiln COMMAND` through the command table of commands.ts, which
// loads only the module of the command given (build-command.ts, push-command.ts, pull-command.ts,
// lint-command.ts, verify-command.ts, cache-commands.ts: du and prune, login-commands.ts,
// doctor-command.ts, image-commands.ts: images, tag and rmi, run-command.ts,
// attestations-command.ts, manifest-command.ts), prints help and the version; failures print as
// one line with the exit code and hints of src/cli/exit.ts (0 success, 1 build or input error, 2
// usage error; a build interrupted by SIGINT/SIGTERM prints "interrupted" and exits 130/143; kiln
// run: 125). checkCommandLine (the same parsing without running) is in check.ts.
import { KilnError, UsageError } from "../errors.js";
import { VERSION } from "../version.js";
import { formatOptionHelp, parseArgs } from "./args.js";
import type { Command } from "./command.js";
import { COMMANDS, loadCommand, loadCommands } from "./commands.js";

/** One command's help (its summary, usage and options). */
export function commandHelp(c: Command): string {
  return `${c.summary}\n\nUsage: ${c.usage}\n${c.options.length > 0 ? `\nOptions:\n${formatOptionHelp(c.options)}\n` : ""}`;
}

/** `kiln help`: every command with its summary. */
async function overview(): Promise<string> {
  const commands = await loadCommands();
  const width = Math.max(8, ...commands.map(([n]) => n.length));
  const rows = [...commands.map(([n, c]) => `  ${n.padEnd(width)} ${c.summary}`), `  ${"help".padEnd(width)} Show help for a command`];
  return `kiln ${VERSION}: a daemonless container image builder\n\nUsage: kiln COMMAND [OPTIONS]\n\nCommands:\n${rows.join("\n")}\n\nRun 'kiln help COMMAND' for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const known = name !== undefined && Object.hasOwn(COMMANDS, name);
  try {
    if (name === undefined || name === "help" || name === "--help" || name === "-h") {
      const topic = name === "help" ? rest[0] : undefined;
      const loading = topic ? loadCommand(topic) : undefined;
      if (topic && !loading) throw new UsageError("USAGE", `kiln help: unknown command "${topic}"`);
      process.stdout.write(loading ? commandHelp(await loading) : await overview());
      return name === undefined ? 2 : 0;
    }
    if (name === "--version" || name === "version") {
      process.stdout.write(`kiln ${VERSION}\n`);
      return 0;
    }
    const loading = loadCommand(name);
    if (!loading) throw new UsageError("USAGE", `kiln: unknown command "${name}" (see: kiln help)`);
    const cmd = await loading;
    if (cmd.interspersed !== false && (rest.includes("--help") || rest.includes("-h"))) {
      process.stdout.write(commandHelp(cmd));
      return 0;
    }
    const args = parseArgs(rest, cmd.options, name, { stopAtPositional: cmd.interspersed === false, ...(cmd.hints ? { hints: cmd.hints } : {}) });
    if (cmd.interspersed === false && args.flags.has("help")) {
      process.stdout.write(commandHelp(cmd));
      return 0;
    }
    return await cmd.run(args);
  } catch (err) {
    const { describeError, exitCodeFor } = await import("./exit.js"); // only a failure needs it
    process.stderr.write(`error: ${describeError(err)}\n`);
    if (!(err instanceof KilnError) && process.env.KILN_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ""}\n`);
    return exitCodeFor(err, known ? name : undefined);
  }
}
