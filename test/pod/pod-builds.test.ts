// kiln's own image in a simulated pod (issue #12), three pods: root with Docker's default
// capabilities; --user 1000; --cap-drop=ALL --user 1000 with no_new_privs (a "restricted" pod);
// each under Docker's default seccomp profile, runc, no --privileged, no --userns. In each pod: a
// FROM-scratch COPY build, a busybox base with RUN, and a Debian 12 base with `apt-get update &&
// apt-get install curl`. Each pod's layers are compared with the same build on the host with the
// normal isolation (oci) and the pods' snapshotter (dir), entry by entry (timestamps aside): the
// COPY and busybox builds give the same image digest; the apt build differs only where the step's
// own record of how it ran differs (logs); owners are compared for every entry, including those
// apt chowns to _apt / adm (under proot, the uid 1000 pods, fakeroot records them). A last test
// pins how the host's overlay snapshotter differs from dir.
import { chmod, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useBusyboxBase } from "../helpers/busybox.js";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import {
  layoutLayers, podDebianBase, podImage, podRun, podWritableDir, writeContext, writeSeccomp,
  type DebianBase, type LayerEntry, type PodVariant,
} from "../helpers/pod.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());
const busybox = useBusyboxBase();

const EPOCH = "1700000000";
let work: string;
let seccomp: string;
let debian: DebianBase;

const CASES = {
  scratch: {
    files: { Dockerfile: "FROM scratch\nCOPY hello.txt /\nCOPY dir/ /dir/\n", "hello.txt": "hello from the pod\n", "dir/a": "a\n", "dir/sub/b": "b\n" },
    base: undefined,
  },
  busybox: {
    files: {
      Dockerfile: "FROM base\nRUN mkdir -p /data/sub && echo hi > /data/sub/f && chmod 640 /data/sub/f && ln -s f /data/sub/l && id -u > /data/uid && echo done > /data/done\n",
    },
    base: "busybox",
  },
  debian: {
    files: { Dockerfile: "FROM base\nRUN apt-get update && apt-get install -y --no-install-recommends curl\n" },
    base: "debian",
  },
} as const;
type CaseName = keyof typeof CASES;

interface Built {
  digest: string;
  layers: LayerEntry[][];
  isolation: string | undefined;
  stderr: string;
}

function baseLayout(c: CaseName): string | undefined {
  const b = CASES[c].base;
  return b === "busybox" ? busybox().layout : b === "debian" ? debian.layout : undefined;
}

async function contextOf(c: CaseName): Promise<string> {
  return writeContext(join(work, `ctx-${c}`), CASES[c].files);
}

async function metadataIsolation(file: string): Promise<string | undefined> {
  return (JSON.parse(await readFile(file, "utf8")) as Record<string, string>)["kiln.isolation"];
}

const hostBuilds = new Map<CaseName, Promise<Built>>();
function hostBuild(c: CaseName): Promise<Built> {
  let p = hostBuilds.get(c);
  if (!p) {
    p = (async () => {
      const ctx = await contextOf(c);
      const out = join(work, `host-${c}`);
      const base = baseLayout(c);
      const r = await kiln(["build", "--progress", "plain", "--snapshotter", "dir", "--cache-dir", join(out, "cache"), "--metadata-file", join(work, `host-${c}.json`),
        ...(base ? ["--build-context", `base=oci-layout://${base}:latest`] : []), "-o", `type=oci,dest=${join(out, "layout")}`, ctx], { env: { SOURCE_DATE_EPOCH: EPOCH } });
      expectBuilt(r);
      return { ...(await layoutLayers(join(out, "layout"))), isolation: await metadataIsolation(join(work, `host-${c}.json`)), stderr: r.stderr };
    })();
    hostBuilds.set(c, p);
  }
  return p;
}

async function podBuild(variant: PodVariant, c: CaseName): Promise<Built> {
  const ctx = await contextOf(c);
  const out = await podWritableDir(join(work, `pod-${variant}-${c}`), variant);
  const base = baseLayout(c);
  const r = await podRun(
    {
      variant,
      seccomp,
      hostNetwork: true,
      mounts: { [ctx]: "/workspace/ctx:ro", [out]: "/out", ...(base ? { [base]: "/bases/base:ro" } : {}) },
      env: { SOURCE_DATE_EPOCH: EPOCH },
    },
    ["build", "--progress", "plain", "--metadata-file", "/out/meta.json", ...(base ? ["--build-context", "base=oci-layout:///bases/base:latest"] : []), "-o", "type=oci,dest=/out/layout", "ctx"],
  );
  expectBuilt(r);
  return { ...(await layoutLayers(join(out, "layout"))), isolation: await metadataIsolation(join(out, "meta.json")), stderr: r.stderr };
}

/** What differs between two layers' entries, as `path field host→pod` lines (timestamps are not compared). */
function differences(host: LayerEntry[], pod: LayerEntry[]): string[] {
  const byName = (l: LayerEntry[]) => new Map(l.map((e) => [e.name, e]));
  const h = byName(host);
  const p = byName(pod);
  const out: string[] = [];
  for (const [name, e] of h) if (!p.has(name)) out.push(`${name} only-on-host`);
  for (const [name, e] of p) {
    const o = h.get(name);
    if (!o) {
      out.push(`${name} only-in-pod`);
      continue;
    }
    for (const k of ["type", "mode", "uid", "gid", "linkname"] as const) if (o[k] !== e[k]) out.push(`${name} ${k} ${String(o[k])}→${String(e[k])}`);
    if (o.sha256 !== e.sha256) out.push(`${name} content`);
  }
  return out.sort();
}

