// The RUN step: builds the command line (shell form through SHELL, exec form, heredoc scripts),
// the environment (image Env plus the build args the step can see; build args are not persisted),
// the mounts (tmpfs, bind from the context or another stage, cache, secret, ssh agent; a missing
// target is the working directory, as in BuildKit), runs it isolated in the stage's root
// filesystem and returns the snapshot of what changed (with the owners a fake root recorded).
// Its key: the history text, every ARG value in scope, the instruction's fields, the shell, the
// `--add-host` entries and the content behind bind mounts.
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { listenAgentProxy, type AgentProxy } from "../../run/ssh-agent.js";
import type { IdMapping } from "../../snapshot/idmap.js";
import type { StepSnapshot } from "../../snapshot/rootfs-types.js";
import type { RunInstruction } from "../../frontend/instructions.js";
import type { RunMount } from "../../frontend/mounts.js";
import { KilnError } from "../../errors.js";
import { resolveExtraHosts } from "../../run/hosts.js";
import type { RunResult, RunSpec, Runner } from "../../run/types.js";
import { PREDEFINED_ARGS } from "../../frontend/plan.js";
import { copyTreeNoFollow } from "../../snapshot/copy-tree.js";
import { bindSourceDigest, resolveBindSource } from "./bind-source.js";
import { envMap } from "../image-config.js";
import { secretValue } from "../secret-value.js";
import { instructionExtra } from "../step-extra.js";
import type { LayerStep, Produced, StepContext } from "../step.js";
import { SBOM_SCAN_ARGS } from "../../attest/scan-targets.js";

/** Mount types RUN supports; the others are rejected before the build starts. */
export const SUPPORTED_MOUNTS = new Set(["bind", "cache", "tmpfs", "secret", "ssh"]);

export function runStep(t: RunInstruction): LayerStep {
  return {
    async keyParts(ctx) {
      return {
        parent: ctx.state.cacheState,
        instruction: runCreatedBy(ctx, t),
        platform: ctx.config.platformText,
        args: Object.fromEntries(ctx.state.args),
        extra: { ...instructionExtra(t), ...(await runKeyExtra(ctx, t)) },
      };
    },
    createdBy: (ctx) => runCreatedBy(ctx, t),
    produce: (ctx) => run(ctx, t),
  };
}

async function run(ctx: StepContext, t: RunInstruction): Promise<Produced> {
  const { state, config } = ctx;
  const rootfs = await ctx.rootfs();
  const runner = await ctx.runner();
  const cfg = state.image.config.config ?? {};

  // Environment: image Env, then the stage's ARG values that ENV does not shadow (but not
  // BuildKit's SBOM scan switches, which its frontend keeps out of RUN too), then the predefined
  // proxy args when given (never recorded in history or config).
  const env = envMap(state.image.config);
  for (const [k, v] of state.args) if (!env.has(k) && !SBOM_SCAN_ARGS.has(k)) env.set(k, v);
  for (const p of PREDEFINED_ARGS) {
    const v = config.buildArgs[p];
    if (v !== undefined && !env.has(p)) env.set(p, v);
  }

  const tmp = await ctx.tmpDir("run-");
  const mounts: NonNullable<RunSpec["mounts"]> = [];
  const argv = await commandArgv(ctx, t, tmp, mounts);
  const proxies: AgentProxy[] = [];
  let sshIndex = 0;
  try {
    for (const m of t.mounts) {
      if (m.type === "ssh") {
        const agent = await sshMount(ctx, m, sshIndex++, runner, proxies);
        if (agent) {
          mounts.push(agent);
          if (!env.has("SSH_AUTH_SOCK")) env.set("SSH_AUTH_SOCK", agent.target);
        }
        continue;
      }
      if (m.type === "secret") {
        const secret = await secretMount(ctx, m);
        if (secret?.mount) mounts.push(secret.mount);
        if (secret?.env) env.set(secret.env.name, secret.env.value);
        continue;
      }
      mounts.push(await mountFor(ctx, m, tmp));
    }

    const network = t.network === "none" ? "none" : t.network === "host" ? "host" : config.network;
    const baselineStarted = process.hrtime.bigint();
    const snapshot = await rootfs.beginStep({ exclude: [...mounts.map((m) => m.target.replace(/^\/+/, "")), ...(runner.stepExcludes ?? [])], ...(runner.idMap ? { idMap: runner.idMap } : {}) });
    const baselineNs = process.hrtime.bigint() - baselineStarted;
    const spec: RunSpec = {
      rootfs: rootfs.dir,
      argv,
      env: [...env].map(([k, v]) => `${k}=${v}`),
      cwd: cfg.WorkingDir || "/",
      user: cfg.User || "root",
      network,
      ...(config.extraHosts.length > 0 ? { extraHosts: resolveExtraHosts(config.extraHosts, network) } : {}),
      mounts,
      ...(config.ulimits.length > 0 ? { ulimits: config.ulimits } : {}),
      ...(config.shmSize !== undefined ? { shmSize: config.shmSize } : {}),
      stdout: (data) => ctx.emit({ type: "step-log", id: ctx.stepId, stream: "stdout", data }),
      stderr: (data) => ctx.emit({ type: "step-log", id: ctx.stepId, stream: "stderr", data }),
      ...(config.signal ? { signal: config.signal } : {}),
      ...(config.qemu !== undefined ? { qemu: config.qemu } : {}),
    };
    const result = await runner.run(spec);
    return await finishRun(argv, result, { snapshot, baselineNs });
  } finally {
    for (const p of proxies) await p.close().catch(() => undefined);
  }
}

