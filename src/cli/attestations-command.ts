// `kiln attestations IMAGE`: the attestations stored with an image (a stored name,
// oci-layout://DIR[:TAG|@DIGEST] or a registry reference), per platform — the image manifest, its
// attestation manifest and each statement's predicate type and digest; `--format json` prints the
// statements themselves. Every statement is checked against its image as it is read
// (ATTESTATION_INVALID on a mismatch). Of a stored index pulled for some platforms, the others
// are listed as not pulled.
import { UsageError } from "../errors.js";
import { one, type ParsedArgs } from "./args.js";
import { cacheDirOption, pullOption, pullPolicy, registryFrom, registryOptions, type Command } from "./command.js";

/** Which predicate types `--type` keeps (SLSA provenance of any version, as BuildKit's v0.2 too). */
const PREDICATES: Record<string, (predicateType: string) => boolean> = {
  provenance: (t) => t.startsWith("https://slsa.dev/provenance/"),
  sbom: (t) => t === "https://spdx.dev/Document",
};

async function attestations(args: ParsedArgs): Promise<number> {
  if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln attestations: expected one IMAGE");
  const type = one(args, "type");
  if (type !== undefined && !(type in PREDICATES)) throw new UsageError("OPTION_INVALID", "--type must be provenance or sbom");
  const format = one(args, "format") ?? "text";
  if (format !== "text" && format !== "json") throw new UsageError("OPTION_INVALID", "--format must be text or json");
  const { resolve } = await import("node:path");
  const { defaultCacheDir } = await import("../store/blob-store.js");
  const { resolveRoot } = await import("../images/resolve.js");
  const { readAttestations } = await import("../attest/read.js");
  const { IN_TOTO_MEDIA_TYPE } = await import("../attest/statement.js");
  const { formatPlatform, parsePlatform } = await import("../image/platform.js");
  const platform = one(args, "platform");
  const wanted = platform !== undefined ? formatPlatform(parsePlatform(platform)) : undefined;
  const root = await resolveRoot(args.positionals[0]!, {
    ...registryFrom(args),
    cacheDir: resolve(one(args, "cache-dir") ?? defaultCacheDir()),
    pull: pullPolicy(args),
    wantBlob: (blob) => blob.mediaType === IN_TOTO_MEDIA_TYPE,
  });
  // a stored index may hold only the platforms pulled: the others are listed as not pulled
  const present = root.from === "store" ? storePresence(resolve(one(args, "cache-dir") ?? defaultCacheDir())) : undefined;
  const sets = (await readAttestations(root.root, root.blobs, present))
    .filter((s) => wanted === undefined || s.platform === wanted)
    .map((s) => ({ ...s, statements: s.statements.filter((x) => type === undefined || PREDICATES[type]!(x.predicateType)) }));
  if (format === "json") {
    const out = sets.map((s) => ({
      platform: s.platform,
      image: s.image,
      ...(s.manifest ? { attestationManifest: s.manifest } : {}),
      ...(s.notPulled ? { notPulled: true } : {}),
      statements: s.statements.map((x) => x.statement),
    }));
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  for (const s of sets) {
    process.stdout.write(`${s.platform || "(manifest)"}  ${s.image}\n`);
    if (s.notPulled) {
      process.stdout.write(`  not pulled (kiln pull --platform ${s.platform} fetches it)\n`);
      continue;
    }
    if (!s.manifest) {
      process.stdout.write("  no attestations\n");
      continue;
    }
    process.stdout.write(`  attestation manifest ${s.manifest}\n`);
    for (const x of s.statements) process.stdout.write(`  ${x.predicateType}  ${x.digest}\n`);
  }
  return 0;
}

/** Whether the local store holds a blob (what marks a stored index's platforms not pulled). */
function storePresence(cacheDir: string): (digest: import("../image/oci.js").Digest) => Promise<boolean> {
  let store: import("../store/blob-store.js").BlobStore | undefined;
  return async (digest) => {
    const { BlobStore } = await import("../store/blob-store.js");
    store ??= new BlobStore(cacheDir);
    return store.has(digest);
  };
}

export const attestationsCommand: Command = {
  summary: "Print an image's provenance and SBOM attestations, per platform",
  usage: "kiln attestations [OPTIONS] IMAGE   (a stored name, oci-layout://DIR[:TAG|@DIGEST] or a registry reference)",
  options: [
    { name: "type", type: "string", valueName: "TYPE", help: "only provenance or sbom statements" },
    { name: "format", type: "string", valueName: "FORMAT", help: "text (default: digests per platform) or json (the statements)" },
    { name: "platform", type: "string", valueName: "OS/ARCH", help: "only this platform's image" },
    pullOption,
    cacheDirOption(),
    ...registryOptions,
  ],
  run: attestations,
};
