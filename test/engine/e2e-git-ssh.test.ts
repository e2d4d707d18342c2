// End-to-end: SSH with Debian's sshd on a random 127.0.0.1 port (generated host key, one test
// key). An ssh:// git context fetched through the agent kiln starts for `--ssh default=KEYFILE`;
// scp-like `git@gitsrv:repo.git` contexts reached through the user's ssh config (GIT_SSH_COMMAND,
// core.sshCommand), which kiln passes through as it is;
// RUN --mount=type=ssh where the step itself lists the agent's keys (`ssh-add -L`) and logs in
// to the sshd (`ssh -T`) through the forwarded socket, under every isolation mode; the private
// key's bytes are in no artefact (layout blobs decompressed, the cache directory, the metadata
// file, the progress output) and kiln's agent is gone after the build; a required ssh mount
// without --ssh is refused with one line before any step runs.
import { execFileSync } from "node:child_process";
import { chmod, cp, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useBusyboxBase } from "../helpers/busybox.js";
import { kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";
import { ensureGitUser, GIT_USER, startSshd, TestRepo, type Sshd } from "../helpers/git-server.js";
import { mustRun } from "../helpers/kiln.js";

const temps = new TempDirs();
const base = useBusyboxBase();
let sshd: Sshd;
let repo: TestRepo;
let bare: string;
let gitBase: string;
let commit: string;
/** The private key's secret material: its file, each base64 line of the body, and the decoded body. */
let needles: Buffer[];
let tools: string;

beforeAll(async () => {
  await ensureGitUser();
  gitBase = await temps.make("kiln-ssh-gitbase-");
  await chmod(gitBase, 0o755);
  sshd = await startSshd(await temps.make("kiln-sshd-"), { gitBase });
  repo = await TestRepo.create(join(await temps.make("kiln-ssh-work-"), "repo"));
  commit = await repo.commit({
    Dockerfile: "FROM scratch\nCOPY . /src\n",
    "Dockerfile.named": "FROM scratch\nCOPY --from=x /over-ssh.txt /x.txt\nCOPY over-ssh.txt /main.txt\n",
    "over-ssh.txt": "fetched over ssh\n",
  });
  bare = await repo.bare(join(await temps.make("kiln-ssh-srv-"), "repo.git"));
  // what git@gitsrv:repo.git names: a copy owned by the git user
  await mustRun("git", ["clone", "-q", "--bare", bare, join(gitBase, "repo.git")]);
  await mustRun("chown", ["-R", `${GIT_USER}:`, join(gitBase, "repo.git")]);
  const key = await readFile(sshd.keyFile, "utf8");
  const body = key.split("\n").filter((l) => l !== "" && !l.startsWith("-----"));
  needles = [Buffer.from(key), ...body.filter((l) => l.length >= 16).map((l) => Buffer.from(l)), Buffer.from(body.join(""), "base64")];
  // the host's ssh and ssh-add with their libraries: the busybox image has no ssh client
  tools = await temps.make("kiln-ssh-tools-");
  for (const bin of ["/usr/bin/ssh", "/usr/bin/ssh-add"]) {
    await cp(bin, join(tools, basename(bin)));
    const libs = execFileSync("ldd", [bin], { encoding: "utf8" }).split("\n").map((l) => /(\/\S+)\s+\(/.exec(l)?.[1]).filter((p): p is string => p !== undefined);
    for (const lib of libs) await cp(lib, join(tools, basename(lib)), { dereference: true });
  }
  await cp(sshd.knownHosts, join(tools, "known_hosts"));
  // the scan finds the key where it is
  expect(leaks(dirname(sshd.keyFile))).toContain(sshd.keyFile);
});
afterAll(async () => {
  await sshd?.stop();
  await temps.cleanup();
});

/** Every file under `dir`, gzip members decompressed, searched for any needle. */
function leaks(dir: string, found: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) leaks(p, found);
    else if (st.isFile()) {
      let data = readFileSync(p);
      if (data[0] === 0x1f && data[1] === 0x8b) data = gunzipSync(data);
      if (needles.some((n) => data.includes(n))) found.push(p);
    }
  }
  return found;
}