async function finishRun(argv: string[], result: RunResult, snapshot: StartedSnapshot): Promise<Produced> {
  if (result.exitCode !== 0) {
    const tail = result.outputTail.trimEnd();
    throw new KilnError(
      "RUN_FAILED",
      `process ${JSON.stringify(argv.join(" "))} did not complete successfully: exit code: ${result.exitCode}` +
        (tail ? `\n${tail.split("\n").map((l) => `  ${l}`).join("\n")}` : ""),
    );
  }
  const diffStarted = process.hrtime.bigint();
  const entries = await snapshot.snapshot.changes(result.recordedOwners ? { recorded: result.recordedOwners } : {});
  // The snapshot's cost: the baseline walk before the step plus the diff after it.
  const snapshotSeconds = Number(process.hrtime.bigint() - diffStarted + snapshot.baselineNs) / 1e9;
  return { entries, snapshotSeconds };
}

/** The step's snapshot begun before the process ran, and what taking its baseline cost. */
interface StartedSnapshot {
  snapshot: StepSnapshot;
  baselineNs: bigint;
}

/** History text of a RUN: `RUN |N K=V ... /bin/sh -c cmd`, build args first as Docker writes them. */
function runCreatedBy(ctx: StepContext, t: RunInstruction): string {
  const env = envMap(ctx.state.image.config);
  const visible = [...ctx.state.args].filter(([k]) => !env.has(k)).map(([k, v]) => `${k}=${v}`);
  const argPrefix = visible.length > 0 ? `|${visible.length} ${visible.join(" ")} ` : "";
  let cmd = t.command.join(" ");
  for (const h of t.heredocs) cmd += `\n${h.content}${h.name}`;
  return `RUN ${argPrefix}${t.shellForm ? [...ctx.state.shell, cmd].join(" ") : cmd}`;
}

/**
 * What a RUN's cache key needs beyond its text and args: the shell, and the content behind bind
 * mounts — a digest of the subtree the mount's source resolves to inside its tree (see
 * bind-source.ts), whatever tree it comes from. Cache and tmpfs mounts contribute only their
 * spec, never their contents.
 */
