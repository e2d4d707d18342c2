// `kiln pull`: an image from a registry into the local store under its name (or, with
// --output type=oci, into an OCI layout). The name records what the reference names, an index
// too (as docker and podman keep it), with only the selected platform's blobs and the attestation
// manifest attached to it downloaded; the digest the name records is printed (with --output, the
// digest of the platform manifest the layout holds).
import { UsageError } from "../errors.js";
import { many, one, parseCsv } from "./args.js";
import { createTransferProgress } from "./progress.js";
import { cacheDirOption, credentialOptions, registryFrom, registryOptions, type Command } from "./command.js";
import { parseOutput } from "../engine/options.js";

export const pullCommand: Command = {
  summary: "Pull an image from a registry into the local store (or an OCI layout)",
  usage: "kiln pull [OPTIONS] REF [--output type=oci,dest=DIR]",
  options: [
    { name: "output", short: "o", type: "string", valueName: "SPEC", help: "type=oci,dest=DIR[,tar=true] (default: store only)" },
    { name: "platform", type: "string", valueName: "OS/ARCH", help: "platform to pick from an index (default: host)" },
    { name: "quiet", short: "q", type: "boolean", help: "no progress output" },
    cacheDirOption(),
    ...registryOptions,
    ...credentialOptions,
  ],
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln pull: expected one REF");
    const ref = args.positionals[0]!;
    const { pullImage } = await import("../registry/pull.js");
    const { BlobStore, defaultCacheDir } = await import("../store/blob-store.js");
    const { hostPlatform, parsePlatform } = await import("../image/platform.js");
    const store = new BlobStore(one(args, "cache-dir") ?? defaultCacheDir());
    const platform = one(args, "platform") ? parsePlatform(one(args, "platform")!) : hostPlatform();
    const outputs = many(args, "output").map((o) => {
      const spec = parseOutput(parseCsv(o, "output"), o);
      if (spec.type !== "oci") throw new UsageError("USAGE", "kiln pull: only --output type=oci is supported");
      return spec;
    });
    const r = await pullImage(ref, { store, platform, pull: "always", attestations: outputs.length === 0, ...registryFrom(args, [ref]), ...(args.flags.has("quiet") ? {} : { onProgress: createTransferProgress() }) });
    if (outputs.length === 0 && !r.reference.digest) {
      // no --output: the image is kept in the local store under its name (kiln images, kiln run)
      const { setName } = await import("../store/names.js");
      const { familiarName } = await import("../image/reference.js");
      const { resolve } = await import("node:path");
      await setName(resolve(store.root), familiarName(r.reference), r.root);
    }
    for (const spec of outputs) {
      const { writeOciLayout } = await import("../output/oci-layout.js");
      await writeOciLayout(r.source, { dest: spec.dest, tar: spec.tar, tags: [ref] });
    }
    process.stdout.write(`${(outputs.length === 0 ? r.root : r.manifestDescriptor).digest}\n`);
    return 0;
  },
};
