// RUN differential test: a fast subset of testdata/conformance built by kiln and by buildah
// (scripts/compare-buildah.mjs, on the same kiln-built busybox base) must give identical root
// filesystems and configs (for a two-platform build too: each platform's image); and the
// comparison itself must report a real difference. CI runs the
// whole conformance set with the script separately.
import { spawn } from "node:child_process";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busyboxBase, releaseBusyboxBase, type BusyboxBase } from "../helpers/busybox.js";
import { REPO_ROOT, type RunResult } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const SCRIPT = join(REPO_ROOT, "scripts", "compare-buildah.mjs");

function compare(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }),
    );
  });
}

describe("RUN differential test against buildah", () => {
  const temps = new TempDirs();
  let base: BusyboxBase;

  beforeAll(async () => {
    base = await busyboxBase();
  });
  afterAll(async () => {
    await temps.cleanup();
    await releaseBusyboxBase();
  });

  it("kiln and buildah agree on whiteouts, opaque dirs, hard links, USER/WORKDIR, no-op RUNs and COPY --from xattrs", async () => {
    const cases = ["whiteout-base-file", "opaque-dir", "hardlinks", "user-workdir", "noop-run", "copy-from-caps"];
    const r = await compare(["--cases", cases.join(","), "--base", base.layout, "--jobs", "3"]);
    const report = `${r.stdout}\n${r.stderr}`;
    for (const c of cases) expect(report).toMatch(new RegExp(`^PASS ${c} `, "m"));
    expect(report).toContain("6 passed, 0 failed");
    expect(report).toContain("kiln snapshotter: overlay");
    expect(r.code, report).toBe(0);
  }, 600_000);

  it("kiln and buildah agree on each platform's image of a two-platform build (--platform a,b / bud --manifest)", async () => {
    const r = await compare(["--cases", "multi-platform", "--base", base.layout]);
    const report = `${r.stdout}\n${r.stderr}`;
    expect(report).toMatch(/^PASS multi-platform \(.*2 known buildah differences\)$/m);
    expect(r.code, report).toBe(0);
  }, 600_000);

  it("agrees with the dir snapshotter too", async () => {
    const cases = ["whiteout-base-dir", "opaque-dir", "hardlinks", "type-swaps"];
    const r = await compare(["--cases", cases.join(","), "--base", base.layout, "--jobs", "4", "--snapshotter", "dir"]);
    const report = `${r.stdout}\n${r.stderr}`;
    expect(report).toContain("kiln snapshotter: dir");
    expect(report).toContain("4 passed, 0 failed");
    expect(r.code, report).toBe(0);
  }, 600_000);

  it("reports differing content, modes and paths and exits 1", async () => {
    const dir = await temps.make("kiln-differ-cases-");
    const c = join(dir, "differ");
    await mkdir(c);
    await writeFile(join(c, "Dockerfile"), "FROM base\nRUN echo kiln > /who && chmod 600 /etc/group && touch /only-kiln\n");
    await writeFile(join(c, "Dockerfile.buildah"), "FROM base\nRUN echo buildah > /who && rm /bin/vi\n");
    const r = await compare(["--cases-dir", dir, "--base", base.layout]);
    expect(r.stdout).toMatch(/^FAIL differ /m);
    expect(r.stdout).toMatch(/\/who: size kiln=5 buildah=8; sha256 kiln=[0-9a-f]{64} buildah=[0-9a-f]{64}/);
    expect(r.stdout).toContain("/etc/group: mode kiln=0600 buildah=0644");
    expect(r.stdout).toMatch(/\/only-kiln: only in kiln \(file 0644 0:0 0B /);
    expect(r.stdout).toMatch(/\/bin\/vi: only in kiln \(symlink 0777 0:0 -> \/bin\/busybox\)/);
    expect(r.stdout).toContain("0 passed, 1 failed");
    expect(r.code).toBe(1);
  }, 300_000);

  it("reports differing xattrs (file capabilities) and mtimes older than the build", async () => {
    const dir = await temps.make("kiln-differ-cases-");
    const c = join(dir, "xattr-mtime");
    await mkdir(c);
    // caps.tar: caps/ping carries security.capability (cap_net_raw+ep); chown by root drops it.
    await copyFile(join(REPO_ROOT, "testdata", "conformance", "capabilities-add", "caps.tar"), join(c, "caps.tar"));
    await writeFile(join(c, "Dockerfile"), 'FROM base\nADD caps.tar /opt/\nRUN touch -d "2001-01-01 00:00:00" /opt/caps/plain\n');
    await writeFile(join(c, "Dockerfile.buildah"), 'FROM base\nADD caps.tar /opt/\nRUN chown 0:0 /opt/caps/ping && touch -d "2002-01-01 00:00:00" /opt/caps/plain\n');
    const r = await compare(["--cases-dir", dir, "--base", base.layout]);
    expect(r.stdout).toMatch(/^FAIL xattr-mtime /m);
    expect(r.stdout).toMatch(/\/opt\/caps\/ping: xattrs kiln=security\.capability=0x01000002[0-9a-f]+ buildah=-/);
    expect(r.stdout).toContain("/opt/caps/plain: mtime kiln=2001-01-01T00:00:00.000Z buildah=2002-01-01T00:00:00.000Z");
    expect(r.code).toBe(1);
  }, 300_000);

  it("rejects an unknown case with a one-line usage error", async () => {
    const r = await compare(["--cases", "no-such-case", "--base", base.layout]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("unknown case no-such-case");
  });
});
