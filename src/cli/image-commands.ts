// The local image store's commands: `kiln images`, `kiln tag`, `kiln rmi`, `kiln inspect`,
// `kiln history` (any image argument), and the store side of `kiln push` (a stored name as the source). Names are normalized as src/images/name.ts does;
// removing a name leaves its blobs to the next `kiln prune`.
import { KilnError, UsageError } from "../errors.js";
import { isIndexType } from "../image/oci.js";
import { normalizeName } from "../images/name.js";
import { formatBytes } from "../units.js";
import { one, type ParsedArgs } from "./args.js";
import { cacheDirOption, pullOption, pullPolicy, registryFrom, registryOptions, type Command } from "./command.js";

async function cacheDir(args: ParsedArgs): Promise<string> {
  const { defaultCacheDir } = await import("../store/blob-store.js");
  const { resolve } = await import("node:path");
  return resolve(one(args, "cache-dir") ?? defaultCacheDir());
}

function age(created: string | undefined, now: number): string {
  if (!created) return "-";
  const s = Math.max(0, Math.round((now - Date.parse(created)) / 1000));
  if (!Number.isFinite(s)) return "-";
  if (s < 2) return "1 second ago";
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} hours ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export const imageCommands: Record<string, Command> = {
  images: {
    summary: "List the images in the local store (by name)",
    usage: "kiln images [--format table|json] [--cache-dir DIR]",
    options: [{ name: "format", type: "string", valueName: "FORMAT", help: "table (default) or json (one array)" }, cacheDirOption()],
    async run(args) {
      const format = one(args, "format") ?? "table";
      if (format !== "table" && format !== "json") throw new UsageError("OPTION_INVALID", "--format must be table or json");
      if (args.positionals.length > 0) throw new UsageError("USAGE", "kiln images: takes no arguments");
      const { listImages } = await import("../images/list.js");
      const rows = await listImages(await cacheDir(args));
      if (format === "json") {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return 0;
      }
      const now = Date.now();
      const table = [["NAME", "DIGEST", "PLATFORM", "SIZE", "CREATED"], ...rows.map((r) => [
        r.name,
        r.digest.slice(0, 19),
        r.platforms.join(",") || "-",
        formatBytes(r.size) + (r.complete ? "" : " (incomplete)"),
        age(r.created, now),
      ])];
      const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
      for (const row of table) process.stdout.write(`${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("   ")}\n`);
      return 0;
    },
  },
  tag: {
    summary: "Give a stored image another name",
    usage: "kiln tag SOURCE TARGET   (SOURCE: a stored name, NAME@sha256:... or oci-layout://DIR[:TAG])",
    options: [cacheDirOption()],
    async run(args) {
      if (args.positionals.length !== 2) throw new UsageError("USAGE", "kiln tag: expected SOURCE and TARGET");
      const [src, dst] = args.positionals as [string, string];
      const target = normalizeName(dst, "kiln tag: target");
      const dir = await cacheDir(args);
      const { resolveImage, isLayoutArgument } = await import("../images/resolve.js");
      const { setName } = await import("../store/names.js");
      const img = await resolveImage(src, { cacheDir: dir, pull: "never" });
      if (isLayoutArgument(src)) {
        // the layout's blobs join the store, so the name stays valid when the layout goes
        const { BlobStore } = await import("../store/blob-store.js");
        const store = new BlobStore(dir);
        for (const d of [img.source.manifest, img.source.config, ...img.source.layers]) {
          if (!(await store.has(d.digest))) await store.ingest(img.source.open(d.digest), { digest: d.digest, size: await img.source.size(d.digest) });
        }
      }
      // a stored name's whole record (an index too, whatever of it was pulled), else the layout's manifest
      await setName(dir, target, img.root ?? img.source.manifest);
      return 0;
    },
  },
  rmi: {
    summary: "Remove names from the local store (their blobs go at the next kiln prune)",
    usage: "kiln rmi NAME [NAME...]",
    options: [cacheDirOption()],
    async run(args) {
      if (args.positionals.length === 0) throw new UsageError("USAGE", "kiln rmi: expected at least one NAME");
      const dir = await cacheDir(args);
      const { removeName } = await import("../store/names.js");
      const missing: string[] = [];
      for (const raw of args.positionals) {
        const name = normalizeName(raw, "kiln rmi:");
        if (await removeName(dir, name)) process.stdout.write(`Untagged: ${name}\n`);
        else missing.push(name);
      }
      if (missing.length > 0) throw new KilnError("IMAGE_NOT_LOCAL", `kiln rmi: no such image: ${missing.join(", ")}`);
      return 0;
    },
  },
};

/**
 * `kiln push NAME [REF...]` from the store: the name's manifest or index, to REFs (default: NAME).
 * An index is pushed whole, or refused naming the platforms not pulled; `--platform` pushes the
 * one platform's image manifest selected from it instead.
 */
