// `kiln manifest create -t REF SRC...` (merge images and indexes into one index, pushed or written
// as an OCI layout, as `docker buildx imagetools create` does) and `kiln manifest inspect REF`
// (platforms, digests and sizes; --format json): flags to src/images/manifest-*.ts calls, and
// create's `--annotation [TYPE[PLATFORMS],...:]KEY=VALUE` read as imagetools reads it.
import { UsageError } from "../errors.js";
import type { IndexAnnotations } from "../images/manifest-merge.js";
import { parsePlatform } from "../image/platform.js";
import { many, one, parseCsv, type ParsedArgs } from "./args.js";
import { cacheDirOption, registryFrom, registryOptions, type Command } from "./command.js";
import { createTransferProgress } from "./progress.js";

async function storeOf(args: ParsedArgs): Promise<import("../store/blob-store.js").BlobStore> {
  const { BlobStore, defaultCacheDir } = await import("../store/blob-store.js");
  return new BlobStore(one(args, "cache-dir") ?? defaultCacheDir());
}

/** `TYPES:KEY`: TYPES a comma-separated list of `type` or `type[PLATFORM,...]` (buildx's form, `index,manifest-descriptor:KEY`). */
const TYPED_KEY = /^((?:[a-z-]+(?:\[[^\]:]*\])?)(?:,[a-z-]+(?:\[[^\]:]*\])?)*):(.*)$/;
const TYPE_ITEM = /([a-z-]+)(?:\[([^\]]*)\])?/g;

/**
 * `--annotation` values: `KEY=VALUE` and `index:KEY=VALUE` on the index, `manifest-descriptor:KEY=VALUE`
 * on every image entry, `manifest-descriptor[linux/amd64,linux/arm64]:KEY=VALUE` on those platforms';
 * several types at once as buildx writes them (`index,manifest-descriptor:KEY=VALUE`). A key whose
 * part before its first ":" is no type list (`com.example:x`) is a plain key, on the index.
 * imagetools' other types (`manifest:`, `index-descriptor:`) would change a child manifest or
 * describe no descriptor here: refused, as imagetools refuses them.
 */
export function parseIndexAnnotations(values: string[]): IndexAnnotations {
  const out: Required<IndexAnnotations> = { index: {}, descriptors: [] };
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq < 0) throw new UsageError("USAGE", `--annotation: expected [TYPE:]KEY=VALUE, got "${v}"`);
    const value = v.slice(eq + 1);
    const typed = TYPED_KEY.exec(v.slice(0, eq));
    const key = typed ? typed[2]! : v.slice(0, eq);
    if (key === "") throw new UsageError("USAGE", `--annotation: missing key in "${v}"`);
    const types = typed ? [...typed[1]!.matchAll(TYPE_ITEM)].map((m) => ({ type: m[1]!, platforms: m[2] })) : [{ type: "index", platforms: undefined }];
    for (const { type, platforms } of types) {
      if (type === "index") {
        if (platforms !== undefined) throw new UsageError("OPTION_INVALID", `--annotation ${v}: an index annotation takes no platform (there is one index)`);
        out.index[key] = value;
      } else if (type === "manifest-descriptor") {
        out.descriptors.push({ key, value, ...(platforms !== undefined ? { platforms: platforms.split(",").map((p) => parsePlatform(p.trim())) } : {}) });
      } else if (type === "manifest" || type === "index-descriptor") {
        throw new UsageError("OPTION_INVALID", `--annotation ${v}: ${type}: annotations are not supported by manifest create (a manifest annotation would change the source's digest); use KEY=VALUE or index: for the index, manifest-descriptor[PLATFORM]: for its entries`);
      } else {
        throw new UsageError("OPTION_INVALID", `--annotation ${v}: unknown annotation type "${type}" (index, manifest-descriptor)`);
      }
    }
  }
  return out;
}

