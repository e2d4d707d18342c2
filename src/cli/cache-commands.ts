// The blob store's upkeep: `kiln du` (disk usage and cache records) and `kiln prune` (cache
// records and the blobs only they use, by size or age).
import { UsageError } from "../errors.js";
import { formatBytes } from "../units.js";
import { many, one } from "./args.js";
import { cacheDirOption, type Command } from "./command.js";

export const duCommand: Command = {
  summary: "Show the blob store's disk usage and cache records",
  usage: "kiln du [--cache-dir DIR]",
  options: [cacheDirOption()],
  async run(args) {
    const { diskUsage } = await import("../cache/prune.js");
    const { BlobStore, defaultCacheDir } = await import("../store/blob-store.js");
    const u = await diskUsage(new BlobStore(one(args, "cache-dir") ?? defaultCacheDir()));
    process.stdout.write(
      `blobs: ${u.blobs} (${formatBytes(u.bytes)})\ncache records: ${u.cacheRecords}\nreclaimable: ${formatBytes(u.reclaimable)}\n` +
        `extracted layers: ${u.extractedLayers} (${formatBytes(u.extractedBytes)})\n`,
    );
    return 0;
  },
};

export const pruneCommand: Command = {
  summary: "Remove cache records and the blobs only they use",
  usage: "kiln prune [--keep-storage SIZE] [--filter until=DURATION] [--cache-dir DIR]",
  options: [
    { name: "keep-storage", type: "string", valueName: "SIZE", help: "keep up to SIZE (e.g. 10GB), removing least recently used first" },
    { name: "filter", type: "string", repeatable: true, valueName: "until=DURATION", help: "only remove what was last used more than DURATION ago (e.g. 24h)" },
    cacheDirOption(),
  ],
  async run(args) {
    const { prune, parseSize, parseDuration } = await import("../cache/prune.js");
    const { BlobStore, defaultCacheDir } = await import("../store/blob-store.js");
    let until: number | undefined;
    for (const f of many(args, "filter")) {
      const m = /^until=(.+)$/.exec(f);
      if (!m) throw new UsageError("USAGE", `--filter ${f}: kiln prune supports until=DURATION`);
      until = parseDuration(m[1]!);
    }
    const keep = one(args, "keep-storage");
    const r = await prune(new BlobStore(one(args, "cache-dir") ?? defaultCacheDir()), {
      ...(keep !== undefined ? { keepStorage: parseSize(keep) } : {}),
      ...(until !== undefined ? { until } : {}),
    });
    process.stdout.write(`removed ${r.removed} item(s), freed ${formatBytes(r.freed)}\n`);
    return 0;
  },
};
