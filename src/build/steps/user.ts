// USER / WORKDIR ownership: a USER value (`name`, `uid`, `name:group`, `uid:gid`) resolved
// against the image's /etc/passwd and /etc/group, read from its layers without extraction.
import { resolveChown } from "../../context/owner.js";
import type { LayerView } from "../../layer/view.js";

export function resolveUser(user: string, view: LayerView): { uid: number; gid: number } {
  return resolveChown(user, view.readSmallFile("etc/passwd"), view.readSmallFile("etc/group"));
}