async function runKeyExtra(ctx: StepContext, t: RunInstruction): Promise<Record<string, string>> {
  const out: Record<string, string> = { shell: JSON.stringify(ctx.state.shell) };
  // as BuildKit's ExecOp meta: the extra /etc/hosts entries are part of what the step ran with
  if (ctx.config.extraHosts.length > 0) out.extraHosts = JSON.stringify(ctx.config.extraHosts);
  for (const [i, m] of t.mounts.entries()) {
    if (m.type !== "bind") continue;
    out[`mount${i}`] = await bindSourceDigest(ctx, m);
  }
  return out;
}

/**
 * The argv of a RUN. A heredoc that is the whole command runs as a script (through its shebang
 * when it has one, else through SHELL); other heredocs are handed to the shell with the command.
 */
async function commandArgv(
  ctx: StepContext,
  t: RunInstruction,
  tmp: string,
  mounts: NonNullable<RunSpec["mounts"]>,
): Promise<string[]> {
  const shell = ctx.state.shell;
  if (!t.shellForm) return [...t.command];
  const cmd = t.command.join(" ");
  if (t.heredocs.length === 0) return [...shell, cmd];
  const only = t.heredocs.length === 1 ? t.heredocs[0]! : undefined;
  if (only && /^<<-?(["']?)[^\s"']+\1$/.test(cmd.trim())) {
    if (only.content.startsWith("#!")) {
      const dir = join(tmp, "pipes");
      await mkdir(dir, { recursive: true });
      const script = join(dir, "script");
      await writeFile(script, only.content, { mode: 0o755 });
      await chmod(script, 0o755);
      mounts.push({ type: "bind", source: dir, target: "/dev/pipes", readonly: true });
      return ["/dev/pipes/script"];
    }
    return [...shell, only.content];
  }
  let text = cmd;
  for (const h of t.heredocs) text += `\n${h.content}${h.name}`;
  return [...shell, text];
}

/** BuildKit's rule: a relative or missing target is taken from the working directory; "/" is refused. */
function mountTarget(ctx: StepContext, m: RunMount): string {
  const target = posix.resolve(ctx.state.image.config.config?.WorkingDir || "/", m.target ?? "");
  if (target === "/") throw new KilnError("RUN_MOUNT_INVALID", `--mount=${m.spec}: invalid mount target "/"${m.target ? "" : " (no target, and the working directory is /)"}`);
  return target;
}

async function mountFor(ctx: StepContext, m: RunMount, tmp: string): Promise<NonNullable<RunSpec["mounts"]>[number]> {
  const target = mountTarget(ctx, m);
  const label = `--mount=${m.spec}`;
  switch (m.type) {
    case "tmpfs":
      return { type: "tmpfs", target, label };
    case "bind": {
      const src = await resolveBindSource(ctx, m);
      if (m.readOnly) return { type: "bind", source: src.host, target, readonly: true, label };
      // A writable bind must not change its source: give the step a private copy of the resolved
      // tree, symlinks copied as they are (never followed, wherever they point).
      const copy = join(tmp, `bind-${createHash("sha256").update(target).digest("hex").slice(0, 12)}`);
      await copyTreeNoFollow(src.host, copy);
      return { type: "bind", source: copy, target, readonly: false, label };
    }
    case "cache": {
      const id = m.id ?? target;
      const dir = join(ctx.config.cacheDir, "cache-mounts", createHash("sha256").update(id).digest("hex"));
      await mkdir(dir, { recursive: true, mode: m.mode ?? 0o755 });
      if (m.uid !== undefined || m.gid !== undefined) await chown(dir, m.uid ?? 0, m.gid ?? 0);
      if (m.mode !== undefined) await chmod(dir, m.mode);
      return { type: "bind", source: dir, target, readonly: m.readOnly, label };
    }
    default:
      throw new KilnError("FEATURE_UNSUPPORTED", `--mount=type=${m.type} is not supported yet`);
  }
}

/**
 * `RUN --mount=type=secret`: the secret's bytes (from `--secret id=...,src=FILE|env=VAR`) as a
 * read-only file at the target (default /run/secrets/<id>) that the runner keeps in memory only
 * (a tmpfs inside the step's mount namespace where it can mount), or an environment variable when
 * the mount says `env=`. Never part of a layer, the history, a cache key or a log. A missing
 * secret is an error only when the mount says `required`.
 */
async function secretMount(
  ctx: StepContext,
  m: RunMount,
): Promise<{ mount?: NonNullable<RunSpec["mounts"]>[number]; env?: { name: string; value: string } } | undefined> {
  const id = m.id ?? (m.target ? posix.basename(m.target) : undefined);
  if (!id) throw new KilnError("RUN_MOUNT_INVALID", `--mount=${m.spec}: a secret needs id= (or a target)`);
  const value = await secretValue(ctx.config, id);
  if (!value) {
    if (m.required) throw new KilnError("RUN_SECRET_MISSING", `secret "${id}" is required but was not given`);
    return undefined;
  }
  if (m.env && !m.target) return { env: { name: m.env, value: value.toString("utf8") } };
  const target = m.target ? posix.resolve(ctx.state.image.config.config?.WorkingDir || "/", m.target) : `/run/secrets/${id}`;
  return {
    // the runner keeps the bytes where they vanish with the step (a tmpfs in its mount namespace)
    mount: {
      type: "secret",
      data: value,
      target,
      mode: m.mode ?? 0o400,
      ...(m.uid !== undefined ? { uid: m.uid } : {}),
      ...(m.gid !== undefined ? { gid: m.gid } : {}),
      label: `--mount=${m.spec}`,
    },
    ...(m.env ? { env: { name: m.env, value: value.toString("utf8") } } : {}),
  };
}

/**
 * `RUN --mount=type=ssh`: a socket at the target (default /run/buildkit/ssh_agent.N) that passes
 * connections to the `--ssh` agent of that id (default "default"), owned by the mount's uid/gid
 * (default 0:0, mode 0600) as the container sees them. Only the socket enters the step: no key,
 * no host path. Without that agent the mount is skipped, or an error when `required`.
 */
async function sshMount(ctx: StepContext, m: RunMount, index: number, runner: Runner, proxies: AgentProxy[]): Promise<NonNullable<RunSpec["mounts"]>[number] | undefined> {
  const id = m.id ?? "default";
  if (!ctx.config.ssh.has(id)) {
    if (m.required) throw new KilnError("RUN_SSH_MISSING", `--mount=${m.spec}: ssh agent "${id}" is required but no --ssh ${id} was given`);
    return undefined;
  }
  const agent = await ctx.config.ssh.socket(id);
  const target = m.target ? posix.resolve(ctx.state.image.config.config?.WorkingDir || "/", m.target) : `/run/buildkit/ssh_agent.${index}`;
  // a short host path: socket addresses are limited to 108 bytes
  const dir = await mkdtemp(join(tmpdir(), "kiln-ssh-"));
  const proxy = await listenAgentProxy(join(dir, `agent.${index}`), agent, {
    mode: m.mode ?? 0o600,
    uid: hostId(runner.idMap?.uid, m.uid ?? 0),
    gid: hostId(runner.idMap?.gid, m.gid ?? 0),
  });
  if (proxy.widenedMode !== undefined) {
    const mode = (n: number): string => `0${n.toString(8).padStart(3, "0")}`;
    ctx.config.emit({ type: "info", message: `--mount=${m.spec}: kiln is not root and cannot chown the agent socket to ${m.uid ?? 0}:${m.gid ?? 0}; it is mode ${mode(proxy.widenedMode)} instead of ${mode(m.mode ?? 0o600)} (only this step can reach it)` });
  }
  proxies.push({ path: proxy.path, close: async () => {
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  } });
  return { type: "bind", source: proxy.path, target, readonly: false, label: `--mount=${m.spec}` };
}

/** The host id a container id maps to (itself without a user namespace). */
function hostId(map: IdMapping[] | undefined, id: number): number {
  if (!map) return id;
  const row = map.find((r) => id >= r.containerID && id < r.containerID + r.size);
  return row ? row.hostID + (id - row.containerID) : id;
}
