// A real rpm SQLite database for the SBOM scanner tests: Debian's rpmbuild makes packages from
// tiny spec files (one with hundreds of files, so its header blob spills to SQLite overflow
// pages) and `rpm --justdb` records them in a fresh --dbpath, as dnf would in an image.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { mustRun } from "./kiln.js";

export interface RpmSpec {
  name: string;
  version: string;
  release: string;
  epoch?: number;
  license: string;
  /** How many files it installs (0: none, noarch). */
  files?: number;
}

function specText(s: RpmSpec): string {
  const lines = [`Name: ${s.name}`, `Version: ${s.version}`, `Release: ${s.release}`, ...(s.epoch !== undefined ? [`Epoch: ${s.epoch}`] : []),
    `Summary: kiln test package ${s.name}`, `License: ${s.license}`, ...(s.files ? [] : ["BuildArch: noarch"]), "%description", `${s.name} for kiln's tests`];
  if (s.files) {
    lines.push("%install", `mkdir -p %{buildroot}/usr/share/${s.name}`, `for i in $(seq 1 ${s.files}); do echo $i > %{buildroot}/usr/share/${s.name}/file-with-a-long-name-$i.txt; done`, "%files", `/usr/share/${s.name}`);
  } else lines.push("%files");
  return `${lines.join("\n")}\n`;
}

/** Builds the packages and installs them (database only) into `dir`/db: returns the rpmdb.sqlite bytes and `rpm -qa`'s view. */
export async function makeRpmDb(dir: string, specs: RpmSpec[]): Promise<{ sqlite: Buffer; queried: string[] }> {
  const top = join(dir, "top");
  const db = join(dir, "db");
  await mkdir(db, { recursive: true });
  const rpms: string[] = [];
  for (const s of specs) {
    const spec = join(dir, `${s.name}.spec`);
    await writeFile(spec, specText(s));
    await mustRun("rpmbuild", ["--define", `_topdir ${top}`, "--define", "_build_id_links none", "--quiet", "-bb", spec]);
    const arch = s.files ? (await mustRun("rpm", ["--eval", "%{_arch}"])).stdout.trim() : "noarch";
    rpms.push(join(top, "RPMS", arch, `${s.name}-${s.version}-${s.release}.${arch}.rpm`));
  }
  await mustRun("rpm", ["--dbpath", db, "--initdb"]);
  await mustRun("rpm", ["--dbpath", db, "-i", "--justdb", "--nodeps", "--noscripts", ...rpms]);
  const q = await mustRun("rpm", ["--dbpath", db, "-qa", "--qf", "%{NAME}|%{EPOCHNUM}|%{VERSION}-%{RELEASE}|%{ARCH}|%{LICENSE}\n"]);
  return { sqlite: await readFile(join(db, "rpmdb.sqlite")), queried: q.stdout.split("\n").filter(Boolean).sort() };
}
