// The RUN step: builds the command line (shell form through SHELL, exec form, heredoc scripts),
// the environment (image Env plus the build args the step can see; build args are not persisted),
// the mounts (tmpfs, bind from the context or another stage, cache; a missing target is the
// working directory, as in BuildKit), runs it isolated in the stage's root filesystem and
// returns the snapshot of what changed.
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import type { RunInstruction } from "../../dockerfile/instructions.js";
import type { RunMount } from "../../dockerfile/mounts.js";
import { KilnError } from "../../errors.js";
import type { LayerEntry } from "../../layer/entry.js";
import type { RunSpec } from "../../run/index.js";
import { PREDEFINED_ARGS } from "../../dockerfile/plan.js";
import { copyTreeNoFollow } from "../../fs/copy-tree.js";
import { bindSourceDigest, resolveBindSource } from "./bind-source.js";
import { envMap } from "../image-config.js";
import type { StageBuilder } from "../stage.js";

/** Mount types RUN supports; the others are rejected before the build starts. */
export const SUPPORTED_MOUNTS = new Set(["bind", "cache", "tmpfs", "secret"]);

export async function runStep(
  sb: StageBuilder,
  t: RunInstruction,
  stepId: number,
): Promise<{ entries: LayerEntry[]; createdBy: string; snapshotSeconds: number }> {
  const session = sb.session;
  const rootfs = await sb.ensureRootfs();
  const runner = await session.runner();
  const cfg = sb.image.config.config ?? {};

  // Environment: image Env, then the stage's ARG values that ENV does not shadow, then the
  // predefined proxy args when given (never recorded in history or config).
  const env = envMap(sb.image.config);
  for (const [k, v] of sb.args.values()) if (!env.has(k)) env.set(k, v);
  for (const p of PREDEFINED_ARGS) {
    const v = session.plan.buildArgs[p];
    if (v !== undefined && !env.has(p)) env.set(p, v);
  }

  const tmp = await mkdtemp(join(await session.tmpRoot, "run-"));
  const mounts: NonNullable<RunSpec["mounts"]> = [];
  const argv = await commandArgv(sb, t, tmp, mounts);
  for (const m of t.mounts) {
    if (m.type === "secret") {
      const secret = await secretMount(sb, m, tmp);
      if (secret?.mount) mounts.push(secret.mount);
      if (secret?.env) env.set(secret.env.name, secret.env.value);
      continue;
    }
    mounts.push(await mountFor(sb, m, tmp));
  }

  const network = t.network === "none" ? "none" : t.network === "host" ? "host" : (session.options.network ?? "host");
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
    mounts,
    stdout: (data) => session.emit({ type: "step-log", id: stepId, stream: "stdout", data }),
    stderr: (data) => session.emit({ type: "step-log", id: stepId, stream: "stderr", data }),
    ...(session.options.signal ? { signal: session.options.signal } : {}),
  };
  const result = await runner.run(spec);
  if (result.exitCode !== 0) {
    const tail = result.outputTail.trimEnd();
    throw new KilnError("RUN_FAILED", 
      `process ${JSON.stringify(argv.join(" "))} did not complete successfully: exit code: ${result.exitCode}` +
        (tail ? `\n${tail.split("\n").map((l) => `  ${l}`).join("\n")}` : ""),
    );
  }
  const diffStarted = process.hrtime.bigint();
  const entries = await snapshot.changes();
  // The snapshot's cost: the baseline walk before the step plus the diff after it.
  const snapshotSeconds = Number(process.hrtime.bigint() - diffStarted + baselineNs) / 1e9;
  return { entries, createdBy: runCreatedBy(sb, t), snapshotSeconds };
}

/** History text of a RUN: `RUN |N K=V ... /bin/sh -c cmd`, build args first as Docker writes them. */
export function runCreatedBy(sb: StageBuilder, t: RunInstruction): string {
  const env = envMap(sb.image.config);
  const visible = [...sb.args.values()].filter(([k]) => !env.has(k)).map(([k, v]) => `${k}=${v}`);
  const argPrefix = visible.length > 0 ? `|${visible.length} ${visible.join(" ")} ` : "";
  let cmd = t.command.join(" ");
  for (const h of t.heredocs) cmd += `\n${h.content}${h.name}`;
  return `RUN ${argPrefix}${t.shellForm ? [...sb.ctx.shell, cmd].join(" ") : cmd}`;
}

/**
 * What a RUN's cache key needs beyond its text and args: the shell, and the content behind bind
 * mounts — a digest of the subtree the mount's source resolves to inside its tree (see
 * bind-source.ts), whatever tree it comes from. Cache and tmpfs mounts contribute only their
 * spec, never their contents.
 */
