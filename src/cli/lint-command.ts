// `kiln lint`: a Dockerfile checked without building (parse, type, plan); one line per finding,
// exit 1 when there is an error.
import { readFile } from "node:fs/promises";
import { buffer } from "node:stream/consumers";
import { KilnError } from "../errors.js";
import { keyValues, many, one } from "./args.js";
import type { Command } from "./command.js";

export const lintCommand: Command = {
  summary: "Check a Dockerfile without building (parse, type, plan)",
  usage: "kiln lint [-f] DOCKERFILE",
  options: [
    { name: "file", short: "f", type: "string", valueName: "PATH", help: "the Dockerfile (or give it as the argument; - reads stdin)" },
    { name: "build-arg", type: "string", repeatable: true, valueName: "K=V", help: "build arguments to check against" },
    { name: "target", type: "string", valueName: "STAGE", help: "target stage" },
  ],
  async run(args) {
    const path = one(args, "file") ?? args.positionals[0] ?? "Dockerfile";
    const text = path === "-" ? (await buffer(process.stdin)).toString("utf8") : await readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => {
      throw new KilnError("DOCKERFILE_READ", `cannot read ${path}: ${e.code ?? e.message}`);
    });
    const { lintDockerfile } = await import("../frontend/lint.js");
    const diags = lintDockerfile(text, {
      file: path === "-" ? "Dockerfile" : path,
      buildArgs: keyValues(many(args, "build-arg"), "build-arg", (k) => process.env[k]),
      ...(one(args, "target") ? { target: one(args, "target")! } : {}),
    });
    for (const d of diags) {
      process.stdout.write(`${d.file}${d.line > 0 ? `:${d.line}` : ""}: ${d.severity}: ${d.message} [${d.rule}]\n`);
    }
    const errors = diags.filter((d) => d.severity === "error").length;
    process.stderr.write(`${errors} error(s), ${diags.length - errors} warning(s)\n`);
    return errors > 0 ? 1 : 0;
  },
};
