// `kiln verify`: an OCI image layout checked (blobs, digests, diff_ids, history, attestation subjects).
import { UsageError } from "../errors.js";
import type { Command } from "./command.js";

export const verifyCommand: Command = {
  summary: "Check an OCI image layout: blobs, digests, diff_ids, history, attestation subjects",
  usage: "kiln verify LAYOUT",
  options: [],
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln verify: expected one LAYOUT directory");
    const { verifyLayout } = await import("../output/verify.js");
    const r = await verifyLayout(args.positionals[0]!);
    process.stdout.write(`ok: ${r.manifests} manifest(s), ${r.blobs} blob(s) verified\n`);
    return 0;
  },
};
