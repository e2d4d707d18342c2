// Owners as the container saw them: a step that ran in a user namespace (or under a fake root)
// leaves files whose host owners are mapped ids; its layer must carry the ids inside the
// container. Maps a snapshot's entries back through the runner's id map, and refuses an owner
// the map cannot express (a layer must never record a host id).
import { KilnError } from "../errors.js";
import type { IdMap, IdMapping } from "./idmap.js";
import { WHITEOUT_PREFIX, type LayerEntry } from "../layer/entry.js";

/** The container id for host id `id` under `maps`, or undefined when none maps it. */
export function containerID(maps: readonly IdMapping[], id: number): number | undefined {
  for (const m of maps) if (id >= m.hostID && id < m.hostID + m.size) return m.containerID + (id - m.hostID);
  return undefined;
}

/**
 * `entries` with uid/gid mapped from host to container ids (new objects; the input is kept);
 * `entries` itself without a map. Whiteouts carry no owner and stay as they are, and so do the
 * entries in `containerIds` (owners a fake root recorded: already container ids). `step` names
 * the step in errors ("RUN").
 */
export function toContainerOwners(entries: LayerEntry[], idMap: IdMap | undefined, step = "RUN", containerIds?: ReadonlySet<LayerEntry>): LayerEntry[] {
  if (!idMap) return entries;
  return entries.map((e) => {
    if (containerIds?.has(e)) return e;
    if (e.path.slice(e.path.lastIndexOf("/") + 1).startsWith(WHITEOUT_PREFIX)) return e;
    const uid = containerID(idMap.uid, e.uid);
    if (uid === undefined) throw new KilnError("OWNER_UNMAPPED", `${step} created /${e.path} owned by host uid ${e.uid}, which has no id inside the container`);
    const gid = containerID(idMap.gid, e.gid);
    if (gid === undefined) throw new KilnError("OWNER_UNMAPPED", `${step} created /${e.path} owned by host gid ${e.gid}, which has no id inside the container`);
    return uid === e.uid && gid === e.gid ? e : { ...e, uid, gid };
  });
}
