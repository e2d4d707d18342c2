// End-to-end: bad input to `kiln build`. Each failure exits 1 with ONE stderr line
// `error: Dockerfile:N: ...` naming the line, writes no new output and leaves an existing layout
// untouched. Usage mistakes exit 2.
import { chmod, chown, cp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLayout } from "../helpers/build.js";
import { kiln, verify, type KilnRunOptions } from "../helpers/kiln.js";
import { serveFiles } from "../helpers/http.js";
import { casePath, copyCase, TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

/** A layout built once; every failing build also targets a copy of it, which must not change. */
let existing = "";
beforeAll(async () => {
  existing = (await buildLayout(temps, casePath("outputs"), ["-t", "keep:me"])).layout;
});

async function snapshot(layout: string): Promise<string> {
  const blobs = (await readdir(join(layout, "blobs", "sha256"))).sort();
  const index = await readFile(join(layout, "index.json"), "utf8");
  const marker = await readFile(join(layout, "oci-layout"), "utf8");
  return JSON.stringify({ blobs, index, marker });
}

interface Failure {
  stderr: string;
}

/**
 * Builds `context` (with its default Dockerfile) to a new layout dir, a new tar, a new docker
 * archive and a copy of the existing layout, with --iidfile and --metadata-file; asserts exit 1,
 * a single stderr line and that no output (nor temp file) appeared or changed. Returns the line.
 */
async function expectBuildFailure(context: string, args: string[] = [], options: KilnRunOptions = {}): Promise<Failure> {
  const out = await temps.make("kiln-fail-");
  const kept = join(out, "existing");
  await cp(existing, kept, { recursive: true });
  const before = await snapshot(kept);
  if (options.asUid !== undefined) {
    await chmod(out, 0o777);
    await chownTree(kept, options.asUid);
  }
  const r = await kiln([
    "build", "--progress", "quiet", "--cache-dir", join(out, "cache"),
    "-o", `type=oci,dest=${join(out, "new-layout")}`,
    "-o", `type=oci,dest=${join(out, "new.tar")},tar=true`,
    "-o", `type=docker,dest=${join(out, "docker.tar")}`,
    "-o", `type=oci,dest=${kept}`,
    "-t", "keep:me",
    "--iidfile", join(out, "iid"),
    "--metadata-file", join(out, "meta.json"),
    ...args, context,
  ], options);
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stdout).toBe("");
  const left = (await readdir(out)).filter((n) => n !== "cache").sort();
  expect(left).toEqual(["existing"]);
  expect(await snapshot(kept)).toBe(before);
  await verify(kept);
  return { stderr: lines[0]! };
}

async function chownTree(dir: string, uid: number): Promise<void> {
  await chown(dir, uid, uid);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, uid);
    else await chown(p, uid, uid);
  }
}

describe("kiln build: bad input", () => {
  it("a missing source names the line and the file", async () => {
    const { stderr } = await expectBuildFailure(casePath("err-missing-source"));
    expect(stderr).toMatch(/^error: Dockerfile:3: COPY\b.*missing\.txt/);
  });

  it("a source outside the context (../x) is refused", async () => {
    const { stderr } = await expectBuildFailure(casePath("err-outside-context"));
    expect(stderr).toMatch(/^error: Dockerfile:2: COPY\b.*outside\.txt/);
  });

  it("a bad --chmod is refused", async () => {
    const { stderr } = await expectBuildFailure(casePath("err-bad-chmod"));
    expect(stderr).toMatch(/^error: Dockerfile:2: .*chmod/i);
  });

  it("an ADD --checksum mismatch fails the build", async () => {
    const server = await serveFiles({ "/file.txt": { body: "downloaded over http\n" } });
    try {
      const { stderr } = await expectBuildFailure(casePath("err-checksum"), ["--build-arg", `BASE=${server.url}`]);
      expect(stderr).toMatch(/^error: Dockerfile:3: ADD\b.*(checksum|digest)/i);
    } finally {
      await server.close();
    }
  });

  it("an unknown --from stage is refused", async () => {
    const { stderr } = await expectBuildFailure(casePath("err-unknown-from"));
    expect(stderr).toMatch(/^error: Dockerfile:5: .*frist/);
  });

  it("an out-of-range --from index is refused", async () => {
    const { stderr } = await expectBuildFailure(casePath("err-from-index"));
    expect(stderr).toMatch(/^error: Dockerfile:5: .*--from=3/);
  });

  it("several sources need a directory destination", async () => {
    const { stderr } = await expectBuildFailure(casePath("err-multi-dest"));
    expect(stderr).toMatch(/^error: Dockerfile:2: COPY\b.*(directory|\/)/);
  });

  it("a misspelt instruction is refused before any work", async () => {
    const { stderr } = await expectBuildFailure(casePath("err-typo"));
    expect(stderr).toMatch(/^error: Dockerfile:3: .*COPPY/i);
  });

  it("an unreadable context file (build run as nobody) names the file", async () => {
    const ctx = await copyCase(temps, "err-unreadable");
    await writeFile(join(ctx, "secret.txt"), "top secret\n");
    await chmod(join(ctx, "secret.txt"), 0o000);
    const { stderr } = await expectBuildFailure(ctx, [], { asUid: 65534, env: { HOME: "/nonexistent" } });
    expect(stderr).toMatch(/^error: Dockerfile:4: COPY\b.*secret\.txt/);
  });
});

describe("kiln build: usage errors", () => {
  it("an unknown flag exits 2 with one line naming it", async () => {
    const r = await kiln(["build", "--no-such-flag", casePath("outputs")]);
    expect(r.code).toBe(2);
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: .*--no-such-flag/);
  });

  it("a missing context argument exits 2", async () => {
    const r = await kiln(["build"]);
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n").filter((l) => l !== "")).toHaveLength(1);
  });
});
