// Image config editing for metadata steps: how ENV, LABEL, MAINTAINER, EXPOSE, VOLUME, USER,
// WORKDIR, CMD, ENTRYPOINT, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD and ARG change the OCI config,
// and the history entry (`created_by`) each step records. Pure functions over ImageConfig.
import type { ContainerConfig, History, ImageConfig, Platform } from "../image/oci.js";
import type { TypedInstruction } from "../frontend/instructions.js";
import { posix } from "node:path";
import { KilnError } from "../errors.js";

/** Docker's default PATH, given to images whose Env lacks one (as Docker and buildah do). */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
export const DEFAULT_SHELL = ["/bin/sh", "-c"];
export const HISTORY_COMMENT = "kiln.dockerfile.v0";

/** The config of `FROM scratch` for a platform. */
export function scratchConfig(platform: Platform): ImageConfig {
  const cfg: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    // BuildKit's empty image (dockerfile2llb emptyImage): WorkingDir "/" and the default PATH.
    config: { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: "/" },
    rootfs: { type: "layers", diff_ids: [] },
    history: [],
  };
  if (platform.variant) cfg.variant = platform.variant;
  return cfg;
}

/** A deep copy, with a PATH added to Env when the base has none. */
export function inheritConfig(base: ImageConfig): ImageConfig {
  const cfg = structuredClone(base);
  cfg.config ??= {};
  const env = cfg.config.Env ?? [];
  if (!env.some((e) => e.startsWith("PATH="))) cfg.config.Env = [...env, `PATH=${DEFAULT_PATH}`];
  cfg.history ??= [];
  return cfg;
}

/** Env list -> map (later entries win). */
export function envMap(cfg: ImageConfig): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of cfg.config?.Env ?? []) {
    const eq = e.indexOf("=");
    if (eq < 0) m.set(e, "");
    else m.set(e.slice(0, eq), e.slice(eq + 1));
  }
  return m;
}

export function setEnv(c: ContainerConfig, key: string, value: string): void {
  const env = c.Env ?? [];
  const idx = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
  if (idx >= 0) env[idx] = `${key}=${value}`;
  else env.push(`${key}=${value}`);
  c.Env = env;
}

/** Resolve WORKDIR against the current one, as Docker does. */
export function resolveWorkdir(current: string | undefined, path: string): string {
  const joined = posix.isAbsolute(path) ? path : posix.join(current && current !== "" ? current : "/", path);
  const clean = posix.normalize(joined);
  return clean.length > 1 && clean.endsWith("/") ? clean.slice(0, -1) : clean;
}

/** The part of a StageState that SHELL, CMD and ENTRYPOINT read and change (a copy applyMetadata may edit). */
export interface ShellState {
  /** The SHELL in force (Docker's default `/bin/sh -c`). */
  shell: string[];
  /** Whether CMD was set in this stage (ENTRYPOINT then keeps it). */
  cmdSet: boolean;
}

/**
 * Apply a metadata instruction (already expanded) to the config. Returns the text recorded as
 * `created_by`. WORKDIR only sets WorkingDir here; creating the directory is a layer step.
 */
export function applyMetadata(cfg: ImageConfig, inst: TypedInstruction, ctx: ShellState): string {
  const c: ContainerConfig = (cfg.config ??= {});
  switch (inst.kind) {
    case "env":
      for (const { key, value } of inst.pairs) setEnv(c, key, value);
      return `ENV ${inst.pairs.map((p) => `${p.key}=${p.value}`).join(" ")}`;
    case "label":
      c.Labels ??= {};
      for (const { key, value } of inst.pairs) c.Labels[key] = value;
      return `LABEL ${inst.pairs.map((p) => `${p.key}=${p.value}`).join(" ")}`;
    case "maintainer":
      cfg.author = inst.maintainer;
      return `MAINTAINER ${inst.maintainer}`;
    case "expose": {
      c.ExposedPorts ??= {};
      const added: string[] = [];
      for (const p of inst.ports) {
        for (const port of expandPortRange(p)) {
          c.ExposedPorts[port] = {};
          added.push(port);
        }
      }
      return `EXPOSE ${added.join(" ")}`;
    }
    case "volume":
      c.Volumes ??= {};
      for (const v of inst.paths) c.Volumes[v] = {};
      return `VOLUME [${inst.paths.join(" ")}]`;
    case "user":
      c.User = inst.user;
      return `USER ${inst.user}`;
    case "workdir":
      c.WorkingDir = resolveWorkdir(c.WorkingDir, inst.path);
      return `WORKDIR ${c.WorkingDir}`;
    case "cmd":
      c.Cmd = commandLine(inst.command, inst.shellForm, ctx.shell);
      // BuildKit's dispatchCmd marks every CMD (either form) as escaped; Linux ignores it.
      c.ArgsEscaped = true;
      ctx.cmdSet = true;
      return `CMD ${JSON.stringify(c.Cmd)}`;
    case "entrypoint":
      c.Entrypoint = commandLine(inst.command, inst.shellForm, ctx.shell);
      if (!ctx.cmdSet) c.Cmd = null;
      return `ENTRYPOINT ${JSON.stringify(c.Entrypoint)}`;
    case "stopsignal":
      c.StopSignal = inst.signal;
      return `STOPSIGNAL ${inst.signal}`;
    case "healthcheck": {
      if (inst.test[0] === "NONE") {
        c.Healthcheck = { Test: ["NONE"] };
      } else {
        const hc: NonNullable<ContainerConfig["Healthcheck"]> = { Test: inst.test };
        if (inst.interval) hc.Interval = inst.interval;
        if (inst.timeout) hc.Timeout = inst.timeout;
        if (inst.startPeriod) hc.StartPeriod = inst.startPeriod;
        if (inst.startInterval) hc.StartInterval = inst.startInterval;
        if (inst.retries) hc.Retries = inst.retries;
        c.Healthcheck = hc;
      }
      return `HEALTHCHECK ${JSON.stringify(c.Healthcheck.Test)}`;
    }
    case "shell":
      c.Shell = [...inst.shell];
      ctx.shell = [...inst.shell];
      return `SHELL ${JSON.stringify(inst.shell)}`;
    case "onbuild":
      c.OnBuild = [...(c.OnBuild ?? []), inst.expression];
      return `ONBUILD ${inst.expression}`;
    case "arg":
      return `ARG ${inst.args.map((a) => (a.default !== undefined ? `${a.name}=${a.default}` : a.name)).join(" ")}`;
    default:
      throw new KilnError("INTERNAL", `internal: ${inst.kind} is not a metadata instruction`);
  }
}

/** Shell form is wrapped with the SHELL in force; exec form is used as written. */
export function commandLine(command: string[], shellForm: boolean, shell: string[]): string[] {
  return shellForm ? [...shell, command.join(" ")] : [...command];
}

/** `8000-8002/udp` -> ["8000/udp", "8001/udp", "8002/udp"]; `80` -> ["80/tcp"]. */
export function expandPortRange(spec: string): string[] {
  const [range, proto0] = spec.split("/");
  const proto = (proto0 ?? "tcp").toLowerCase();
  const [a, b] = (range ?? "").split("-");
  const start = Number(a);
  const end = b === undefined ? start : Number(b);
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}

export function addHistory(cfg: ImageConfig, createdBy: string, emptyLayer: boolean, created: string): void {
  const h: History = { created, created_by: createdBy, comment: HISTORY_COMMENT };
  if (emptyLayer) h.empty_layer = true;
  (cfg.history ??= []).push(h);
}