export async function runKeyExtra(sb: StageBuilder, t: RunInstruction): Promise<Record<string, string>> {
  const out: Record<string, string> = { shell: JSON.stringify(sb.ctx.shell) };
  for (const [i, m] of t.mounts.entries()) {
    if (m.type !== "bind") continue;
    out[`mount${i}`] = await bindSourceDigest(sb, m);
  }
  return out;
}

/**
 * The argv of a RUN. A heredoc that is the whole command runs as a script (through its shebang
 * when it has one, else through SHELL); other heredocs are handed to the shell with the command.
 */
async function commandArgv(
  sb: StageBuilder,
  t: RunInstruction,
  tmp: string,
  mounts: NonNullable<RunSpec["mounts"]>,
): Promise<string[]> {
  const shell = sb.ctx.shell;
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
function mountTarget(sb: StageBuilder, m: RunMount): string {
  const target = posix.resolve(sb.image.config.config?.WorkingDir || "/", m.target ?? "");
  if (target === "/") throw new KilnError("RUN_MOUNT_INVALID", `--mount=${m.spec}: invalid mount target "/"${m.target ? "" : " (no target, and the working directory is /)"}`);
  return target;
}

async function mountFor(sb: StageBuilder, m: RunMount, tmp: string): Promise<NonNullable<RunSpec["mounts"]>[number]> {
  const session = sb.session;
  const target = mountTarget(sb, m);
  const label = `--mount=${m.spec}`;
  switch (m.type) {
    case "tmpfs":
      return { type: "tmpfs", target, label };
    case "bind": {
      const src = await resolveBindSource(sb, m);
      if (m.readOnly) return { type: "bind", source: src.host, target, readonly: true, label };
      // A writable bind must not change its source: give the step a private copy of the resolved
      // tree, symlinks copied as they are (never followed, wherever they point).
      const copy = join(tmp, `bind-${createHash("sha256").update(target).digest("hex").slice(0, 12)}`);
      await copyTreeNoFollow(src.host, copy);
      return { type: "bind", source: copy, target, readonly: false, label };
    }
    case "cache": {
      const id = m.id ?? target;
      const dir = join(session.cacheDir, "cache-mounts", createHash("sha256").update(id).digest("hex"));
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
 * `RUN --mount=type=secret`: the secret's bytes (from `--secret id=...,src=FILE|env=VAR`) in a
 * private read-only file bind-mounted at the target (default /run/secrets/<id>), or an
 * environment variable when the mount says `env=`. Never part of a layer, the history, a cache
 * key or a log. A missing secret is an error only when the mount says `required`.
 */
async function secretMount(
  sb: StageBuilder,
  m: RunMount,
  tmp: string,
): Promise<{ mount?: NonNullable<RunSpec["mounts"]>[number]; env?: { name: string; value: string } } | undefined> {
  const id = m.id ?? (m.target ? posix.basename(m.target) : undefined);
  if (!id) throw new KilnError("RUN_MOUNT_INVALID", `--mount=${m.spec}: a secret needs id= (or a target)`);
  const given = sb.session.options.secrets?.[id];
  if (!given) {
    if (m.required) throw new KilnError("RUN_SECRET_MISSING", `secret "${id}" is required but was not given (use --secret id=${id},src=FILE)`);
    return undefined;
  }
  let value: Buffer;
  if (given.src !== undefined) {
    value = await readFile(given.src).catch((e: NodeJS.ErrnoException) => {
      throw new KilnError("RUN_SECRET_UNREADABLE", `secret "${id}": cannot read its source file (${e.code ?? e.message})`);
    });
  } else {
    const v = process.env[given.env ?? id];
    if (v === undefined) throw new KilnError("RUN_SECRET_MISSING", `secret "${id}": environment variable ${given.env ?? id} is not set`);
    value = Buffer.from(v, "utf8");
  }
  if (m.env && !m.target) return { env: { name: m.env, value: value.toString("utf8") } };
  const dir = join(tmp, "secrets");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, createHash("sha256").update(id).digest("hex").slice(0, 16));
  await writeFile(file, value, { mode: m.mode ?? 0o400 });
  await chmod(file, m.mode ?? 0o400);
  if (m.uid !== undefined || m.gid !== undefined) await chown(file, m.uid ?? 0, m.gid ?? 0);
  const target = m.target ? posix.resolve(sb.image.config.config?.WorkingDir || "/", m.target) : `/run/secrets/${id}`;
  return {
    mount: { type: "bind", source: file, target, readonly: true, label: `--mount=${m.spec}` },
    ...(m.env ? { env: { name: m.env, value: value.toString("utf8") } } : {}),
  };
}
