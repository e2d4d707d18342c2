// `kiln run --cap-add/--cap-drop` with podman as the oracle: `grep Cap /proc/self/status` in the
// container prints the same five sets under kiln (oci and chroot isolation) as under `podman run`
// (runc, explicit ulimits, and Docker's default capability set as its base through a
// containers.conf: podman's own default lacks NET_RAW, MKNOD and AUDIT_WRITE) for the same
// flags, as root and as a user; isolations that cannot set
// capabilities refuse the flags with one line; an unknown capability is one line, exit 125.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_CAPS } from "../../src/run/caps.js";
import { useBusyboxBase } from "../helpers/busybox.js";
import { kiln, mustRun, run } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const base = useBusyboxBase();
let cache: string;
let podmanArgs: string[];
let podmanImage: string;
let podmanEnv: Record<string, string>;
// podman's oci: transport names the image after the path, which must then be lowercase
const layout = join(tmpdir(), `kiln-caps-layout-${process.pid}`);

const CASES: string[][] = [
  [],
  ["--cap-drop", "ALL"],
  ["--cap-drop", "NET_RAW", "--cap-add", "sys_admin"],
  ["--cap-add", "ALL", "--cap-drop", "CAP_CHOWN"],
  ["--cap-drop", "all", "--cap-add", "net_bind_service", "--cap-add", "KILL"],
  // chroot(8) needs these three to enter the root and switch user: lent and taken back
  ["--cap-drop", "SYS_CHROOT", "--cap-drop", "setuid", "--cap-drop", "SETGID"],
  ["-u", "1000:1000", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD"],
  ["-u", "1000:1000", "--cap-drop", "ALL"],
  ["-u", "1000:1000", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"],
];

beforeAll(async () => {
  cache = await temps.make("kiln-caps-cache-");
  expect((await kiln(["tag", "--cache-dir", cache, `oci-layout://${base().layout}:${base().tag}`, "bb:1"])).code).toBe(0);
  await cp(base().layout, layout, { recursive: true });
  const storage = await temps.make("kiln-caps-podman-");
  const conf = join(storage, "containers.conf");
  await writeFile(conf, `[containers]\ndefault_capabilities = ${JSON.stringify(DEFAULT_CAPS.map((c) => c.slice(4)))}\n`);
  podmanEnv = { CONTAINERS_CONF: conf };
  podmanArgs = ["--root", join(storage, "root"), "--runroot", join(storage, "run"), "--storage-driver", "vfs"];
  podmanImage = (await mustRun("podman", [...podmanArgs, "pull", "-q", `oci:${layout}:${base().tag}`])).stdout.trim();
});
afterAll(async () => {
  await run("podman", [...podmanArgs, "system", "reset", "-f"]);
  await temps.cleanup();
  await rm(layout, { recursive: true, force: true });
});

const CMD = ["grep", "^Cap", "/proc/self/status"];

describe("kiln run --cap-add/--cap-drop (podman as the oracle)", () => {
  it.each(CASES.map((f): [string, string[]] => [f.join(" ") || "(no flags)", f]))("%s", async (_name, flags) => {
    const theirs = await run("podman", [
      ...podmanArgs, "run", "--rm", "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "host",
      ...flags, podmanImage, ...CMD,
    ], { env: podmanEnv });
    expect(theirs.stderr).toBe("");
    expect(theirs.code).toBe(0);
    expect(theirs.stdout).toMatch(/^CapInh:.*\nCapPrm:.*\nCapEff:.*\nCapBnd:.*\nCapAmb:.*\n$/);
    const userAdds = flags.includes("-u") && flags.includes("--cap-add");
    for (const isolation of ["oci", "chroot"]) {
      const ours = await kiln(["run", "--cache-dir", cache, "--isolation", isolation, ...flags, "bb:1", ...CMD]);
      if (isolation === "chroot" && userAdds) {
        // podman gives a non-root user the added capabilities as ambient ones; chroot cannot
        expect(ours).toEqual({ code: 125, stdout: "", stderr: "error: kiln run: --cap-add for a non-root user (1000:1000) needs --isolation oci: chroot cannot keep capabilities across the user switch\n" });
        continue;
      }
      expect({ isolation, code: ours.code, stdout: ours.stdout, stderr: ours.stderr }).toEqual({ isolation, code: 0, stdout: theirs.stdout, stderr: "" });
    }
  });

  it("the default set and its changes are really in force (a dropped CHOWN refuses chown, an added NET_ADMIN may change a link)", async () => {
    const dropped = await kiln(["run", "--cache-dir", cache, "--cap-drop", "CHOWN", "bb:1", "sh", "-c", "touch /f; chown 1000 /f"]);
    expect(dropped.code).toBe(1);
    expect(dropped.stderr).toMatch(/Operation not permitted/);
    const added = await kiln(["run", "--cache-dir", cache, "--network", "none", "--cap-add", "NET_ADMIN", "bb:1", "sh", "-c", "ip link set lo mtu 1280 && ip link show lo | grep -c 'mtu 1280'"]);
    expect(added.stdout, added.stderr).toBe("1\n");
    const without = await kiln(["run", "--cache-dir", cache, "--network", "none", "bb:1", "ip", "link", "set", "lo", "mtu", "1280"]);
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/Operation not permitted/);
  });

  it.each(["plain-chroot", "proot"])("--isolation %s refuses the flags in one line", async (isolation) => {
    const r = await kiln(["run", "--cache-dir", cache, "--isolation", isolation, "--cap-drop", "ALL", "bb:1", "true"]);
    expect(r).toEqual({ code: 125, stdout: "", stderr: `error: kiln run: --cap-add/--cap-drop need --isolation oci or chroot; ${isolation} cannot set the process's capabilities\n` });
  });

  it("an unknown capability is one line, exit 125", async () => {
    const r = await kiln(["run", "--cache-dir", cache, "--cap-add", "CAP_FLY", "bb:1", "true"]);
    expect(r).toEqual({ code: 125, stdout: "", stderr: 'error: kiln run: --cap-add CAP_FLY: unknown capability "CAP_FLY"\n' });
  });
});
