// SSH agent forwarding for a build: `--ssh default|ID=PATH_OR_SOCKET[,PATH...]` turned into one
// agent socket per id — an existing agent's socket (default: $SSH_AUTH_SOCK), or an `ssh-agent`
// kiln starts for the build and loads the key files into (killed, its socket removed, when the
// build ends) — and the per-step proxy sockets a RUN --mount=type=ssh gets: a Unix socket kiln
// listens on, owned and moded for the container's user (rootless: moded so that user can reach
// it, as it cannot be chowned), that passes each connection to the agent. The agent's own
// socket path never enters the step, and key bytes never leave ssh-add.
import { spawn } from "node:child_process";
import { lstatSync } from "node:fs";
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { KilnError, UsageError } from "../errors.js";

/** `--ssh ID=PATH,...`: the sockets or key files of each id (empty: $SSH_AUTH_SOCK). */
export type SshSpec = Record<string, string[]>;

/** Parse one `--ssh` value (buildx syntax) into [id, paths]. */
export function parseSshSpec(value: string): [string, string[]] {
  const eq = value.indexOf("=");
  const id = eq >= 0 ? value.slice(0, eq) : value;
  if (!/^[A-Za-z0-9_.-]+$/.test(id)) throw new UsageError("OPTION_INVALID", `--ssh ${value}: the id must be letters, digits, "_", "." or "-"`);
  const paths = eq >= 0 ? value.slice(eq + 1).split(",").filter((p) => p !== "").map((p) => resolve(p)) : [];
  for (const p of paths) if (!lstatSync(p, { throwIfNoEntry: false })) throw new UsageError("OPTION_INVALID", `--ssh ${value}: ${p} does not exist`);
  return [id, paths];
}

/** The agent sockets of a build, by id; `dispose()` ends the agents kiln started. */
export class SshAgents {
  private readonly sockets = new Map<string, Promise<string>>();
  private readonly started: Array<{ pid: number; dir: string }> = [];

  constructor(private readonly spec: SshSpec, private readonly signal?: AbortSignal) {}

  has(id: string): boolean {
    return id in this.spec;
  }

  ids(): string[] {
    return Object.keys(this.spec);
  }

  /** The host socket of agent `id` (started on first use when it is made of key files). */
  socket(id: string): Promise<string> {
    let p = this.sockets.get(id);
    if (!p) {
      p = this.open(id);
      this.sockets.set(id, p);
    }
    return p;
  }

