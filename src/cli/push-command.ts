// `kiln push`: a stored image (by name; --platform picks one platform's image of a stored index)
// or an OCI image layout to one or more registry references, with transfer progress; the pushed
// digest is printed (and written to --digest-file, --metadata-file).
import { writeFileAtomic } from "../store/atomic-file.js";
import { UsageError } from "../errors.js";
import { intOption, one, type ParsedArgs } from "./args.js";
import { createTransferProgress } from "./progress.js";
import { pushStored } from "./image-commands.js";
import { cacheDirOption, credentialOptions, registryFrom, registryOptions, type Command } from "./command.js";

export const pushCommand: Command = {
  summary: "Push a stored image or an OCI image layout to a registry",
  usage: "kiln push [OPTIONS] NAME [REF...] | LAYOUT[:TAG|@DIGEST] REF [REF...]   (LAYOUT: a directory or oci-layout://DIR)",
  options: [
    { name: "chunk-size", type: "string", valueName: "BYTES", help: "upload blobs in PATCH chunks of this size" },
    { name: "digest-file", type: "string", valueName: "FILE", help: "write the pushed digest to FILE" },
    { name: "metadata-file", type: "string", valueName: "FILE", help: "write push metadata JSON to FILE" },
    { name: "platform", type: "string", valueName: "OS/ARCH", help: "of a stored index, push only this platform's image manifest" },
    { name: "quiet", short: "q", type: "boolean", help: "no progress output" },
    cacheDirOption("local image store (and pull records for cross-repo mounts)"),
    ...registryOptions,
    ...credentialOptions,
  ],
  async run(args) {
    if (args.positionals.length < 1) throw new UsageError("USAGE", "kiln push: expected NAME or LAYOUT[:TAG] (see: kiln help push)");
    const [src, ...refs] = args.positionals as [string, ...string[]];
    const chunk = intOption(args, "chunk-size", 1, Number.MAX_SAFE_INTEGER);
    const quiet = args.flags.has("quiet");
    const { BlobStore, defaultCacheDir } = await import("../store/blob-store.js");
    const pushOptions = {
      ...registryFrom(args, refs.length > 0 ? refs : [src]),
      ...(chunk !== undefined ? { chunkSize: chunk } : {}),
      ...(quiet ? {} : { onProgress: createTransferProgress() }),
    };
    const { isLayoutArgument, splitLayoutArgument } = await import("../images/resolve.js");
    // a layout (oci-layout://DIR, or a directory holding one), else a stored name
    const asLayout = splitLayoutArgument(src);
    const layoutDir = isLayoutArgument(src) || (await isLayoutDir(asLayout.dir)) ? asLayout : undefined;
    let digest: string;
    let to = refs;
    if (layoutDir) {
      if (refs.length === 0) throw new UsageError("USAGE", "kiln push: pushing a layout needs at least one REF");
      if (one(args, "platform") !== undefined) throw new UsageError("USAGE", "kiln push: --platform is for a stored NAME (select a layout's image with LAYOUT@DIGEST)");
      const { pushLayout } = await import("../registry/push.js");
      digest = (await pushLayout(layoutDir.dir, layoutDir.selector, refs, { store: new BlobStore(one(args, "cache-dir") ?? defaultCacheDir()), ...pushOptions })).digest;
    } else {
      ({ digest, refs: to } = await pushStored(args, src, refs, pushOptions));
    }
    await writeDigestFiles(args, digest, to);
    process.stdout.write(`${digest}\n`);
    return 0;
  },
};

async function isLayoutDir(dir: string): Promise<boolean> {
  const { stat } = await import("node:fs/promises");
  return stat(`${dir}/oci-layout`).then((st) => st.isFile(), () => false);
}


async function writeDigestFiles(args: ParsedArgs, digest: string, refs: string[]): Promise<void> {
  const df = one(args, "digest-file");
  if (df) await writeFileAtomic(df, digest);
  const mf = one(args, "metadata-file");
  if (mf) await writeFileAtomic(mf, JSON.stringify({ "containerimage.digest": digest, "image.name": refs.join(",") }, null, 2) + "\n");
}