// Files of the apt layer whose content records how and when the step ran, not what it installed:
// apt/dpkg logs (start times; term.log holds the terminal output), ldconfig's aux-cache (inode
// numbers and times of the libraries it read), apt's binary caches. The first three always differ
// between two runs; the others may. Their names, types, modes and owners are still compared.
const ALWAYS_DIFFERENT = ["var/log/apt/history.log", "var/log/apt/term.log", "var/log/dpkg.log"];
const MAY_DIFFER = ["var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin", "var/cache/ldconfig/aux-cache", "var/log/apt/eipp.log.xz"];
beforeAll(async () => {
  await podImage(); // builds and loads kiln's image, or throws with podman's reason
  debian = await podDebianBase();
  work = await temps.make("kiln-pod-builds-");
  await chmod(work, 0o755);
  seccomp = (await writeSeccomp(work)).path;
  // the busybox base's directory is private to its creator: the uid 1000 pods read it too
  await chmod(join(busybox().layout, ".."), 0o755);
  await import("node:child_process").then((cp) => cp.execFileSync("chmod", ["-R", "a+rX", busybox().layout]));
}, 900_000);

const VARIANTS: Array<{ variant: PodVariant; isolation: string }> = [
  { variant: "root", isolation: "plain-chroot" },
  { variant: "user1000", isolation: "proot" },
  { variant: "user1000-nocaps", isolation: "proot" },
];

describe.each(VARIANTS)("kiln in a pod ($variant)", ({ variant, isolation }) => {
  it("a FROM-scratch COPY build gives the host's image digest (no RUN, no preflight)", async () => {
    const [pod, host] = [await podBuild(variant, "scratch"), await hostBuild("scratch")];
    expect(pod.stderr).not.toContain("isolation:");
    expect(pod.layers.map((l) => l.map((e) => e.name))).toEqual([["hello.txt"], ["dir/", "dir/a", "dir/sub/", "dir/sub/b"]]);
    expect(pod.digest).toBe(host.digest);
  }, 300_000);

  it(`a busybox RUN runs under ${isolation} and gives the host's layers and digest`, async () => {
    const [pod, host] = [await podBuild(variant, "busybox"), await hostBuild("busybox")];
    expect(host.isolation).toBe("oci");
    expect(pod.isolation).toBe(isolation);
    expect(pod.stderr).toContain(`isolation: ${isolation} (`);
    const runLayer = pod.layers[pod.layers.length - 1]!;
    expect(runLayer.map((e) => [e.name, e.uid, e.gid])).toEqual([
      ["data/", 0, 0], ["data/done", 0, 0], ["data/sub/", 0, 0], ["data/sub/f", 0, 0], ["data/sub/l", 0, 0], ["data/uid", 0, 0],
    ]);
    expect(pod.layers).toEqual(host.layers);
    expect(pod.digest).toBe(host.digest);
  }, 300_000);

  it(`apt-get install curl in a Debian base runs under ${isolation}; the layer equals the host's (owners too) but for the step's own records`, async () => {
    const [pod, host] = [await podBuild(variant, "debian"), await hostBuild("debian")];
    expect(pod.isolation).toBe(isolation);
    expect(pod.layers.length).toBe(2);
    expect(pod.layers[0]).toEqual(host.layers[0]); // the base
    const podLayer = pod.layers[1]!;
    expect(podLayer.some((e) => e.name === "usr/bin/curl" && e.type === "file")).toBe(true);
    expect(podLayer.length).toBeGreaterThan(200);
    const got = differences(host.layers[1]!, podLayer);
    const content = got.filter((d) => d.endsWith(" content")).map((d) => d.slice(0, -" content".length));
    expect(got.filter((d) => !d.endsWith(" content"))).toEqual([]);
    // the entries apt chowns away from root: the same owners as on the host
    const owners = (l: LayerEntry[]) => l.filter((e) => e.uid !== 0 || e.gid !== 0).map((e) => `${e.name} ${e.uid}:${e.gid}`);
    expect(owners(podLayer)).toEqual(owners(host.layers[1]!));
    expect(owners(podLayer)).toEqual(expect.arrayContaining(["var/cache/apt/archives/partial/ 42:0", "var/lib/apt/lists/partial/ 42:0", "var/log/apt/term.log 0:4"]));
    expect(content.filter((f) => ALWAYS_DIFFERENT.includes(f))).toEqual(ALWAYS_DIFFERENT);
    expect(content.filter((f) => !ALWAYS_DIFFERENT.includes(f) && !MAY_DIFFER.includes(f))).toEqual([]);
  }, 900_000);
});

describe("the host reference", () => {
  // The pod modes always use the dir snapshotter (overlay needs mount), so the pods are compared
  // with the host's dir snapshotter. The host's default (overlay) gives the same entries: apt
  // rewrites its unchanged InRelease with identical bytes and mtime, which both leave out (as
  // Docker's and buildah's differs do).
  it("overlay and dir snapshotters give the same entries for apt's step (its own records aside)", async () => {
    const dir = await hostBuild("debian");
    const ctx = await contextOf("debian");
    const out = join(work, "host-debian-overlay");
    const r = await kiln(["build", "--progress", "quiet", "--snapshotter", "overlay", "--cache-dir", join(out, "cache"),
      "--build-context", `base=oci-layout://${debian.layout}:latest`, "-o", `type=oci,dest=${join(out, "layout")}`, ctx], { env: { SOURCE_DATE_EPOCH: EPOCH } });
    expectBuilt(r);
    const overlay = await layoutLayers(join(out, "layout"));
    const got = differences(overlay.layers[1]!, dir.layers[1]!);
    expect(got.filter((d) => !(d.endsWith(" content") && ALWAYS_DIFFERENT.concat(MAY_DIFFER).includes(d.slice(0, -" content".length))))).toEqual([]);
  }, 900_000);
});
