// Tar order of layer entries, shared by the snapshot differs (which emit entries already in it)
// and the tar writer (which checks it and sorts otherwise): parents before children; among
// siblings the opaque marker, then whiteouts, then the rest, each by UTF-8 bytes.
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from "./entry.js";

function rankOf(name: string): number {
  if (!name.startsWith(WHITEOUT_PREFIX)) return 2;
  return name === OPAQUE_MARKER ? 0 : 1;
}

/** UTF-8 byte order of two strings without encoding them (UTF-16 units agree below U+D800). */
function compareBytes(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return x >= 0xd800 && y >= 0xd800 ? Buffer.compare(Buffer.from(a), Buffer.from(b)) : x - y;
  }
  return a.length - b.length;
}

/** Order of two sibling names. */
export function compareNames(a: string, b: string): number {
  const ra = rankOf(a);
  const rb = rankOf(b);
  return ra !== rb ? ra - rb : compareBytes(a, b);
}

/** Order of two layer paths (relative, "/"-separated): component by component. */
export function compareLayerPaths(a: string, b: string): number {
  let i = 0;
  let j = 0;
  for (;;) {
    const ai = a.indexOf("/", i);
    const bj = b.indexOf("/", j);
    const x = a.slice(i, ai < 0 ? a.length : ai);
    const y = b.slice(j, bj < 0 ? b.length : bj);
    if (x !== y) return compareNames(x, y);
    if (ai < 0 || bj < 0) return (ai < 0 ? 0 : 1) - (bj < 0 ? 0 : 1);
    i = ai + 1;
    j = bj + 1;
  }
}
