// How ids inside a container correspond to ids on the host (the rows of /proc/PID/uid_map): the
// types the snapshotters (a step's owners, src/snapshot/owners.ts) and the RUN backends (user
// namespaces, fake roots in src/run/) share. They live here, below both, because run/ uses fs/
// (confined paths, work directories) and fs/ must never import run/.

/** One row of a uid_map / gid_map: `size` ids from `containerID` map to ids from `hostID`. */
export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/** A container's uid and gid mappings. */
export interface IdMap {
  uid: IdMapping[];
  gid: IdMapping[];
}
