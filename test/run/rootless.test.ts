// Rootless RUN: the runners are compiled to JavaScript and driven by an unprivileged user
// (created here with useradd, with a subordinate id range) through `runuser`.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { busyboxRoot, tempDir } from "../snapshot/helpers.js";
import { ensureRootlessUser } from "../helpers/rootless-user.js";

const USER = "kiln-rootless";
const SUB_START = 1_300_000;

let t: { dir: string; cleanup: () => void };
let root: string;
let driver: string;


interface DriverResult {
  exitCode?: number;
  outputTail?: string;
  error?: string;
  name?: string;
}

function runAsUser(isolation: string, runtime: string, spec: Record<string, unknown>): DriverResult {
  const r = spawnSync("runuser", ["-u", USER, "--", process.execPath, driver, isolation, runtime, JSON.stringify(spec)], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, HOME: join(t.dir, "home") },
    cwd: t.dir,
  });
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last) as DriverResult;
  } catch {
    throw new Error(`driver failed: ${r.stdout}\n${r.stderr}`);
  }
}

beforeAll(() => {
  ensureRootlessUser(USER, SUB_START);
  t = tempDir("kiln-rootless-");
  chmodSync(t.dir, 0o755);
  root = join(t.dir, "rootfs");
  mkdirSync(root);
  busyboxRoot(root);
  mkdirSync(join(t.dir, "home"));
  mkdirSync(join(t.dir, "work"));
  writeFileSync(join(t.dir, "host-sentinel"), "host");
  // compile the runners (and only what they import) for plain node
  const out = join(t.dir, "dist");
  execFileSync(
    resolve("node_modules/.bin/tsc"),
    ["--outDir", out, "--rootDir", "src", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--skipLibCheck", "--types", "node", "src/run/index.ts"],
    { stdio: "pipe" },
  );
  writeFileSync(join(out, "package.json"), '{"type":"module"}');
  driver = join(t.dir, "driver.mjs");
  writeFileSync(
    driver,
    `import { createRunner } from "./dist/run/index.js";
const [isolation, runtime, specJson] = process.argv.slice(2);
try {
  const runner = await createRunner(isolation, { runtime: runtime === "-" ? undefined : runtime, workDir: ${JSON.stringify(join(t.dir, "work"))} });
  const r = await runner.run(JSON.parse(specJson));
  console.log(JSON.stringify({ ...r, name: runner.name }));
} catch (e) {
  console.log(JSON.stringify({ error: e.message }));
}
`,
  );
  // everything the user needs is theirs; the rootfs belongs to "root" of the user namespace
  execFileSync("chown", ["-R", `${USER}:${USER}`, root, join(t.dir, "home"), join(t.dir, "work")]);
  // files owned by in-container uid 1000 are host subordinate ids
  execFileSync("chown", [`${SUB_START + 999}:${SUB_START + 999}`, join(root, "home/app")]);
}, 120_000);
afterAll(() => t?.cleanup());

const base = (script: string, extra: Record<string, unknown> = {}) => ({
  rootfs: "",
  argv: ["/bin/sh", "-c", script],
  env: ["PATH=/bin", "X=rootless"],
  cwd: "/",
  user: "",
  network: "host",
  ...extra,
});

describe("rootless RUN (unprivileged user)", () => {
  it("chroot isolation runs as root of a user namespace with subordinate ids", () => {
    const r = runAsUser("chroot", "-", { ...base("echo $X; id -u; cat /proc/self/uid_map | wc -l; cat /etc/hosts | head -1; ls /sys/class/net | wc -l"), rootfs: root });
    expect(r.error).toBeUndefined();
    expect(r.name).toBe("chroot (rootless)");
    expect(r.exitCode).toBe(0);
    const lines = (r.outputTail ?? "").split("\n");
    expect(lines.slice(0, 3)).toEqual(["rootless", "0", "2"]);
    expect(lines[3]).toBe("127.0.0.1\tlocalhost");
  });

  it("chroot isolation switches to USER app (a subordinate id) and network none has only lo", () => {
    const r = runAsUser("chroot", "-", { ...base("id -u; id -g; cd ~ 2>/dev/null; touch /home/app/made && echo wrote; ls /sys/class/net"), rootfs: root, user: "app", network: "none" });
    expect(r.error).toBeUndefined();
    expect(r.outputTail).toBe("1000\n1000\nwrote\nlo");
    // on the host the file belongs to the subordinate id for 1000
    const st = execFileSync("stat", ["-c", "%u", join(root, "home/app/made")], { encoding: "utf8" }).trim();
    expect(Number(st)).toBe(SUB_START + 999);
  });

  it("chroot escape attempts leave host files untouched", () => {
    const sentinel = join(t.dir, "host-sentinel");
    const r = runAsUser("chroot", "-", { ...base(`{ echo x > /proc/1/root/../../..${sentinel}; } 2>/dev/null; chroot /proc/1/root /bin/sh -c 'echo y > ../../..${sentinel}' 2>/dev/null; echo done`), rootfs: root });
    expect(r.outputTail).toBe("done");
    expect(readFileSync(sentinel, "utf8")).toBe("host");
  });

  it("oci isolation with runc runs rootless", () => {
    const r = runAsUser("oci", "runc", { ...base("echo $X; id -u; hostname; ls /sys/class/net"), rootfs: root, hostname: "rl", network: "none" });
    expect(r.error).toBeUndefined();
    expect(r.name).toBe("oci:runc (rootless)");
    expect(r.outputTail).toBe("rootless\n0\nrl\nlo");
    expect(r.exitCode).toBe(0);
    const app = runAsUser("oci", "runc", { ...base("id -u; id -g"), rootfs: root, user: "app" });
    expect(app.outputTail).toBe("1000\n1000");
  });

  it("oci isolation with crun runs rootless, or says clearly why it cannot on a hybrid cgroup host", () => {
    const hybrid =
      existsSync("/sys/fs/cgroup/unified/cgroup.controllers") && readFileSync("/sys/fs/cgroup/unified/cgroup.controllers", "utf8").trim() !== "";
    const r = runAsUser("oci", "crun", { ...base("echo $X; id -u"), rootfs: root });
    if (hybrid) {
      expect(r.error).toMatch(/^rootless crun cannot run on this host's hybrid cgroup layout/);
      // auto isolation then picks runc
      const auto = runAsUser("auto", "-", { ...base("echo auto"), rootfs: root });
      expect(auto.name).toBe("oci:runc (rootless)");
      expect(auto.outputTail).toBe("auto");
    } else {
      expect(r.error).toBeUndefined();
      expect(r.outputTail).toBe("rootless\n0");
    }
  });

  it("leaves no work directories behind", () => {
    const work = join(t.dir, "work");
    const left = existsSync(work) ? execFileSync("ls", ["-A", work], { encoding: "utf8" }).trim() : "";
    expect(left).toBe("");
  });

  it("a whole build as an unprivileged user: auto snapshotter is dir, --snapshotter overlay is refused before any work", () => {
    const ctx = join(t.dir, "ctx-snap");
    mkdirSync(ctx);
    execFileSync("cp", ["/bin/busybox", join(ctx, "busybox")]);
    writeFileSync(join(ctx, "Dockerfile"), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sh", "-c", "echo made > /made"]\n');
    execFileSync("chmod", ["-R", "a+rX", ctx]);
    const cache = join(t.dir, "home", "cache");
    execFileSync("chown", [USER, join(t.dir, "home")]);
    const kiln = (...args: string[]) =>
      spawnSync("runuser", ["-u", USER, "--", process.execPath, resolve("bin/kiln"), "build", "--progress", "plain", "--cache-dir", cache, ...args, ctx], {
        encoding: "utf8",
        env: { PATH: process.env.PATH, HOME: join(t.dir, "home") },
        cwd: join(t.dir, "home"),
      });
    const refused = kiln("--snapshotter", "overlay", "-o", `type=oci,dest=${join(t.dir, "home", "never")}`);
    expect(refused.status, refused.stderr).toBe(1);
    expect(refused.stderr).toContain("--snapshotter overlay: overlay mounts need root");
    expect(refused.stderr).not.toContain("#2 DONE"); // not even the COPY ran
    expect(existsSync(join(t.dir, "home", "never"))).toBe(false);
    const ok = kiln("-t", "snap:latest", "-o", `type=oci,dest=${join(t.dir, "home", "out")}`);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/#3 DONE/);
    const unpacked = join(t.dir, "unpacked");
    execFileSync("umoci", ["unpack", "--image", `${join(t.dir, "home", "out")}:latest`, unpacked], { stdio: "pipe" });
    expect(readFileSync(join(unpacked, "rootfs", "made"), "utf8")).toBe("made\n");
  });
});
