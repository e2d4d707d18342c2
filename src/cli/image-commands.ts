// The local image store's commands: `kiln images`, `kiln tag`, `kiln rmi`, and the store side of
// `kiln push` (a stored name as the source). Names are normalized as src/images/name.ts does;
// removing a name leaves its blobs to the next `kiln prune`.
import { KilnError, UsageError } from "../errors.js";
import { normalizeName } from "../images/name.js";
import { formatBytes } from "../units.js";
import { one, type ParsedArgs } from "./args.js";
import { cacheDirOption, type Command } from "./command.js";

async function cacheDir(args: ParsedArgs): Promise<string> {
  const { defaultCacheDir } = await import("../store/blob-store.js");
  const { resolve } = await import("node:path");
  return resolve(one(args, "cache-dir") ?? defaultCacheDir());
}

function age(created: string | undefined, now: number): string {
  if (!created) return "-";
  const s = Math.max(0, Math.round((now - Date.parse(created)) / 1000));
  if (!Number.isFinite(s)) return "-";
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
      if (format !== "table" && format !== "json") throw new UsageError("--format must be table or json");
      if (args.positionals.length > 0) throw new UsageError("kiln images: takes no arguments");
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
      if (args.positionals.length !== 2) throw new UsageError("kiln tag: expected SOURCE and TARGET");
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
      await setName(dir, target, img.source.manifest);
      return 0;
    },
  },
  rmi: {
    summary: "Remove names from the local store (their blobs go at the next kiln prune)",
    usage: "kiln rmi NAME [NAME...]",
    options: [cacheDirOption()],
    async run(args) {
      if (args.positionals.length === 0) throw new UsageError("kiln rmi: expected at least one NAME");
      const dir = await cacheDir(args);
      const { removeName } = await import("../store/names.js");
      const missing: string[] = [];
      for (const raw of args.positionals) {
        const name = normalizeName(raw, "kiln rmi:");
        if (await removeName(dir, name)) process.stdout.write(`Untagged: ${name}\n`);
        else missing.push(name);
      }
      if (missing.length > 0) throw new KilnError(`kiln rmi: no such image: ${missing.join(", ")}`);
      return 0;
    },
  },
};

/** `kiln push NAME [REF...]` from the store: the name's manifest or index, to REFs (default: NAME). */
export async function pushStored(args: ParsedArgs, src: string, refs: string[], options: import("../registry/push.js").PushOptions): Promise<{ digest: string; refs: string[] }> {
  const dir = await cacheDir(args);
  const name = normalizeName(src, "kiln push:");
  const { getName } = await import("../store/names.js");
  const rec = await getName(dir, name);
  if (!rec) throw new KilnError(`kiln push: ${src} is neither a stored image (see kiln images) nor an OCI layout directory`);
  const { BlobStore } = await import("../store/blob-store.js");
  const { pushRoot, storeSource } = await import("../registry/push.js");
  const store = new BlobStore(dir);
  const to = refs.length > 0 ? refs : [name];
  const r = await pushRoot(storeSource(store), rec.target, to, { store, ...options });
  return { digest: r.digest, refs: to };
}