  private async open(id: string): Promise<string> {
    const paths = this.spec[id];
    if (paths === undefined) throw new KilnError("RUN_SSH_MISSING", `no --ssh agent with id "${id}"`);
    if (paths.length === 0) {
      const sock = process.env.SSH_AUTH_SOCK;
      if (!sock) throw new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: SSH_AUTH_SOCK is not set (start an ssh-agent, or give --ssh ${id}=KEYFILE)`);
      return checkSocket(id, sock);
    }
    const kinds = paths.map((p) => lstatSync(p, { throwIfNoEntry: false }));
    kinds.forEach((st, i) => {
      if (!st) throw new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: ${paths[i]} does not exist`);
    });
    if (kinds.every((st) => st!.isSocket())) {
      if (paths.length > 1) throw new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: give one agent socket, not ${paths.length}`);
      return paths[0]!;
    }
    if (kinds.some((st) => st!.isSocket())) throw new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: give either one agent socket or key files, not both`);
    return this.startAgent(id, paths);
  }

  /** `ssh-agent -D -a SOCK` in a private directory, then `ssh-add KEY...` into it. */
  private async startAgent(id: string, keys: string[]): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "kiln-ssh-"));
    await chmod(dir, 0o700);
    const sock = join(dir, "agent.sock");
    const agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: ["ignore", "ignore", "pipe"], detached: false });
    const failed = new Promise<never>((_, reject) => {
      agent.once("error", (e: NodeJS.ErrnoException) => reject(e.code === "ENOENT"
        ? new KilnError("HOST_TOOL_MISSING", "ssh-agent is not installed (--ssh with key files needs it: apt-get install openssh-client | dnf install openssh-clients | apk add openssh-client)")
        : new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: ssh-agent: ${e.message}`)));
      agent.once("exit", (code) => reject(new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: ssh-agent exited (${code ?? "signal"})`)));
    });
    failed.catch(() => undefined);
    if (agent.pid !== undefined) this.started.push({ pid: agent.pid, dir });
    const deadline = Date.now() + 10_000;
    // the socket file exists from bind(2) on, but takes connections only after listen(2)
    while (!(await accepts(sock))) {
      if (Date.now() > deadline) throw new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: ssh-agent did not start`);
      await Promise.race([failed, new Promise((r) => setTimeout(r, 20))]);
    }
    await new Promise<void>((resolveAdd, reject) => {
      const add = spawn("ssh-add", ["-q", ...keys], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, SSH_AUTH_SOCK: sock, SSH_ASKPASS: "", DISPLAY: "" } });
      const err: Buffer[] = [];
      add.stderr.on("data", (b: Buffer) => err.push(b));
      const onAbort = (): void => void add.kill("SIGKILL");
      this.signal?.addEventListener("abort", onAbort, { once: true });
      add.once("error", (e) => reject(new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: ssh-add: ${e.message}`)));
      add.once("close", (code) => {
        this.signal?.removeEventListener("abort", onAbort);
        // ssh-add names the file, never its content
        if (code === 0) resolveAdd();
        else reject(new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: ssh-add could not load ${keys.join(", ")}: ${Buffer.concat(err).toString("utf8").trim().split("\n").pop() ?? ""}`));
      });
    });
    return sock;
  }

  /** Kill the agents kiln started and remove their sockets. */
  async dispose(): Promise<void> {
    for (const a of this.started.splice(0)) {
      try {
        process.kill(a.pid, "SIGTERM");
      } catch {
        // already gone
      }
      await rm(a.dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

/** Whether something listens on the Unix socket `path`. */
function accepts(path: string): Promise<boolean> {
  if (!lstatSync(path, { throwIfNoEntry: false })?.isSocket()) return Promise.resolve(false);
  return new Promise((done) => {
    const c = createConnection(path);
    c.once("connect", () => {
      c.destroy();
      done(true);
    });
    c.once("error", () => done(false));
  });
}

function checkSocket(id: string, path: string): string {
  if (!lstatSync(path, { throwIfNoEntry: false })?.isSocket()) throw new KilnError("SSH_AGENT_FAILED", `--ssh ${id}: ${path} is not a socket`);
  return path;
}

/** A listening proxy socket; `close()` stops it and removes the socket file. */
export interface AgentProxy {
  path: string;
  /** The mode the socket got, when it differs from the one asked for (see `proxyMode`). */
  widenedMode?: number;
  close(): Promise<void>;
}

/**
 * The mode a proxy socket gets. Root chowns it to the owner asked for and keeps the mode. A
 * process that is not root cannot chown: when the owner asked for is another host id than its
 * own (a rootless step's `uid=1000` is a subordinate id), the owner's permission bits are given
 * to group and others as well, so that user can connect (connect(2) needs write permission).
 * The socket lives in a directory only kiln's user can enter on the host; the step reaches it
 * through its mount.
 */
export function proxyMode(owner: { mode: number; uid: number; gid: number }, self: { uid: number; gid: number } | undefined): number {
  if (self === undefined || self.uid === 0) return owner.mode;
  const own = owner.mode & 0o700;
  const widened = owner.mode | (own >> 3) | (own >> 6);
  if (owner.uid !== self.uid) return widened;
  // the right owner; a group other than kiln's cannot be set either: that group's bits go to others
  if (owner.gid !== self.gid) return owner.mode | ((owner.mode & 0o070) >> 3);
  return owner.mode;
}

/**
 * Listen on `path` (a new socket file, mode and owner as given: host ids) and pass every
 * connection through to the agent at `agent`; `close()` removes the socket unless told not to
 * (a socket in a step's rootfs is removed by the step's own guarded clean-up).
 */
export async function listenAgentProxy(path: string, agent: string, owner: { mode: number; uid: number; gid: number }, removeOnClose = true): Promise<AgentProxy> {
  const open = new Set<{ destroy(): void }>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(agent);
    open.add(client);
    open.add(upstream);
    client.pipe(upstream).pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", (e) => fail(new KilnError("SSH_AGENT_FAILED", `cannot listen on the agent socket for the step: ${e.message}`)));
    server.listen(path, () => ok());
  });
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  const mode = proxyMode(owner, uid !== undefined && gid !== undefined ? { uid, gid } : undefined);
  await chmod(path, mode);
  if (uid === 0) await chown(path, owner.uid, owner.gid);
  return {
    path,
    ...(mode !== owner.mode ? { widenedMode: mode } : {}),
    close: async () => {
      // connections still open end with the step
      for (const c of open) c.destroy();
      await new Promise<void>((done) => server.close(() => done()));
      if (removeOnClose) await rm(path, { force: true });
    },
  };
}
