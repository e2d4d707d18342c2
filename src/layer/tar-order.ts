// The order and consistency of a layer's entries: every path is relative and clean, none comes
// twice, entries are sorted in tar order (compareLayerPaths: whiteouts first in each directory),
// and every hard link points at an entry earlier in the tar that carries the content.
import { KilnError } from "../errors.js";
import type { LayerEntry } from "./entry.js";
import { compareLayerPaths } from "./order.js";

/** The entries checked and in tar order, hard links rewritten to point backwards. */
export async function collectAndOrder(entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>): Promise<LayerEntry[]> {
  const byPath = new Map<string, LayerEntry>();
  const ordered: LayerEntry[] = [];
  let sorted = true;
  for await (const entry of entries as AsyncIterable<LayerEntry>) {
    checkPath(entry.path, "path");
    if (byPath.has(entry.path)) throw new KilnError("LAYER_ENTRY_INVALID", `layer: duplicate path "${entry.path}"`);
    byPath.set(entry.path, entry);
    // producers such as the snapshot differs already emit tar order: then there is nothing to sort
    if (sorted && ordered.length > 0 && compareLayerPaths((ordered[ordered.length - 1] as LayerEntry).path, entry.path) > 0) sorted = false;
    ordered.push(entry);
  }
  if (!sorted) ordered.sort((a, b) => compareLayerPaths(a.path, b.path));
  const position = new Map<string, number>();
  ordered.forEach((e, i) => position.set(e.path, i));
  return fixHardlinks(ordered, byPath, position);
}

function checkPath(path: string, what: string): void {
  if (path.length === 0 || path.startsWith("/") || path.endsWith("/") || path.includes("\0")) {
    throw new KilnError("LAYER_ENTRY_INVALID", `layer: invalid ${what} "${path}"`);
  }
  for (const part of path.split("/")) {
    if (part === "" || part === "." || part === "..") throw new KilnError("LAYER_ENTRY_INVALID", `layer: invalid ${what} "${path}"`);
  }
}

/**
 * Make every hardlink point at an entry earlier in the tar: each group of linked names is
 * carried by its first member in tar order (which gets the content), the others link to it.
 */
function fixHardlinks(ordered: LayerEntry[], byPath: Map<string, LayerEntry>, position: Map<string, number>): LayerEntry[] {
  const rootOf = (entry: LayerEntry): LayerEntry => {
    let cur = entry;
    const seen = new Set<string>();
    while (cur.type === "hardlink") {
      if (seen.has(cur.path)) throw new KilnError("LAYER_ENTRY_INVALID", `layer: hardlink cycle at "${entry.path}"`);
      seen.add(cur.path);
      const link = cur.linkname;
      if (link === undefined) throw new KilnError("LAYER_ENTRY_INVALID", `layer: hardlink "${cur.path}" has no target`);
      checkPath(link, "hardlink target");
      const next = byPath.get(link);
      if (!next) throw new KilnError("LAYER_ENTRY_INVALID", `layer: hardlink "${cur.path}" points to "${link}", which is not in the layer`);
      cur = next;
    }
    if (cur.type === "dir") throw new KilnError("LAYER_ENTRY_INVALID", `layer: hardlink "${entry.path}" points to a directory`);
    return cur;
  };
  const groups = new Map<LayerEntry, LayerEntry[]>();
  for (const entry of ordered) {
    if (entry.type !== "hardlink") continue;
    const root = rootOf(entry);
    const members = groups.get(root) ?? [root];
    members.push(entry);
    groups.set(root, members);
  }
  if (groups.size === 0) return ordered;
  const replaced = new Map<string, LayerEntry>();
  for (const [root, members] of groups) {
    members.sort((a, b) => position.get(a.path)! - position.get(b.path)!);
    const first = members[0]!;
    replaced.set(first.path, { ...root, path: first.path });
    for (const m of members.slice(1)) {
      replaced.set(m.path, { ...root, path: m.path, type: "hardlink", linkname: first.path, size: 0, open: undefined });
    }
  }
  return ordered.map((e) => replaced.get(e.path) ?? e);
}
