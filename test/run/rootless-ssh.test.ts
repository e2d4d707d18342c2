// Rootless RUN --mount=type=ssh: kiln built by an unprivileged user (user namespace with
// subordinate ids, chroot and oci isolation) cannot chown the agent socket to the mount's uid (a
// subordinate id on the host): the socket is moded so that user reaches it, kiln says so in one
// info line, and a step running as that user lists the agent's key through it.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";
import { tempDir } from "../snapshot/helpers.js";
import { ensureRootlessUser } from "../helpers/rootless-user.js";

const USER = "kiln-rootless-ssh";
const SUB_START = 1_500_000;
const LD = "/opt/ssh/ld-linux-x86-64.so.2 --library-path /opt/ssh";

const temps = new TempDirs();
let t: { dir: string; cleanup: () => void };
let ctx: string;
let home: string;
let key: string;
let publicKey: string;


beforeAll(() => {
  ensureRootlessUser(USER, SUB_START);
  t = tempDir("kiln-rootless-ssh-");
  chmodSync(t.dir, 0o755);
  home = join(t.dir, "home");
  mkdirSync(home);
  key = join(home, "id_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "kiln-rootless", "-f", key]);
  publicKey = readFileSync(`${key}.pub`, "utf8").trim();
  execFileSync("chown", ["-R", USER, home]);
  ctx = join(t.dir, "ctx");
  mkdirSync(join(ctx, "ssh"), { recursive: true });
  copyFileSync("/bin/busybox", join(ctx, "busybox"));
  // the host's ssh-add with its libraries
  copyFileSync("/usr/bin/ssh-add", join(ctx, "ssh/ssh-add"));
  const libs = execFileSync("ldd", ["/usr/bin/ssh-add"], { encoding: "utf8" }).split("\n").map((l) => /(\/\S+)\s+\(/.exec(l)?.[1]).filter((p): p is string => p !== undefined);
  for (const lib of libs) copyFileSync(lib, join(ctx, "ssh", basename(lib)));
  writeFileSync(join(ctx, "Dockerfile"), [
    "FROM scratch",
    "COPY busybox /bin/busybox",
    'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
    "COPY ssh /opt/ssh",
    "RUN mkdir -m 1777 /out",
    "USER 1000:1000",
    `RUN --mount=type=ssh,uid=1000,gid=1000,target=/tmp/agent.sock id -u > /out/who && ls -ln /tmp/agent.sock > /out/sock-ls && SSH_AUTH_SOCK=/tmp/agent.sock ${LD} /opt/ssh/ssh-add -L > /out/keys`,
    "",
  ].join("\n"));
  execFileSync("chmod", ["-R", "a+rX", ctx]);
});
afterAll(async () => {
  t?.cleanup();
  await temps.cleanup();
});

describe("rootless RUN --mount=type=ssh,uid=1000", () => {
  for (const isolation of ["chroot", "oci"]) {
    it(`under ${isolation}: the step running as uid 1000 reaches the agent through the socket kiln could not chown`, async () => {
      const out = join(home, `out-${isolation}`);
      const argv = [resolve("bin/kiln"), "build", "--progress", "plain", "--isolation", isolation, "--cache-dir", join(home, `cache-${isolation}`), "--ssh", `default=${key}`,
        "-o", `type=oci,dest=${out}`, "-t", "ssh:latest", ctx];
      const r = spawnSync("runuser", ["-u", USER, "--", process.execPath, ...argv], { encoding: "utf8", env: { PATH: process.env.PATH, HOME: home }, cwd: home });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain("--mount=type=ssh,uid=1000,gid=1000,target=/tmp/agent.sock: kiln is not root and cannot chown the agent socket to 1000:1000; it is mode 0666 instead of 0600 (only this step can reach it)");
      const root = await umociUnpack(temps, out, "latest");
      const file = (name: string): string => readFileSync(join(root, name), "utf8").trim();
      expect(file("out/who")).toBe("1000");
      expect(file("out/keys")).toBe(publicKey);
      // kiln's user is root in the namespace: the socket shows as 0's, open to the step's user
      expect(file("out/sock-ls")).toMatch(/^srw-rw-rw- +\d+ 0 +0 /);
      expect(existsSync(join(root, "tmp/agent.sock"))).toBe(false);
    }, 120_000);
  }
});
