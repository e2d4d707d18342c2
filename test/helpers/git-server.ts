// Git servers on 127.0.0.1 for the git-source tests, all started by the test: `git daemon` for
// git://, `git http-backend` run as CGI behind a small node HTTP server with basic auth (every
// request's Authorization header is recorded) for smart HTTP, and Debian's sshd on a random port
// with a generated host key and one authorized test key for ssh:// (and for a `git` user whose
// commands run in a repository directory, for scp-like URLs). Plus repositories made with
// the host's git (commits with fixed dates, so a test can name what it committed).
import { spawn, type ChildProcess } from "node:child_process";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { mustRun } from "./kiln.js";

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const GIT_ENV = {
  GIT_AUTHOR_NAME: "kiln test", GIT_AUTHOR_EMAIL: "test@kiln.invalid", GIT_COMMITTER_NAME: "kiln test", GIT_COMMITTER_EMAIL: "test@kiln.invalid",
  GIT_AUTHOR_DATE: "2024-01-01T00:00:00Z", GIT_COMMITTER_DATE: "2024-01-01T00:00:00Z", GIT_CONFIG_NOSYSTEM: "1", HOME: "/nonexistent",
};

/** A work tree repository at `dir` (branch main) whose commits `commit()` makes. */
export class TestRepo {
  constructor(readonly dir: string) {}

  static async create(dir: string): Promise<TestRepo> {
    await mkdir(dir, { recursive: true });
    const r = new TestRepo(dir);
    await r.git("init", "-q", "-b", "main");
    return r;
  }

  git(...args: string[]): Promise<string> {
    return mustRun("git", ["-C", this.dir, ...args], { env: GIT_ENV }).then((r) => r.stdout.trim());
  }

  /** Write files (path → content), commit them all; returns the new commit. */
  async commit(files: Record<string, string>, message = "commit"): Promise<string> {
    for (const [p, content] of Object.entries(files)) {
      await mkdir(dirname(join(this.dir, p)), { recursive: true });
      await writeFile(join(this.dir, p), content);
    }
    await this.git("add", "-A");
    await this.git("commit", "-q", "-m", message);
    return this.git("rev-parse", "HEAD");
  }

  /** A bare clone at `dest` (what the servers export), kept up to date by `push()`. */
  async bare(dest: string): Promise<string> {
    await mustRun("git", ["clone", "-q", "--bare", this.dir, dest], { env: GIT_ENV });
    await mustRun("git", ["-C", dest, "config", "http.receivepack", "false"], { env: GIT_ENV });
    await this.git("remote", "add", "origin", dest);
    return dest;
  }

  async push(): Promise<void> {
    await this.git("push", "-q", "--force", "--tags", "origin", "main");
  }
}

export interface Served {
  url: string;
  stop(): Promise<void>;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    child.once("exit", () => r());
    child.kill("SIGTERM");
  });
}

async function waitForPort(port: number, child: ChildProcess, what: string): Promise<void> {
  const { createConnection } = await import("node:net");
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode})`);
    const ok = await new Promise<boolean>((r) => {
      const c = createConnection(port, "127.0.0.1");
      c.once("connect", () => { c.destroy(); r(true); });
      c.once("error", () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `git daemon` exporting every repository under `base`: git://127.0.0.1:PORT/<name>. */
export async function startGitDaemon(base: string): Promise<Served> {
  const port = await freePort();
  const child = spawn("git", ["daemon", "--reuseaddr", "--export-all", "--informative-errors", `--base-path=${base}`, "--listen=127.0.0.1", `--port=${port}`, base], { stdio: "ignore" });
  await waitForPort(port, child, "git daemon");
  return { url: `git://127.0.0.1:${port}`, stop: () => stopChild(child) };
}

export interface HttpGit extends Served {
  /** The Authorization header of every request, in order (undefined: none sent). */
  authorizations: Array<string | undefined>;
  /** Requests that fetched objects (upload-pack POSTs other than a ref listing). */
  fetches: number;
}

/**
 * `git http-backend` (CGI) for the repositories under `base`, behind basic auth: a request is
 * let in when its Authorization is one of `accept` (e.g. "basic <base64 x-access-token:TOKEN>");
 * an empty `accept` lets every request in.
 */
