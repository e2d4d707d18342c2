// End-to-end confinement of RUN mounts (issue #10, escapes 1-3): a bind source that is a symlink
// to a host path (from a stage, an image, a named context or the build context; read-only and
// rw), a mount target that goes through a symlink inside an earlier mount, and a step that
// replaces a mount stub's parent by a symlink to a host directory. Each case plants sentinel files
// in a host directory outside the build and asserts they are untouched (content, mode, mtime,
// existence) and that nothing of them leaked into the build log or the layers, under both
// isolations and both snapshotters. Also: a bind mount with no target lands at WORKDIR, and the
// RUN cache key follows the content a bind source resolves to.
import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, readdir, readFile, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { useBusyboxBase } from "../helpers/busybox.js";
import { expectBuilt, kiln, type RunResult } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";
import { walkTree } from "../helpers/tree.js";

const temps = new TempDirs();
const base = useBusyboxBase();
afterAll(() => temps.cleanup());

const ISOLATIONS = ["oci", "chroot"] as const;
const SNAPSHOTTERS = ["overlay", "dir"] as const;
const MATRIX = ISOLATIONS.flatMap((isolation) => SNAPSHOTTERS.map((snapshotter) => ({ isolation, snapshotter })));
const OLD = new Date("2001-02-03T04:05:06Z");

interface Sentinel {
  dir: string;
  /** A random string in every sentinel file's name and content: must appear in no log or layer. */
  marker: string;
  /** Everything about the directory tree: names, types, modes, sizes, mtimes, content. */
  snapshot(): Promise<string>;
}

/**
 * A host directory outside the build with a file, a subdirectory and (for the clean-up escape)
 * empty files and directories named like kiln's mount stubs, all with known modes and old mtimes.
 */
async function plantSentinel(): Promise<Sentinel> {
  const dir = await temps.make("kiln-sentinel-");
  const marker = `SENTINEL${randomBytes(8).toString("hex")}`;
  await writeFile(join(dir, `s-${marker}.txt`), `host secret ${marker}\n`);
  await chmod(join(dir, `s-${marker}.txt`), 0o640);
  await mkdir(join(dir, `sub-${marker}`));
  await writeFile(join(dir, `sub-${marker}`, `i-${marker}.txt`), `inner ${marker}\n`);
  for (const f of ["hosts", "resolv.conf", "hostname"]) await writeFile(join(dir, f), "");
  await mkdir(join(dir, "b", "c"), { recursive: true });
  for (const p of [`s-${marker}.txt`, `sub-${marker}/i-${marker}.txt`, `sub-${marker}`, "hosts", "resolv.conf", "hostname", "b/c", "b", ""]) {
    await utimes(join(dir, p), OLD, OLD);
  }
  await chmod(dir, 0o751);
  await utimes(dir, OLD, OLD);
  const snapshot = async (): Promise<string> => {
    const tree = await walkTree(dir);
    const rows: string[] = [];
    for (const [rel, e] of tree) {
      const mtimeNs = (await lstat(rel === "" ? dir : join(dir, rel), { bigint: true })).mtimeNs;
      rows.push(`${rel} ${e.type} ${e.mode.toString(8)} ${e.size} ${mtimeNs} ${e.sha256 ?? ""}`);
    }
    return rows.join("\n");
  };
  return { dir, marker, snapshot };
}

/** Every blob of a layout, gunzipped when it is gzip. */
async function layoutText(layout: string): Promise<string> {
  const dir = join(layout, "blobs", "sha256");
  let text = "";
  for (const name of await readdir(dir)) {
    const b = await readFile(join(dir, name));
    text += (b[0] === 0x1f && b[1] === 0x8b ? gunzipSync(b) : b).toString("latin1");
  }
  return text;
}

interface Built {
  r: RunResult;
  layout: string;
  cacheDir: string;
}

