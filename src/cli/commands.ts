// The table of kiln's subcommands: each name with the loader of the module that holds its code,
// so a command line loads only its own command (`kiln run` none of build's flag parsing, progress
// views or output specs). The order is `kiln help`'s.
import type { Command } from "./command.js";

export const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  build: async () => (await import("./build-command.js")).buildCommand,
  push: async () => (await import("./push-command.js")).pushCommand,
  pull: async () => (await import("./pull-command.js")).pullCommand,
  lint: async () => (await import("./lint-command.js")).lintCommand,
  verify: async () => (await import("./verify-command.js")).verifyCommand,
  du: async () => (await import("./cache-commands.js")).duCommand,
  prune: async () => (await import("./cache-commands.js")).pruneCommand,
  login: async () => (await import("./login-commands.js")).loginCommand,
  doctor: async () => (await import("./doctor-command.js")).doctorCommand,
  logout: async () => (await import("./login-commands.js")).logoutCommand,
  // the local image store's commands
  images: async () => (await import("./image-commands.js")).imageCommands.images!,
  tag: async () => (await import("./image-commands.js")).imageCommands.tag!,
  rmi: async () => (await import("./image-commands.js")).imageCommands.rmi!,
  inspect: async () => (await import("./image-commands.js")).imageCommands.inspect!,
  history: async () => (await import("./image-commands.js")).imageCommands.history!,
  run: async () => (await import("./run-command.js")).runCommand,
  attestations: async () => (await import("./attestations-command.js")).attestationsCommand,
  manifest: async () => (await import("./manifest-command.js")).manifestCommand,
};

/** The command called `name`, loaded; undefined for a name kiln does not know. */
export function loadCommand(name: string): Promise<Command> | undefined {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name]!() : undefined;
}

/** Every command, loaded, in the table's order (for `kiln help` and checkCommandLine). */
export async function loadCommands(): Promise<Array<[string, Command]>> {
  return Promise.all(Object.entries(COMMANDS).map(async ([name, load]): Promise<[string, Command]> => [name, await load()]));
}