export async function startHttpGit(base: string, accept: string[]): Promise<HttpGit> {
  const authorizations: Array<string | undefined> = [];
  const served: HttpGit = { url: "", authorizations, fetches: 0, stop: async () => undefined };
  const server: Server = createHttpServer((req, res) => {
    authorizations.push(req.headers.authorization);
    if (accept.length > 0 && (!req.headers.authorization || !accept.some((a) => a.toLowerCase() === req.headers.authorization!.toLowerCase()))) {
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"' });
      res.end("unauthorized\n");
      return;
    }
    cgi(req, base, () => served.fetches++).then(({ status, headers, body }) => {
      res.writeHead(status, headers);
      res.end(body);
    }, (err: Error) => {
      res.writeHead(500);
      res.end(err.message);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  served.url = `http://127.0.0.1:${port}`;
  served.stop = () => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  return served;
}

async function cgi(req: IncomingMessage, base: string, onFetch: () => void): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const url = new URL(req.url ?? "/", "http://x");
  const input: Buffer[] = [];
  for await (const chunk of req) input.push(chunk as Buffer);
  const text = (req.headers["content-encoding"] === "gzip" ? gunzipSync(Buffer.concat(input)) : Buffer.concat(input)).toString("latin1");
  if (req.method === "POST" && url.pathname.endsWith("/git-upload-pack") && !text.includes("command=ls-refs")) onFetch();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, GIT_PROJECT_ROOT: base, GIT_HTTP_EXPORT_ALL: "1", REQUEST_METHOD: req.method ?? "GET",
    PATH_INFO: decodeURIComponent(url.pathname), QUERY_STRING: url.search.replace(/^\?/, ""), REMOTE_USER: "test", REMOTE_ADDR: "127.0.0.1",
    CONTENT_TYPE: req.headers["content-type"] ?? "", CONTENT_LENGTH: String(Buffer.concat(input).length),
    ...(req.headers["git-protocol"] ? { GIT_PROTOCOL: String(req.headers["git-protocol"]) } : {}),
    ...(req.headers["content-encoding"] ? { HTTP_CONTENT_ENCODING: String(req.headers["content-encoding"]) } : {}),
  };
  const child = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "ignore"] });
  // http-backend may answer (an error, a GET) without reading the whole body: a closed pipe then is
  // expected, and its answer on stdout is what the client gets
  child.stdin.on("error", () => undefined);
  child.stdin.end(Buffer.concat(input));
  const out: Buffer[] = [];
  for await (const chunk of child.stdout) out.push(chunk as Buffer);
  const all = Buffer.concat(out);
  const split = all.indexOf("\r\n\r\n");
  const head = all.subarray(0, split).toString("latin1");
  const headers: Record<string, string> = {};
  let status = 200;
  for (const line of head.split("\r\n")) {
    const c = line.indexOf(":");
    const k = line.slice(0, c).trim();
    const v = line.slice(c + 1).trim();
    if (k.toLowerCase() === "status") status = Number(v.split(" ")[0]);
    else headers[k] = v;
  }
  return { status, headers, body: all.subarray(split + 4) };
}

export interface Sshd extends Served {
  port: number;
  /** The test user's private key file (authorized for root) and its public key line. */
  keyFile: string;
  publicKey: string;
  /** A known_hosts file naming the server's host key. */
  knownHosts: string;
  /** GIT_SSH_COMMAND that trusts only this server's host key and uses only the agent. */
  sshCommand: string;
}

/** The system user scp-like URLs name (`git@host:repo.git`), made once: a shell, no password, no home. */
export const GIT_USER = "git";

export async function ensureGitUser(): Promise<void> {
  const exists = await mustRun("id", ["-u", GIT_USER]).then(() => true, () => false);
  if (exists) return;
  await mustRun("useradd", ["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", GIT_USER]);
  // without PAM, sshd refuses a locked ("!") account even for a key
  await mustRun("usermod", ["-p", "*", GIT_USER]);
}

/**
 * Debian's sshd on 127.0.0.1:PORT (root may log in with the generated test key only). With
 * `gitBase`, the user GIT_USER may log in with the same key and its commands run in that
 * directory, so `git@host:repo.git` names `gitBase/repo.git` as on a git hosting server.
 */
export async function startSshd(dir: string, options: { gitBase?: string } = {}): Promise<Sshd> {
  await mkdir(dir, { recursive: true });
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const hostKey = join(dir, "host_ed25519");
  const keyFile = join(dir, "user_ed25519");
  await mustRun("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  await mustRun("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "kiln-test", "-f", keyFile]);
  const publicKey = (await readFile(`${keyFile}.pub`, "utf8")).trim();
  await writeFile(join(dir, "authorized_keys"), `${publicKey}\n`, { mode: 0o600 });
  if (options.gitBase) await writeFile(join(options.gitBase, ".authorized_keys"), `${publicKey}\n`, { mode: 0o644 });
  const port = await freePort();
  const config = join(dir, "sshd_config");
  await writeFile(config, [
    `Port ${port}`, "ListenAddress 127.0.0.1", `HostKey ${hostKey}`, `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    `PidFile ${join(dir, "sshd.pid")}`, "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
    "KbdInteractiveAuthentication no", "AllowAgentForwarding no", "X11Forwarding no", "PrintMotd no", "LogLevel ERROR",
    // sshd reads a user's authorized keys as that user: the git user's copy is where it can read it
    ...(options.gitBase ? [`Match User ${GIT_USER}`, `  AuthorizedKeysFile ${join(options.gitBase, ".authorized_keys")}`, `  ForceCommand cd ${options.gitBase} && eval "$SSH_ORIGINAL_COMMAND"`] : []),
  ].join("\n") + "\n");
  const child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config], { stdio: "ignore" });
  await waitForPort(port, child, "sshd");
  const knownHosts = join(dir, "known_hosts");
  const hostPub = (await readFile(`${hostKey}.pub`, "utf8")).trim().split(" ").slice(0, 2).join(" ");
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostPub}\n`);
  const sshCommand = `ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHosts}`;
  return { url: `ssh://root@127.0.0.1:${port}`, port, keyFile, publicKey, knownHosts, sshCommand, stop: () => stopChild(child) };
}
