// `kiln doctor`: the host report (isolation modes from the preflight, one line per requirement
// with what was found or how to install it), its JSON form, the exit status (0 when RUN can be
// built), and the README's Requirements table rendered from the same rows.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REQUIREMENTS, requirementsMarkdown } from "../../src/doctor/requirements.js";
import { REPO_ROOT, kiln } from "../helpers/kiln.js";

interface Report {
  uid: number;
  isolation: { mode: string; ok: boolean; reason: string }[];
  checks: { id: string; ok: boolean; detail: string; install?: string }[];
  runIsolation: string | null;
}

describe("kiln doctor", () => {
  it("reports every isolation mode and requirement; exit 0 exactly when a mode works", async () => {
    const r = await kiln(["doctor", "--format", "json"]);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.isolation.map((m) => m.mode)).toEqual(["oci", "chroot", "plain-chroot", "proot"]);
    expect(report.checks.map((c) => c.id)).toEqual(REQUIREMENTS.map((q) => q.id));
    for (const c of report.checks) expect(c.ok || /^apt-get install \S.* \| dnf install \S.* \| apk add \S/.test(c.install ?? "") || c.id === "overlayfs", c.id).toBe(true);
    expect(report.runIsolation).toBe(report.isolation.find((m) => m.ok)?.mode ?? null);
    expect(r.code).toBe(report.runIsolation ? 0 : 1);
    // as root on the test machines, the namespace modes work
    if (process.getuid?.() === 0) expect(report.runIsolation).toBe(report.isolation[0]!.ok ? "oci" : "chroot");

    const text = await kiln(["doctor"]);
    expect(text.code).toBe(r.code);
    expect(text.stdout).toMatch(/^RUN isolation \(strongest first\):$/m);
    for (const q of REQUIREMENTS) expect(text.stdout).toContain(q.name);
    expect(text.stdout).toMatch(/^RUN steps can(not)? be built here/m);
  });

  it("names what is missing with the command that installs it", async () => {
    // a PATH without the usual directories: getfattr/setfattr (found by name on PATH) are missing
    const r = await kiln(["doctor", "--format", "json"], { env: { PATH: "/nonexistent" } });
    const report = JSON.parse(r.stdout) as Report;
    const xattr = report.checks.find((c) => c.id === "xattr-tools")!;
    expect(xattr).toMatchObject({ ok: false, detail: "not found: getfattr, setfattr", install: "apt-get install attr | dnf install attr | apk add attr" });
    const text = await kiln(["doctor"], { env: { PATH: "/nonexistent" } });
    expect(text.stdout).toMatch(/^ {2}missing getfattr\/setfattr +not found: getfattr, setfattr$/m);
    expect(text.stdout).toContain("install: apt-get install attr | dnf install attr | apk add attr");
  });

  it("usage mistakes exit 2", async () => {
    const r = await kiln(["doctor", "--format", "yaml"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("error: --format must be text or json");
  });

  it("the README's Requirements table is the one doctor checks", async () => {
    const readme = await readFile(join(REPO_ROOT, "README.md"), "utf8");
    expect(readme).toContain(requirementsMarkdown());
  });
});
