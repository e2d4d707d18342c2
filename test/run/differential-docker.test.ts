// Differential test against Docker itself: scripts/compare-docker.mjs (a private Docker 20.10
// engine, Debian's docker.io, installed by the script when missing) on a fast subset of
// testdata/conformance — a layerless image (compared through `docker image inspect`), ARGs across
// stages, read-only /etc/hosts (both builders must fail), multi-stage COPY --from — and the
// comparison must report a real difference, a stale known difference, and stop its daemons.
// CI runs the whole conformance set with the script separately.
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busyboxBase, releaseBusyboxBase, type BusyboxBase } from "../helpers/busybox.js";
import { REPO_ROOT, type RunResult } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const SCRIPT = join(REPO_ROOT, "scripts", "compare-docker.mjs");

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

/** The daemon PIDs the script printed; each must be gone once it exited. */
function expectDaemonsStopped(report: string): void {
  const m = /private, pid (\d+); containerd pid (\d+)/.exec(report);
  expect(m, report).not.toBeNull();
  for (const pid of [Number(m![1]), Number(m![2])]) {
    expect(() => process.kill(pid, 0)).toThrow();
  }
}

describe("differential test against Docker", () => {
  const temps = new TempDirs();
  let base: BusyboxBase;

  beforeAll(async () => {
    base = await busyboxBase();
  });
  afterAll(async () => {
    await temps.cleanup();
    await releaseBusyboxBase();
  });

  it("kiln and Docker 20.10 agree on a layerless image, ARGs across stages, read-only /etc/hosts and COPY --from", async () => {
    const cases = ["scratch-metadata", "arg-parent-stage", "etc-hosts-readonly", "multi-stage"];
    const r = await compare(["--cases", cases.join(","), "--base", base.layout, "--jobs", "2"]);
    const report = `${r.stdout}\n${r.stderr}`;
    expect(report).toMatch(/docker engine 20\.10\.\S+ \(private/);
    for (const c of cases) expect(report).toMatch(new RegExp(`^PASS ${c} `, "m"));
    expect(report).toContain("4 passed, 0 failed");
    expect(r.code, report).toBe(0);
    expectDaemonsStopped(report);
  }, 600_000);

  it("reports a real difference and a known difference that no longer appears, and exits 1", async () => {
    const dir = await temps.make("kiln-docker-differ-");
    // Docker 20.10's BuildKit gives RUN no supplementary groups; kiln (as BuildKit >= 0.11) does.
    await mkdir(join(dir, "groups"));
    await writeFile(join(dir, "groups", "Dockerfile"), "FROM base\nRUN id > /id.txt\n");
    await mkdir(join(dir, "stale"));
    await writeFile(join(dir, "stale", "Dockerfile"), "FROM base\nRUN echo same > /same.txt\n");
    await writeFile(join(dir, "stale", "case.json"), JSON.stringify({ knownDockerDifferences: [{ line: "/same.txt: size kiln=5 docker=6", why: "test" }] }));
    const r = await compare(["--cases-dir", dir, "--base", base.layout]);
    expect(r.stdout).toMatch(/^FAIL groups /m);
    expect(r.stdout).toMatch(/\/id\.txt: size kiln=39 docker=24; sha256 kiln=[0-9a-f]{64} docker=[0-9a-f]{64}/);
    expect(r.stdout).toMatch(/^FAIL stale /m);
    expect(r.stdout).toContain("known docker difference no longer seen (update case.json): /same.txt: size kiln=5 docker=6");
    expect(r.stdout).toContain("0 passed, 2 failed");
    expect(r.code).toBe(1);
    expectDaemonsStopped(r.stdout);
  }, 300_000);

  it("rejects an unknown case with a one-line usage error, before starting any daemon", async () => {
    const r = await compare(["--cases", "no-such-case", "--base", base.layout]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("unknown case no-such-case");
    expect(r.stdout).not.toContain("docker engine");
  });
});
