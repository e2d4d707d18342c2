// A private Docker engine for the comparisons and benchmarks: Debian's docker.io (dockerd 20.10
// with its built-in BuildKit) started with its own containerd, socket, data root and exec root
// under a caller-given directory — never the system's engine or its /var/lib/docker — and stopped
// by PID, with a check that no mount is left below that directory.
//
//   import { ensureDockerPackage, startDockerEngine } from "./lib/docker-engine.mjs";
//   ensureDockerPackage();                       // apt-get install docker.io when missing
//   const engine = await startDockerEngine(dir); // { version, env, docker(args), mustDocker(args, what), stop() }
//   ... await engine.stop();                     // resolves the problems found (left mounts), [] when clean
//   process.on("exit", engine.stopSync);         // the same without await, for exit paths
//
// Needs root. Errors are thrown as Error with a one-line message.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runAsync } from "./compare-harness.mjs";

export const DOCKER = "/usr/bin/docker";
export const DOCKERD = "/usr/sbin/dockerd";
export const CONTAINERD = "/usr/bin/containerd";

function lastLines(s, n = 3) {
  return s.trim().split("\n").filter(Boolean).slice(-n).join(" | ");
}

/** True when Debian's docker.io client, daemon and containerd are installed. */
export function dockerInstalled() {
  return existsSync(DOCKER) && existsSync(DOCKERD) && existsSync(CONTAINERD);
}

/**
 * Installs Debian's docker.io when its client, daemon or containerd is missing (as root), with a
 * policy-rc.d in place so the system's docker service is not started. Throws on failure.
 */
export function ensureDockerPackage(log = (m) => console.log(m)) {
  if (dockerInstalled()) return;
  if (process.getuid?.() !== 0) throw new Error("docker.io is not installed and installing it needs root");
  log("installing Debian's docker.io (apt-get) ...");
  const policy = "/usr/sbin/policy-rc.d";
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, "#!/bin/sh\n# written by kiln's scripts/lib/docker-engine.mjs during apt-get install docker.io\nexit 101\n", { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const install = () => spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "docker.io"], { env, encoding: "utf8" });
    let r = install();
    if (r.status !== 0) {
      spawnSync("apt-get", ["update"], { env, encoding: "utf8" });
      r = install();
    }
    if (r.status !== 0) throw new Error(`apt-get install docker.io failed: ${lastLines(r.stderr || r.stdout)}`);
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  if (!dockerInstalled()) throw new Error(`docker.io is installed but ${DOCKER}, ${DOCKERD} or ${CONTAINERD} is missing`);
}

/** A daemon child writing to a log file; `exited` resolves when it ends. */
function startDaemon(cmd, args, log) {
  writeFileSync(log, "");
  const fd = openSync(log, "a");
  const child = spawn(cmd, args, { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  child.on("error", () => {});
  return { child, exited, log, running: true };
}

function logTail(d, n = 5) {
  try {
    return lastLines(readFileSync(d.log, "utf8"), n);
  } catch {
    return "";
  }
}

function sleepOrExit(d, ms) {
  let timer;
  return Promise.race([d.exited, new Promise((res) => { timer = setTimeout(() => res(null), ms); })]).finally(() => clearTimeout(timer));
}

async function waitFor(what, d, probe, seconds) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    if (await probe()) return;
    const gone = await sleepOrExit(d, 200);
    if (gone) throw new Error(`${what} exited (${gone.code ?? gone.signal}): ${logTail(d)}`);
    if (Date.now() > until) throw new Error(`${what} did not come up in ${seconds}s: ${logTail(d)}`);
  }
}

/** Stops a daemon by its PID: SIGTERM, then SIGKILL after `seconds`. */
async function stopDaemon(d, seconds) {
  if (!d || !d.running) return;
  d.running = false;
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  d.child.kill("SIGTERM");
  if (!(await sleepOrExit(d, seconds * 1000))) {
    d.child.kill("SIGKILL");
    await d.exited;
  }
}

/** Mount points at or below `dir` (from /proc/self/mountinfo, octal escapes decoded). */
export function mountsBelow(dir) {
  const decode = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => decode(l.split(" ")[4]))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/**
 * Starts containerd and dockerd with everything under `dir` (keep it short: unix socket paths are
 * limited to 108 bytes). Resolves the engine once `docker version` answers; on failure both
 * daemons are stopped and the error names the daemon and its last log lines.
 */