async function build(ctx: string, args: string[], cacheDir?: string): Promise<Built> {
  const out = await temps.make("kiln-out-");
  const layout = join(out, "layout");
  const cache = cacheDir ?? join(out, "cache");
  const r = await kiln(["build", "--progress", "plain", "--cache-dir", cache, "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${layout}`, "-t", "t:1", ...args, ctx]);
  return { r, layout, cacheDir: cache };
}

async function context(dockerfile: string): Promise<string> {
  const ctx = await temps.make("kiln-ctx-");
  await writeFile(join(ctx, "Dockerfile"), dockerfile);
  return ctx;
}

/** The sentinel is exactly as planted and nothing of it shows in the log or (if built) the layers. */
async function expectUntouched(s: Sentinel, before: string, b: Built): Promise<void> {
  expect(await s.snapshot(), `the host directory changed\n${b.r.stderr}`).toBe(before);
  expect(b.r.stdout + b.r.stderr, "a sentinel leaked into the build log").not.toContain(s.marker);
  if (b.r.code === 0) expect(await layoutText(b.layout), "a sentinel leaked into a layer").not.toContain(s.marker);
}

/** A failed build: one error line, naming the Dockerfile line and the --mount. */
function expectMountError(b: Built, line: number, re: RegExp): void {
  expect(b.r.code, b.r.stderr).toBe(1);
  const lines = b.r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  expect(lines, b.r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^error: Dockerfile:${line}: .*--mount=`));
  expect(lines[0]).toMatch(re);
}

const SRC_STAGE = `FROM base AS src
ARG HOST
RUN mkdir -p /real && echo in-tree > /real/f && ln -s /real /inlink && ln -s "$HOST" /hostlink && ln -s "$HOST/hosts" /hostfile && mkdir /tree && ln -s "$HOST" /tree/escape
`;

describe("escape 1: bind sources resolve inside their tree", () => {
  for (const { isolation, snapshotter } of MATRIX) {
    const flags = ["--isolation", isolation, "--snapshotter", snapshotter];
    it(`from a stage, read-only and rw (${isolation}, ${snapshotter})`, async () => {
      const s = await plantSentinel();
      const before = await s.snapshot();
      const ctx = await context(`${SRC_STAGE}
FROM base
RUN --mount=type=bind,from=src,source=/hostlink,target=/m ls -laR /m; cat /m/* /m/*/* || true
`);
      const ro = await build(ctx, [...flags, "--build-arg", `HOST=${s.dir}`]);
      await expectUntouched(s, before, ro);
      expectMountError(ro, 6, /source "\/hostlink" not found in src/);

      const ctxRw = await context(`${SRC_STAGE}
FROM base
RUN --mount=type=bind,from=src,source=/hostlink,target=/m,rw sh -c 'for f in /m/s-*; do echo pwned > "$f"; done; rm -rf /m/sub-* /m/hosts; chmod 777 /m; ls -la /m'
`);
      const rw = await build(ctxRw, [...flags, "--build-arg", `HOST=${s.dir}`]);
      await expectUntouched(s, before, rw);
      expectMountError(rw, 6, /source "\/hostlink" not found in src/);

      const ctxFile = await context(`${SRC_STAGE}
FROM base
RUN --mount=type=bind,from=src,source=/hostfile,target=/f,rw sh -c 'echo pwned > /f'
`);
      const file = await build(ctxFile, [...flags, "--build-arg", `HOST=${s.dir}`]);
      await expectUntouched(s, before, file);
      expectMountError(file, 6, /source "\/hostfile" not found in src/);
    });

    it(`a source symlink that resolves inside the stage works as in BuildKit, ro and rw (${isolation}, ${snapshotter})`, async () => {
      const s = await plantSentinel();
      const ctx = await context(`${SRC_STAGE}
FROM base
RUN --mount=type=bind,from=src,source=/inlink,target=/m cat /m/f > /seen-ro
RUN --mount=type=bind,from=src,source=/tree,target=/m,rw sh -c 'ls -la /m/escape/ > /seen-rw; echo changed > /m/escape/new || true; ls /m > /listing'
`);
      const b = await build(ctx, [...flags, "--build-arg", `HOST=${s.dir}`]);
      expectBuilt(b.r);
      await expectUntouched(s, await s.snapshot(), b);
      const root = await umociUnpack(temps, b.layout, "1");
      expect(await readFile(join(root, "seen-ro"), "utf8")).toBe("in-tree\n");
      // the rw copy kept the symlink as it was; inside the container it points at the container's own path
      expect(await readFile(join(root, "listing"), "utf8")).toBe("escape\n");
    });
  }

  for (const isolation of ISOLATIONS) {
    it(`from an image, a named context and the build context (${isolation})`, async () => {
      const s = await plantSentinel();
      const before = await s.snapshot();
      // an image whose /hostlink points at the host directory
      const imgCtx = await context(SRC_STAGE);
      const img = await build(imgCtx, ["--isolation", isolation, "--build-arg", `HOST=${s.dir}`]);
      expectBuilt(img.r);
      const named = await temps.make("kiln-named-");
      await symlink(s.dir, join(named, "hostlink"));
      const ctx = await context(`FROM base
RUN --mount=type=bind,from=img,source=/hostlink,target=/m ls -laR /m; cat /m/* || true
`);
      const fromImage = await build(ctx, ["--isolation", isolation, "--build-context", `img=oci-layout://${img.layout}:1`]);
      await expectUntouched(s, before, fromImage);
      expectMountError(fromImage, 2, /source "\/hostlink" not found in img/);

      const fromNamed = await build(ctx, ["--isolation", isolation, "--build-context", `img=${named}`]);
      await expectUntouched(s, before, fromNamed);
      expectMountError(fromNamed, 2, /source "\/hostlink" not found in img/);

      const local = await context(`FROM base
RUN --mount=type=bind,source=hostlink,target=/m,rw sh -c 'ls -laR /m; cat /m/*; for f in /m/s-*; do echo pwned > "$f"; done'
`);
      await symlink(s.dir, join(local, "hostlink"));
      const fromContext = await build(local, ["--isolation", isolation]);
      await expectUntouched(s, before, fromContext);
      expectMountError(fromContext, 2, /source "hostlink" not found/);
    });
  }
});

describe("escape 2: mount targets resolve after the mounts before them", () => {
  for (const { isolation, snapshotter } of MATRIX) {
    const flags = ["--isolation", isolation, "--snapshotter", snapshotter];
    it(`a target through a symlink in an earlier bind's or cache's content stays in the container (${isolation}, ${snapshotter})`, async () => {
      const s = await plantSentinel();
      const before = await s.snapshot();
      const id = randomBytes(6).toString("hex");
      const ctx = await context(`${SRC_STAGE}
FROM base
ARG HOST
RUN --mount=type=cache,id=${id},target=/c ln -s "$HOST" /c/escape
RUN --mount=type=bind,from=src,source=/tree,target=/m --mount=type=tmpfs,target=/m/escape/newdir --mount=type=cache,id=${id}-2,target=/m/escape/sub/cachedir --mount=type=cache,id=${id},target=/c --mount=type=tmpfs,target=/c/escape/viacache sh -c 'touch /m/escape/newdir/x /c/escape/viacache/y; ls -la /m/escape/ /c/escape/ > /listing'
`);
      const b = await build(ctx, [...flags, "--build-arg", `HOST=${s.dir}`]);
      expectBuilt(b.r);
      await expectUntouched(s, before, b);
      const root = await umociUnpack(temps, b.layout, "1");
      // the mounts went where the container sees the symlinks pointing: its own copy of the path
      expect(await readFile(join(root, "listing"), "utf8")).not.toContain(s.marker);
      expect(await readFile(join(root, "listing"), "utf8")).toMatch(/newdir/);
    });

    it(`a target that would need a new directory in a read-only bind is refused (${isolation}, ${snapshotter})`, async () => {
      const ctx = await context(`${SRC_STAGE}
FROM base
RUN --mount=type=bind,from=src,source=/real,target=/m --mount=type=tmpfs,target=/m/newdir true
`);
      const b = await build(ctx, [...flags, "--build-arg", "HOST=/nonexistent"]);
      expectMountError(b, 6, /--mount=type=tmpfs,target=\/m\/newdir: target \/m\/newdir does not exist inside the read-only mount at \/m/);
    });
  }
});

describe("escape 3: clean-up after a step re-resolves what it removes", () => {
  for (const { isolation, snapshotter } of MATRIX) {
    it(`a step that swaps a stub's parent for a symlink to a host directory cannot make kiln touch it (${isolation}, ${snapshotter})`, async () => {
      const s = await plantSentinel();
      const before = await s.snapshot();
      // a base with no /etc and no /a: kiln creates both as stubs (for /etc/hosts, ... and the tmpfs)
      const ctx = await context(`FROM scratch AS bare
COPY --from=base /bin /bin

FROM bare
ARG HOST
RUN --mount=type=tmpfs,target=/a/b/c sh -c 'mv /a /a.moved && ln -s "$HOST" /a && mv /etc /etc.moved && ln -s "$HOST" /etc'
`);
      const b = await build(ctx, ["--isolation", isolation, "--snapshotter", snapshotter, "--build-arg", `HOST=${s.dir}`]);
      expectBuilt(b.r);
      await expectUntouched(s, before, b);
    });
  }
});

describe("bind mounts with no target, and their cache keys", () => {
  for (const isolation of ISOLATIONS) {
    it(`a bind with no target lands at the working directory (${isolation})`, async () => {
      const ctx = await context(`${SRC_STAGE}
FROM base
WORKDIR /work
RUN --mount=type=bind,source=data cat f > /from-context
RUN --mount=from=src,source=/real cat f > /from-stage
`);
      await mkdir(join(ctx, "data"));
      await writeFile(join(ctx, "data", "f"), "from the context\n");
      const b = await build(ctx, ["--isolation", isolation, "--build-arg", "HOST=/nonexistent"]);
      expectBuilt(b.r);
      const root = await umociUnpack(temps, b.layout, "1");
      expect(await readFile(join(root, "from-context"), "utf8")).toBe("from the context\n");
      expect(await readFile(join(root, "from-stage"), "utf8")).toBe("in-tree\n");
      expect(await readdir(join(root, "work")), "the mounts' content entered a layer").toEqual([]);
    });
  }

  it("with no target and WORKDIR /, the mount is refused naming it", async () => {
    const ctx = await context("FROM base\nRUN --mount=type=bind,source=. true\n");
    const b = await build(ctx, []);
    expectMountError(b, 2, /invalid mount target "\/"/);
  });

  it("the RUN's key follows the content the bind source resolves to, not the rest of the stage", async () => {
    const ctx = await context(`FROM base AS src
ARG DATA=1
ARG OTHER=1
RUN mkdir -p /data && echo "$DATA" > /data/f && echo "$OTHER" > /other && ln -s /data /lnk

FROM base
RUN --mount=type=bind,from=src,source=/lnk,target=/m cat /m/f > /seen && cat /proc/sys/kernel/random/uuid > /stamp
`);
    const cacheDir = join(await temps.make("kiln-bindkey-"), "cache");
    const keyed = async (args: string[]): Promise<{ cached: boolean; seen: string }> => {
      const meta = join(await temps.make("kiln-meta-"), "meta.json");
      const b = await build(ctx, [...args, "--metadata-file", meta], cacheDir);
      expectBuilt(b.r);
      const steps = (JSON.parse(await readFile(meta, "utf8")) as { "kiln.steps": Array<{ instruction: string; cached: boolean }> })["kiln.steps"];
      const step = steps.find((x) => x.instruction.includes("/seen"));
      const root = await umociUnpack(temps, b.layout, "1");
      return { cached: step?.cached ?? false, seen: await readFile(join(root, "seen"), "utf8") };
    };
    expect(await keyed([])).toEqual({ cached: false, seen: "1\n" });
    // a change outside the source: the stage differs, the mounted content does not -> hit
    expect(await keyed(["--build-arg", "OTHER=2"])).toEqual({ cached: true, seen: "1\n" });
    // the content behind the symlink differs -> miss, and the step sees the new content
    expect(await keyed(["--build-arg", "DATA=2"])).toEqual({ cached: false, seen: "2\n" });
  });
});
