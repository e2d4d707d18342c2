// RPM in the SBOM: a real rpmdb.sqlite (Debian's rpmbuild and rpm --justdb) is read without
// librpm — the same packages as `rpm -qa` (name, epoch, version-release, arch, license), a header
// spilling to overflow pages included —, and every RPM database kiln does not read (BerkeleyDB,
// NDB, an unmerged WAL, a corrupt or over-size file) is named in a warning instead of listing nothing silently.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findPackages } from "../../src/attest/packages.js";
import { parseRpmSqlite } from "../../src/attest/rpmdb.js";
import { readSqliteTable } from "../../src/attest/sqlite-read.js";
import { scanFiles } from "../../src/attest/scan-files.js";
import { makeRpmDb } from "../helpers/rpmdb.js";
import { TempDirs } from "../helpers/temp.js";
import { makeTar, tarLayer } from "../snapshot/helpers.js";

const temps = new TempDirs();
let db: { sqlite: Buffer; queried: string[] };
beforeAll(async () => {
  db = await makeRpmDb(await temps.make("kiln-rpmdb-"), [
    { name: "kiln-small", version: "1.2.3", release: "4.el9", license: "MIT" },
    { name: "kiln-big", version: "0.9", release: "1", epoch: 2, license: "GPL-2.0-or-later AND MIT", files: 400 },
  ]);
}, 120_000);
afterAll(() => temps.cleanup());

describe("rpmdb.sqlite", () => {
  it("lists what rpm -qa lists, read without librpm (overflow pages included)", () => {
    const rows = readSqliteTable(db.sqlite, "Packages")!;
    expect(rows.length).toBe(2);
    expect(Math.max(...rows.map((r) => (r.values[1] as Buffer).length))).toBeGreaterThan(8192); // spilled past one page
    const pkgs = parseRpmSqlite(db.sqlite, "/var/lib/rpm/rpmdb.sqlite", "rocky");
    const mine = pkgs.map((p) => `${p.name}|${p.version.includes(":") ? p.version.split(":")[0] : "0"}|${p.version.replace(/^\d+:/, "")}|${p.arch}|${p.license}`).sort();
    expect(mine).toEqual(db.queried);
    expect(pkgs.map((p) => p.purl).sort()).toEqual([
      expect.stringMatching(/^pkg:rpm\/rocky\/kiln-big@0\.9-1\?arch=[a-z0-9_]+&epoch=2$/),
      "pkg:rpm/rocky/kiln-small@1.2.3-4.el9?arch=noarch",
    ]);
  });

  it("is found in an image layer at /var/lib/rpm or /usr/lib/sysimage/rpm, distro from os-release", async () => {
    for (const dir of ["var/lib/rpm", "usr/lib/sysimage/rpm"]) {
      const layer = makeTar([
        { name: "etc/os-release", content: Buffer.from('NAME="Fedora Linux"\nID=fedora\n') },
        { name: `${dir}/rpmdb.sqlite`, content: db.sqlite },
        { name: `${dir}/rpmdb.sqlite-wal`, content: Buffer.alloc(0) },
      ]);
      const warnings: string[] = [];
      const pkgs = findPackages(await scanFiles([tarLayer(layer, true)]), (m) => warnings.push(m));
      expect(pkgs.map((p) => [p.type, p.name, p.source])).toEqual([
        ["rpm", "kiln-big", `/${dir}/rpmdb.sqlite`],
        ["rpm", "kiln-small", `/${dir}/rpmdb.sqlite`],
      ]);
      expect(pkgs[1]!.purl).toBe("pkg:rpm/fedora/kiln-small@1.2.3-4.el9?arch=noarch");
      expect(warnings).toEqual([]);
    }
  });

  it("warns, naming the file, for BerkeleyDB and NDB databases, an unmerged WAL and a corrupt database", async () => {
    const warningsOf = async (entries: Parameters<typeof makeTar>[0]): Promise<{ warnings: string[]; count: number }> => {
      const warnings: string[] = [];
      const count = findPackages(await scanFiles([tarLayer(makeTar(entries))]), (m) => warnings.push(m)).length;
      return { warnings, count };
    };
    const bdb = await warningsOf([{ name: "var/lib/rpm/Packages", content: Buffer.alloc(4096, 1) }]);
    expect(bdb).toEqual({ count: 0, warnings: [expect.stringMatching(/\/var\/lib\/rpm\/Packages is an RPM BerkeleyDB database, which kiln does not read/)] });
    const ndb = await warningsOf([{ name: "usr/lib/sysimage/rpm/Packages.db", content: Buffer.alloc(4096, 1) }]);
    expect(ndb.warnings).toEqual([expect.stringMatching(/\/usr\/lib\/sysimage\/rpm\/Packages\.db is an RPM NDB database/)]);
    const wal = await warningsOf([{ name: "var/lib/rpm/rpmdb.sqlite", content: db.sqlite }, { name: "var/lib/rpm/rpmdb.sqlite-wal", content: Buffer.alloc(100, 1) }]);
    expect(wal.count).toBe(2);
    expect(wal.warnings).toEqual([expect.stringMatching(/write-ahead log \/var\/lib\/rpm\/rpmdb\.sqlite-wal is not empty/)]);
    const corrupt = Buffer.from(db.sqlite);
    corrupt.fill(0xee, 4096, 8192 * 2);
    const bad = await warningsOf([{ name: "var/lib/rpm/rpmdb.sqlite", content: corrupt }]);
    expect(bad.warnings).toEqual([expect.stringMatching(/the RPM database \/var\/lib\/rpm\/rpmdb\.sqlite cannot be read/)]);
    const notSqlite = await warningsOf([{ name: "var/lib/rpm/rpmdb.sqlite", content: Buffer.from("not a database") }]);
    expect(notSqlite.warnings).toEqual([expect.stringMatching(/cannot be read \(SQLite file: not an SQLite 3 database\)/)]);
    // a BerkeleyDB file left next to the SQLite database (a migration's leftover) is no news
    expect((await warningsOf([{ name: "var/lib/rpm/rpmdb.sqlite", content: db.sqlite }, { name: "var/lib/rpm/Packages", content: Buffer.alloc(10) }])).warnings).toEqual([]);
  });

  it("a whiteout in an upper layer removes the database and its warning", async () => {
    const lower = tarLayer(makeTar([{ name: "var/lib/rpm/Packages", content: Buffer.alloc(10, 1) }]));
    const upper = tarLayer(makeTar([{ name: "var/lib/rpm/.wh.Packages", content: Buffer.alloc(0) }]));
    const warnings: string[] = [];
    expect(findPackages(await scanFiles([lower, upper]), (m) => warnings.push(m))).toEqual([]);
    expect(warnings).toEqual([]);
  });
});