function kilnAgents(): string[] {
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).flatMap((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      return basename(cmd[0] ?? "") === "ssh-agent" && cmd.some((a) => a.includes("/kiln-ssh-")) ? [pid] : [];
    } catch {
      return [];
    }
  });
}

const LD = "/opt/ssh/ld-linux-x86-64.so.2 --library-path /opt/ssh";

describe("kiln build: SSH", () => {
  it("an ssh:// context, fetched through the agent kiln starts for --ssh default=KEYFILE", async () => {
    const out = await temps.make("kiln-ssh-out-");
    const meta = join(out, "meta.json");
    const r = await kiln(
      ["build", "--progress", "plain", "--cache-dir", join(out, "cache"), "--ssh", `default=${sshd.keyFile}`, "--metadata-file", meta, "-t", "latest", "--output", `type=oci,dest=${join(out, "layout")}`, `${sshd.url}${bare}#main`],
      { env: { GIT_SSH_COMMAND: sshd.sshCommand, SSH_AUTH_SOCK: undefined } },
    );
    expect(r.code, r.stderr).toBe(0);
    const root = await umociUnpack(temps, join(out, "layout"), "latest");
    expect(await readFile(join(root, "src/over-ssh.txt"), "utf8")).toBe("fetched over ssh\n");
    expect(JSON.parse(await readFile(meta, "utf8"))["vcs.revision"]).toBe(commit);
    expect(leaks(out)).toEqual([]);
    expect(needles.some((n) => Buffer.from(r.stderr + r.stdout).includes(n))).toBe(false);
    expect(kilnAgents()).toEqual([]);
  });

  /** An ssh config as users write one for a server on another port: `Host gitsrv` and what reaches it. */
  async function sshConfig(identityFile: string): Promise<string> {
    const file = join(await temps.make("kiln-ssh-cfg-"), "config");
    await writeFile(file, [
      "Host gitsrv", "  HostName 127.0.0.1", `  Port ${sshd.port}`, `  IdentityFile ${identityFile}`, `  UserKnownHostsFile ${sshd.knownHosts}`,
      "  StrictHostKeyChecking yes", "  BatchMode yes", "",
    ].join("\n"));
    return file;
  }

  it("git@gitsrv:repo.git#main as the context and as --build-context, through the user's GIT_SSH_COMMAND=\"ssh -F CONFIG\" and kiln's agent", async () => {
    // the config's key file does not exist: only the agent of --ssh default can log in
    const config = await sshConfig(join(gitBase, "no-such-key"));
    const out = await temps.make("kiln-ssh-out-");
    const meta = join(out, "meta.json");
    const args = ["build", "--progress", "plain", "--cache-dir", join(out, "cache"), "--metadata-file", meta, "-t", "latest", "--output", `type=oci,dest=${join(out, "layout")}`,
      "-f", "Dockerfile.named", "--build-context", `x=${GIT_USER}@gitsrv:repo.git#main`, `${GIT_USER}@gitsrv:repo.git#main`];
    const env = { GIT_SSH_COMMAND: `ssh -F ${config}`, SSH_AUTH_SOCK: undefined };
    const r = await kiln([...args.slice(0, 1), "--ssh", `default=${sshd.keyFile}`, ...args.slice(1)], { env });
    expect(r.code, r.stderr).toBe(0);
    const root = await umociUnpack(temps, join(out, "layout"), "latest");
    expect(await readFile(join(root, "x.txt"), "utf8")).toBe("fetched over ssh\n");
    expect(await readFile(join(root, "main.txt"), "utf8")).toBe("fetched over ssh\n");
    const m = JSON.parse(await readFile(meta, "utf8")) as Record<string, unknown>;
    expect(m["vcs.revision"]).toBe(commit);
    expect(m["kiln.git"]).toEqual(expect.arrayContaining([
      { use: "context", remote: `${GIT_USER}@gitsrv:repo.git`, ref: "main", commit },
      { use: "context:x", remote: `${GIT_USER}@gitsrv:repo.git`, ref: "main", commit },
    ]));
    expect(leaks(out)).toEqual([]);
    expect(kilnAgents()).toEqual([]);
    // without the agent the same config cannot log in: the agent was what authenticated
    const none = await kiln(["build", "--cache-dir", await temps.make("kiln-ssh-c-"), `${GIT_USER}@gitsrv:repo.git#main`], { env });
    expect(none.code).toBe(1);
    expect(none.stderr.trim().split("\n")).toHaveLength(1);
    expect(none.stderr).toContain(`error: git source ${GIT_USER}@gitsrv:repo.git#main: git ls-remote failed`);
  });

  it("the user's own ssh set-up is used as it is: core.sshCommand from ~/.gitconfig with the config's IdentityFile, no --ssh", async () => {
    const home = await temps.make("kiln-ssh-home-");
    await writeFile(join(home, ".gitconfig"), `[core]\n\tsshCommand = ssh -F ${await sshConfig(sshd.keyFile)}\n`);
    const out = await temps.make("kiln-ssh-out-");
    const r = await kiln(["build", "--progress", "plain", "--cache-dir", join(out, "cache"), "-t", "latest", "--output", `type=oci,dest=${join(out, "layout")}`, `${GIT_USER}@gitsrv:repo.git#main`],
      { env: { HOME: home, GIT_SSH_COMMAND: undefined, GIT_SSH: undefined, SSH_AUTH_SOCK: undefined } });
    expect(r.code, r.stderr).toBe(0);
    const root = await umociUnpack(temps, join(out, "layout"), "latest");
    expect(await readFile(join(root, "src/over-ssh.txt"), "utf8")).toBe("fetched over ssh\n");
  });

  it("without an agent the ssh:// fetch fails with one line naming the URL", async () => {
    const r = await kiln(["build", "--cache-dir", await temps.make("kiln-ssh-c-"), `${sshd.url}${bare}#main`], { env: { GIT_SSH_COMMAND: sshd.sshCommand, SSH_AUTH_SOCK: undefined } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`git source ${sshd.url}${bare}#main: git ls-remote failed`);
  });

  for (const isolation of ["oci", "chroot", "plain-chroot", "proot"]) {
    it(`RUN --mount=type=ssh under ${isolation}: the step lists the agent's key and logs in with it; no key byte in any artefact`, async () => {
      const ctx = await temps.make("kiln-ssh-ctx-");
      await cp(tools, join(ctx, "ssh"), { recursive: true });
      const login = `${LD} /opt/ssh/ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/opt/ssh/known_hosts -p ${sshd.port} root@127.0.0.1 echo logged-in-over-ssh`;
      await writeFile(join(ctx, "Dockerfile"), [
        "FROM base",
        "COPY ssh /opt/ssh",
        `RUN --mount=type=ssh,required=true ${LD} /opt/ssh/ssh-add -L > /agent-keys && echo "$SSH_AUTH_SOCK" > /sock-path`,
        `RUN --mount=type=ssh,id=deploy,target=/tmp/agent.sock,uid=1000,mode=0600 ls -ln /tmp/agent.sock > /sock-ls && SSH_AUTH_SOCK=/tmp/agent.sock ${login} > /login`,
        "",
      ].join("\n"));
      const out = await temps.make("kiln-ssh-out-");
      const meta = join(out, "meta.json");
      const r = await kiln([
        "build", "--progress", "plain", "--isolation", isolation, "--cache-dir", join(out, "cache"), "--build-context", `base=${base().buildContext}`,
        "--ssh", `default=${sshd.keyFile}`, "--ssh", `deploy=${sshd.keyFile}`, "--metadata-file", meta, "-t", "latest", "--output", `type=oci,dest=${join(out, "layout")}`, ctx,
      ], { env: { SSH_AUTH_SOCK: undefined } });
      expect(r.code, r.stderr).toBe(0);
      const root = await umociUnpack(temps, join(out, "layout"), "latest");
      expect((await readFile(join(root, "agent-keys"), "utf8")).trim()).toBe(sshd.publicKey);
      expect((await readFile(join(root, "sock-path"), "utf8")).trim()).toBe("/run/buildkit/ssh_agent.0");
      expect(await readFile(join(root, "sock-ls"), "utf8")).toMatch(/^srw------- +\d+ 1000 +0 /);
      expect((await readFile(join(root, "login"), "utf8")).trim()).toBe("logged-in-over-ssh");
      // the sockets are not in the layers
      expect(existsSync(join(root, "tmp/agent.sock"))).toBe(false);
      expect(existsSync(join(root, "run/buildkit/ssh_agent.0"))).toBe(false);
      expect(leaks(out)).toEqual([]);
      expect(needles.some((n) => Buffer.from(r.stderr + r.stdout).includes(n))).toBe(false);
      expect(kilnAgents()).toEqual([]);
    });
  }

  it("--ssh default forwards the agent of $SSH_AUTH_SOCK (one the user runs)", async () => {
    const dir = await temps.make("kiln-ssh-own-");
    const sock = join(dir, "agent.sock");
    const { spawn } = await import("node:child_process");
    const agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" });
    try {
      // the agent takes connections a moment after its socket appears
      for (let i = 0; ; i++) {
        try {
          execFileSync("ssh-add", ["-q", sshd.keyFile], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: "ignore" });
          break;
        } catch (err) {
          if (i > 100) throw err;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      const ctx = await temps.make("kiln-ssh-ctx-");
      await cp(tools, join(ctx, "ssh"), { recursive: true });
      await writeFile(join(ctx, "Dockerfile"), `FROM base\nCOPY ssh /opt/ssh\nRUN --mount=type=ssh ${LD} /opt/ssh/ssh-add -L > /agent-keys\n`);
      const out = await temps.make("kiln-ssh-out-");
      const r = await kiln(["build", "--progress", "quiet", "--cache-dir", join(out, "cache"), "--build-context", `base=${base().buildContext}`, "--ssh", "default",
        "-t", "latest", "--output", `type=oci,dest=${join(out, "layout")}`, ctx], { env: { SSH_AUTH_SOCK: sock } });
      expect(r.code, r.stderr).toBe(0);
      const root = await umociUnpack(temps, join(out, "layout"), "latest");
      expect((await readFile(join(root, "agent-keys"), "utf8")).trim()).toBe(sshd.publicKey);
      expect(existsSync(sock)).toBe(true); // the user's agent is left alone
    } finally {
      agent.kill();
    }
  });

  it("a required ssh mount without --ssh: one line naming the Dockerfile line, exit 1, before any step", async () => {
    const ctx = await temps.make("kiln-ssh-ctx-");
    await mkdir(join(ctx, "d"));
    await writeFile(join(ctx, "Dockerfile"), "FROM base\nRUN echo first > /first\nRUN --mount=type=ssh,required=true ssh-add -l\n");
    const r = await kiln(["build", "--progress", "plain", "--cache-dir", await temps.make("kiln-ssh-c-"), "--build-context", `base=${base().buildContext}`, ctx], { env: { SSH_AUTH_SOCK: undefined } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe("error: Dockerfile:3: RUN --mount=type=ssh is required but no --ssh default was given");
    expect(await readdir(ctx)).toEqual(["Dockerfile", "d"]);
    const missing = await kiln(["build", "--cache-dir", await temps.make("kiln-ssh-c-"), "--ssh", "default=/nonexistent/key", ctx]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split("\n")[0]).toBe("error: --ssh default=/nonexistent/key: /nonexistent/key does not exist");
  });
});