export async function pushStored(args: ParsedArgs, src: string, refs: string[], options: import("../registry/push.js").PushOptions): Promise<{ digest: string; refs: string[] }> {
  const dir = await cacheDir(args);
  const name = normalizeName(src, "kiln push:");
  const { getName } = await import("../store/names.js");
  const rec = await getName(dir, name);
  if (!rec) throw new KilnError("IMAGE_NOT_LOCAL", `kiln push: ${src} is neither a stored image (see kiln images) nor an OCI layout directory`);
  const { BlobStore } = await import("../store/blob-store.js");
  const { pushRoot, storeSource } = await import("../registry/push.js");
  const store = new BlobStore(dir);
  const to = refs.length > 0 ? refs : [name];
  const { missingPlatforms } = await import("../image/stored-blobs.js");
  const platform = one(args, "platform");
  if (platform !== undefined && isIndexType(rec.target.mediaType)) {
    const { parsePlatform } = await import("../image/platform.js");
    const { storedPlatformManifest } = await import("../images/resolve.js");
    const manifest = await storedPlatformManifest(store, rec.target, parsePlatform(platform), name);
    const r = await pushRoot(storeSource(store), manifest, to, { store, ...options });
    return { digest: r.digest, refs: to };
  }
  if (isIndexType(rec.target.mediaType) && (await store.has(rec.target.digest))) {
    // an index pulled for some platforms: pushing it would claim blobs the store does not hold
    const missing = await missingPlatforms(store, await store.readJSON(rec.target.digest));
    if (missing.length > 0) {
      const several = missing.length > 1;
      throw new KilnError(
        "BLOB_MISSING",
        `kiln push: ${name}: platform${several ? "s" : ""} ${missing.join(", ")} of its index ${several ? "were" : "was"} not pulled (kiln pull downloads one platform); ` +
          `kiln pull --platform ${missing[0]} ${name} fetches ${several ? "one" : "it"}, kiln push --platform PLATFORM pushes one platform's image`,
      );
    }
  }
  const r = await pushRoot(storeSource(store), rec.target, to, { store, ...options });
  return { digest: r.digest, refs: to };
}

const imageArgOptions = [
  { name: "platform", type: "string" as const, valueName: "OS/ARCH", help: "the platform to pick from an index (default: host)" },
  pullOption,
  cacheDirOption(),
  ...registryOptions,
];

async function resolveArg(args: ParsedArgs, what: string): Promise<import("../images/resolve.js").ResolvedImage> {
  if (args.positionals.length !== 1) throw new UsageError("USAGE", `kiln ${what}: expected one IMAGE`);
  const { resolveImage } = await import("../images/resolve.js");
  const platform = one(args, "platform");
  const { parsePlatform } = await import("../image/platform.js");
  return resolveImage(args.positionals[0]!, { ...registryFrom(args), cacheDir: await cacheDir(args), pull: pullPolicy(args), ...(platform ? { platform: parsePlatform(platform) } : {}) });
}

imageCommands.inspect = {
  summary: "Print an image's manifest and config (JSON)",
  usage: "kiln inspect [OPTIONS] IMAGE   (a stored name, oci-layout://DIR[:TAG] or a registry reference)",
  options: imageArgOptions,
  async run(args) {
    const img = await resolveArg(args, "inspect");
    const { inspectImage } = await import("../images/inspect.js");
    process.stdout.write(`${JSON.stringify({ name: img.name, ...(await inspectImage(img.source)) }, null, 2)}\n`);
    return 0;
  },
};

imageCommands.history = {
  summary: "Show an image's layers with what created them and their size",
  usage: "kiln history [OPTIONS] IMAGE",
  options: [
    { name: "format", type: "string", valueName: "FORMAT", help: "table (default) or json" },
    { name: "no-trunc", type: "boolean", help: "do not truncate CREATED BY" },
    ...imageArgOptions,
  ],
  async run(args) {
    const format = one(args, "format") ?? "table";
    if (format !== "table" && format !== "json") throw new UsageError("OPTION_INVALID", "--format must be table or json");
    const img = await resolveArg(args, "history");
    const { imageHistory } = await import("../images/inspect.js");
    const rows = await imageHistory(img.source);
    if (format === "json") {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return 0;
    }
    const now = Date.now();
    const trunc = (s: string): string => (args.flags.has("no-trunc") || s.length <= 60 ? s : `${s.slice(0, 59)}…`);
    const table = [["LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"], ...rows.map((r) => [
      r.layer ? r.layer.slice(7, 19) : "-",
      age(r.created, now),
      trunc(r.createdBy.replace(/\s+/g, " ")),
      formatBytes(r.size),
      r.comment ?? "",
    ])];
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    for (const row of table) process.stdout.write(`${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("   ").trimEnd()}\n`);
    return 0;
  },
};