async function create(args: ParsedArgs, sources: string[]): Promise<number> {
  const format = one(args, "format");
  if (format !== undefined && format !== "oci" && format !== "docker") throw new UsageError("OPTION_INVALID", "kiln manifest create: --format must be oci or docker");
  if (sources.length === 0) throw new UsageError("USAGE", "kiln manifest create: expected at least one SOURCE (see: kiln help manifest)");
  const tags = many(args, "tag");
  const outputs = many(args, "output");
  if (outputs.length > 1) throw new UsageError("USAGE", "kiln manifest create: at most one --output");
  let layout: { dest: string; tar: boolean; tags: string[] } | undefined;
  if (outputs.length === 1) {
    const { parseOutput } = await import("../engine/options.js");
    const spec = parseOutput(parseCsv(outputs[0]!, "output"), outputs[0]!);
    if (spec.type !== "oci") throw new UsageError("OPTION_INVALID", "kiln manifest create: --output takes type=oci,dest=DIR[,tar=true]");
    layout = { dest: spec.dest, tar: spec.tar, tags };
  }
  if (tags.length === 0 && !layout) throw new UsageError("USAGE", "kiln manifest create: give -t REF to push to, or --output type=oci,dest=DIR");
  const annotations = parseIndexAnnotations(many(args, "annotation"));
  const amend = args.flags.has("amend");
  const { createManifest } = await import("../images/manifest-create.js");
  const r = await createManifest({
    store: await storeOf(args),
    sources,
    ...(layout ? { layout } : { push: tags }),
    ...(format !== undefined ? { format } : {}),
    annotations,
    ...(amend ? { amend } : {}),
    ...registryFrom(args),
    ...(args.flags.has("quiet") ? {} : { onProgress: createTransferProgress() }),
  });
  if (!args.flags.has("quiet")) {
    for (const m of r.index.entries) process.stderr.write(`  ${m.attestation ? "attestation" : `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ""}`} ${m.descriptor.digest} (from ${m.source})\n`);
  }
  process.stdout.write(`${r.index.descriptor.digest}\n`);
  return 0;
}

async function inspect(args: ParsedArgs, refs: string[]): Promise<number> {
  const format = one(args, "format") ?? "text";
  if (format !== "text" && format !== "json") throw new UsageError("OPTION_INVALID", "kiln manifest inspect: --format must be text or json");
  if (refs.length !== 1) throw new UsageError("USAGE", "kiln manifest inspect: expected one REF");
  const { inspectManifest, formatInspected } = await import("../images/manifest-inspect.js");
  const r = await inspectManifest(refs[0]!, { store: await storeOf(args), ...registryFrom(args) });
  process.stdout.write(format === "json" ? `${JSON.stringify(r, null, 2)}\n` : formatInspected(r));
  return 0;
}

export const manifestCommand: Command = {
  summary: "Create a multi-platform index from images pushed separately, or inspect one",
  usage:
    "kiln manifest create -t REF [-t REF...] [--format oci|docker] [--annotation [TYPE:]K=V...] [--amend] SOURCE...  |  kiln manifest create --output type=oci,dest=DIR SOURCE...  |  kiln manifest inspect [--format text|json] REF\n" +
    "   (SOURCE and REF: a registry reference or oci-layout://DIR[:TAG|@DIGEST]; each source an image or an index)",
  options: [
    { name: "tag", short: "t", type: "string", repeatable: true, valueName: "REF", help: "create: push the index to REF (repeatable; with --output: its tags in the layout)" },
    { name: "output", short: "o", type: "string", repeatable: true, valueName: "SPEC", help: "create: type=oci,dest=DIR[,tar=true] instead of pushing" },
    { name: "format", type: "string", valueName: "FORMAT", help: "create: oci or docker (default docker when every source is Docker schema2, else oci); inspect: text or json" },
    { name: "annotation", type: "string", repeatable: true, valueName: "[TYPE:]K=V", help: "create: an annotation on the index (K=V, index:K=V) or its entries (manifest-descriptor:K=V, manifest-descriptor[linux/arm64,...]:K=V), or both (index,manifest-descriptor:K=V); repeatable" },
    { name: "amend", type: "boolean", help: "create: add to the index already at the target (first -t, or -t in the --output layout), replacing same-platform entries" },
    { name: "quiet", short: "q", type: "boolean", help: "no progress output" },
    cacheDirOption("blob store (manifests and configs read are kept there)"),
    ...registryOptions,
  ],
  async run(args) {
    const [sub, ...rest] = args.positionals;
    if (sub === "create") return create(args, rest);
    if (sub === "inspect") return inspect(args, rest);
    throw new UsageError("USAGE", `kiln manifest: expected create or inspect${sub ? `, not "${sub}"` : ""} (see: kiln help manifest)`);
  },
};
