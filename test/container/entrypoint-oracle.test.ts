// ENTRYPOINT/CMD/arguments combined exactly as Docker does, with podman as the oracle: the same
// images (shell and exec forms of ENTRYPOINT and CMD, built by kiln) run under `kiln run` and
// `podman run` with the same arguments and --entrypoint overrides must print the same and exit
// the same. podman keeps its own storage in a temp dir (vfs: no mounts to leave behind).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { useBusyboxBase } from "../helpers/busybox.js";
import { expectBuilt, kiln, mustRun, run } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const base = useBusyboxBase();
let cache: string;
// podman's oci: transport names the image after the path, which must then be lowercase
const layouts = join(tmpdir(), `kiln-oracle-layouts-${process.pid}`);
let podmanArgs: string[];
const podmanImage = new Map<string, string>();

const VARIANTS: Record<string, string> = {
  "cmd-exec": `CMD ["echo", "cmd-exec"]`,
  "cmd-shell": `CMD echo "cmd-shell $0" $HOME`,
  "ep-exec": `ENTRYPOINT ["echo", "ep-exec"]\nCMD ["c1", "c2"]`,
  "ep-shell": `ENTRYPOINT echo ep-shell "$@" $0\nCMD ["ignored"]`,
  "ep-sh-c": `ENTRYPOINT ["/bin/sh", "-c", "echo ep-sh-c $0 $1; exit 4"]\nCMD ["c0", "c1"]`,
};

// [variant, --entrypoint (undefined: none), arguments]
const CASES: Array<[string, string | undefined, string[]]> = [
  ["cmd-exec", undefined, []],
  ["cmd-exec", undefined, ["echo", "replaced"]],
  ["cmd-shell", undefined, []],
  ["cmd-shell", "/bin/sh", ["-c", "echo over $0"]],
  ["ep-exec", undefined, []],
  ["ep-exec", undefined, ["x", "y z"]],
  ["ep-shell", undefined, []],
  ["ep-shell", undefined, ["a1", "a2"]],
  ["ep-exec", "/bin/echo", []],
  ["ep-exec", "/bin/echo", ["a", "b"]],
  ["ep-exec", "", ["echo", "cleared"]],
  ["ep-sh-c", undefined, []],
  ["ep-sh-c", undefined, ["d0", "d1"]],
];

beforeAll(async () => {
  cache = await temps.make("kiln-oracle-cache-");
  const storage = await temps.make("kiln-oracle-podman-");
  podmanArgs = ["--root", join(storage, "root"), "--runroot", join(storage, "run"), "--storage-driver", "vfs"];
  expect((await kiln(["tag", "--cache-dir", cache, `oci-layout://${base().layout}:${base().tag}`, "bb:1"])).code).toBe(0);
  for (const [name, text] of Object.entries(VARIANTS)) {
    const ctx = await temps.make(`kiln-oracle-${name}-`);
    await writeFile(join(ctx, "Dockerfile"), `FROM bb:1\n${text}\n`);
    const layout = join(layouts, name);
    await mkdir(layout, { recursive: true });
    expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "-t", `${name}:1`, "-o", `type=oci,dest=${layout}`, ctx]));
    const pulled = await mustRun("podman", [...podmanArgs, "pull", "-q", `oci:${layout}:1`]);
    podmanImage.set(name, pulled.stdout.trim());
  }
});
afterAll(async () => {
  await run("podman", [...podmanArgs, "system", "reset", "-f"]);
  await temps.cleanup();
  await rm(layouts, { recursive: true, force: true });
});

describe("ENTRYPOINT/CMD combination (podman as the oracle)", () => {
  it.each(CASES)("%s --entrypoint=%s %j", async (variant, entrypoint, args) => {
    const ep = entrypoint === undefined ? [] : [`--entrypoint=${entrypoint}`];
    const ours = await kiln(["run", "--cache-dir", cache, ...ep, `${variant}:1`, ...args]);
    const theirs = await run("podman", [
      ...podmanArgs, "run", "--rm", "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "host",
      ...ep, podmanImage.get(variant)!, ...args,
    ]);
    expect(theirs.stderr).toBe("");
    expect({ code: ours.code, stdout: ours.stdout, stderr: ours.stderr }).toEqual({ code: theirs.code, stdout: theirs.stdout, stderr: "" });
  });
});
