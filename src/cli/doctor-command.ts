// `kiln doctor`: what this host offers kiln (isolation modes, tools, how to install what is missing), as text or JSON.
import { UsageError } from "../errors.js";
import { one } from "./args.js";
import { cacheDirOption, type Command } from "./command.js";

export const doctorCommand: Command = {
  summary: "Check what this host offers kiln: isolation modes, tools, and how to install what is missing",
  usage: "kiln doctor [--format text|json] [--cache-dir DIR]",
  options: [
    { name: "format", type: "string", valueName: "FORMAT", help: "text (default) or json" },
    cacheDirOption("where builds would work (the overlay probe runs there)"),
  ],
  async run(args) {
    const format = one(args, "format") ?? "text";
    if (format !== "text" && format !== "json") throw new UsageError("USAGE", "--format must be text or json");
    const { doctor, formatDoctor } = await import("../doctor/doctor.js");
    const { defaultCacheDir } = await import("../store/blob-store.js");
    const report = await doctor(one(args, "cache-dir") ?? defaultCacheDir());
    process.stdout.write(format === "json" ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report));
    return report.runIsolation ? 0 : 1;
  },
};
