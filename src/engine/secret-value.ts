// The bytes of a `--secret id=...` (a file, or an environment variable), read when a step or a
// git fetch needs them; undefined when the build was not given that id.
import { readFile } from "node:fs/promises";
import { KilnError } from "../errors.js";
import type { EngineConfig } from "./config.js";

export async function secretValue(config: EngineConfig, id: string): Promise<Buffer | undefined> {
  const given = config.secrets[id];
  if (!given) return undefined;
  if (given.src !== undefined) {
    return readFile(given.src).catch((e: NodeJS.ErrnoException) => {
      throw new KilnError("RUN_SECRET_UNREADABLE", `secret "${id}": cannot read its source file (${e.code ?? e.message})`);
    });
  }
  const v = process.env[given.env ?? id];
  if (v === undefined) throw new KilnError("RUN_SECRET_UNREADABLE", `secret "${id}": environment variable ${given.env ?? id} is not set`);
  return Buffer.from(v, "utf8");
}
