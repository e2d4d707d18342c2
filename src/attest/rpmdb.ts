// RPM packages from rpm's SQLite database (rpmdb.sqlite, the default since rpm 4.16: Fedora 33+,
// RHEL 9, openSUSE), read without librpm: the Packages table's blobs are rpm header blobs (index
// entries, then the data store) whose NAME, EPOCH, VERSION, RELEASE, ARCH and LICENSE tags give
// each package. The older BerkeleyDB `Packages` and the NDB `Packages.db` are not read: the scan
// says so in a warning, as it does for a database it cannot parse.
import { basename, dirname } from "node:path/posix";
import { enc, type FoundPackage } from "./found.js";
import { readSqliteTable } from "./sqlite-read.js";

/** Where rpm keeps its database (/var/lib/rpm, or /usr/lib/sysimage/rpm with the other a symlink). */
export const RPM_DB_DIRS = ["var/lib/rpm", "usr/lib/sysimage/rpm"];
export const RPM_SQLITE = "rpmdb.sqlite";
/** Database files kiln cannot read: the scan keeps an empty marker for each, to warn about it. */
export const RPM_UNSUPPORTED: Readonly<Record<string, string>> = { Packages: "BerkeleyDB", "Packages.db": "NDB" };

/** rpm's SQLite database at one of its places. */
export function isRpmSqlite(path: string): boolean {
  return RPM_DB_DIRS.some((d) => path === `${d}/${RPM_SQLITE}`);
}

/** rpm database files kept as an empty marker only (to warn that they are not read): BerkeleyDB, NDB, the SQLite WAL. */
export function isRpmMarker(path: string): boolean {
  const dir = dirname(path);
  const base = basename(path);
  return RPM_DB_DIRS.includes(dir) && (base in RPM_UNSUPPORTED || base === `${RPM_SQLITE}-wal`);
}

const TAG = { name: 1000, version: 1001, release: 1002, epoch: 1003, license: 1014, arch: 1022 } as const;
const TYPE_INT32 = 4;
const TYPE_STRING = 6;
const TYPE_I18NSTRING = 9;

/** The tags of one rpm header blob (as rpmdb stores it: no lead, no magic) that kiln reads. */
export function parseRpmHeader(blob: Buffer): Partial<Record<keyof typeof TAG, string>> | undefined {
  if (blob.length < 8) return undefined;
  const il = blob.readUInt32BE(0);
  const dl = blob.readUInt32BE(4);
  const store = 8 + il * 16;
  if (il > 0xffff || store + dl > blob.length) return undefined;
  const out: Partial<Record<keyof typeof TAG, string>> = {};
  const names = new Map<number, keyof typeof TAG>(Object.entries(TAG).map(([k, v]) => [v, k as keyof typeof TAG]));
  for (let i = 0; i < il; i++) {
    const e = 8 + i * 16;
    const key = names.get(blob.readUInt32BE(e));
    if (!key) continue;
    const type = blob.readUInt32BE(e + 4);
    const off = blob.readUInt32BE(e + 8);
    if (off >= dl) continue;
    const at = store + off;
    if (type === TYPE_INT32 && at + 4 <= store + dl) out[key] = String(blob.readUInt32BE(at));
    else if (type === TYPE_STRING || type === TYPE_I18NSTRING) {
      const end = blob.indexOf(0, at);
      if (end > 0 && end <= store + dl) out[key] = blob.subarray(at, end).toString("utf8");
    }
  }
  return out;
}

/** The installed packages of an rpmdb.sqlite (gpg-pubkey entries are keys, not packages). */
export function parseRpmSqlite(db: Buffer, source: string, distro: string): FoundPackage[] {
  const rows = readSqliteTable(db, "Packages") ?? [];
  const out: FoundPackage[] = [];
  for (const row of rows) {
    const blob = row.values.find((v): v is Buffer => Buffer.isBuffer(v));
    const h = blob ? parseRpmHeader(blob) : undefined;
    if (!h?.name || !h.version || h.name === "gpg-pubkey") continue;
    const vr = h.release ? `${h.version}-${h.release}` : h.version;
    const q = [h.arch ? `arch=${enc(h.arch)}` : "", h.epoch ? `epoch=${enc(h.epoch)}` : ""].filter(Boolean).join("&");
    const pkg: FoundPackage = {
      type: "rpm", name: h.name, version: h.epoch ? `${h.epoch}:${vr}` : vr, source,
      purl: `pkg:rpm/${enc(distro)}/${enc(h.name)}@${enc(vr)}${q ? `?${q}` : ""}`,
    };
    if (h.arch) pkg.arch = h.arch;
    if (h.license) pkg.license = h.license;
    out.push(pkg);
  }
  return out;
}
