// `kiln login` and `kiln logout`: a registry's credentials written to (and removed from) Docker's config.json.
import { buffer } from "node:stream/consumers";
import { UsageError } from "../errors.js";
import { one } from "./args.js";
import { registryFrom, registryOptions, type Command } from "./command.js";

export const loginCommand: Command = {
  summary: "Log in to a registry (writes Docker's config.json)",
  usage: "kiln login REGISTRY -u USER --password-stdin",
  options: [
    { name: "username", short: "u", type: "string", valueName: "USER", help: "user name" },
    { name: "password-stdin", type: "boolean", help: "read the password from stdin" },
    ...registryOptions,
  ],
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln login: expected one REGISTRY");
    const user = one(args, "username");
    if (!user) throw new UsageError("USAGE", "kiln login: -u USER is required");
    if (!args.flags.has("password-stdin")) throw new UsageError("USAGE", "kiln login: give the password with --password-stdin");
    const password = (await buffer(process.stdin)).toString("utf8").replace(/\r?\n$/, "");
    const { login } = await import("../registry/login.js");
    await login(args.positionals[0]!, user, password, registryFrom(args));
    process.stderr.write("Login Succeeded\n");
    return 0;
  },
};

export const logoutCommand: Command = {
  summary: "Remove a registry's credentials from Docker's config.json",
  usage: "kiln logout REGISTRY",
  options: [],
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln logout: expected one REGISTRY");
    const { logout } = await import("../registry/login.js");
    await logout(args.positionals[0]!);
    process.stderr.write(`Removed login credentials for ${args.positionals[0]}\n`);
    return 0;
  },
};