export async function startDockerEngine(dir) {
  const p = {
    ctdRoot: join(dir, "containerd-root"),
    ctdState: join(dir, "containerd-state"),
    ctdSock: join(dir, "containerd.sock"),
    dataRoot: join(dir, "data"),
    execRoot: join(dir, "exec"),
    sock: join(dir, "docker.sock"),
    client: join(dir, "client"),
  };
  for (const d of [p.ctdRoot, p.ctdState, p.dataRoot, p.execRoot, p.client]) mkdirSync(d, { recursive: true });
  writeFileSync(join(dir, "containerd.toml"), [
    "version = 2",
    `root = ${JSON.stringify(p.ctdRoot)}`,
    `state = ${JSON.stringify(p.ctdState)}`,
    "[grpc]",
    `  address = ${JSON.stringify(p.ctdSock)}`,
    "[ttrpc]",
    `  address = ${JSON.stringify(`${p.ctdSock}.ttrpc`)}`,
    "[debug]",
    '  address = ""',
    "[metrics]",
    '  address = ""',
    "",
  ].join("\n"));
  writeFileSync(join(dir, "daemon.json"), "{}\n"); // not /etc/docker/daemon.json
  writeFileSync(join(p.client, "config.json"), "{}\n"); // no credentials or contexts of the user
  const env = { DOCKER_HOST: `unix://${p.sock}`, DOCKER_CONFIG: p.client, DOCKER_BUILDKIT: "1" };
  const docker = (args) => runAsync(DOCKER, args, { env });
  const started = Date.now();
  let containerd = null;
  let dockerd = null;
  let stopped = false;
  const stop = async () => {
    if (stopped) return [];
    stopped = true;
    await stopDaemon(dockerd, 30);
    await stopDaemon(containerd, 15);
    const left = mountsBelow(dir);
    for (const m of [...left].reverse()) spawnSync("umount", ["-l", m]);
    return left.length ? [`mounts left under ${dir} after dockerd stopped: ${left.join(", ")}`] : [];
  };
  try {
    containerd = startDaemon(CONTAINERD, ["--config", join(dir, "containerd.toml")], join(dir, "containerd.log"));
    await waitFor("containerd", containerd, async () => existsSync(p.ctdSock), 30);
    dockerd = startDaemon(DOCKERD, [
      "--config-file", join(dir, "daemon.json"), "--containerd", p.ctdSock, "--data-root", p.dataRoot, "--exec-root", p.execRoot,
      "-H", `unix://${p.sock}`, "--pidfile", join(dir, "docker.pid"), "--iptables=false", "--ip6tables=false", "--bridge=none",
      "--storage-driver", "overlay2",
    ], join(dir, "dockerd.log"));
    await waitFor("dockerd", dockerd, async () => existsSync(p.sock) && (await docker(["version", "--format", "{{.Server.Version}}"])).code === 0, 60);
  } catch (e) {
    await stop();
    throw e;
  }
  // For exit handlers that cannot await: SIGTERM each daemon and wait for it (polling), then
  // SIGKILL; leftover mounts are unmounted.
  const stopSync = () => {
    if (stopped) return;
    stopped = true;
    for (const [d, seconds] of [[dockerd, 30], [containerd, 15]]) {
      if (!d || d.child.exitCode !== null || d.child.signalCode !== null) continue;
      const alive = () => {
        try {
          process.kill(d.child.pid, 0);
          return !readFileSync(`/proc/${d.child.pid}/stat`, "utf8").includes(") Z ");
        } catch {
          return false;
        }
      };
      d.child.kill("SIGTERM");
      const until = Date.now() + seconds * 1000;
      while (alive() && Date.now() < until) spawnSync("sleep", ["0.2"]);
      if (alive()) d.child.kill("SIGKILL");
    }
    for (const m of mountsBelow(dir).reverse()) spawnSync("umount", ["-l", m]);
  };
  const version = (await docker(["version", "--format", "{{.Server.Version}}"])).stdout.trim();
  return {
    version,
    env,
    pids: { dockerd: dockerd.child.pid, containerd: containerd.child.pid },
    startSeconds: (Date.now() - started) / 1000,
    docker,
    async mustDocker(args, what) {
      const r = await docker(args);
      if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
      return r;
    },
    stop,
    stopSync,
  };
}
