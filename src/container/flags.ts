// `kiln run`'s values with Docker's spelling, parsed into RUN mounts and environment entries:
// `-v HOST:CTR[:ro|rw]` (HOST an absolute path: kiln has no named volumes), `--mount
// type=bind|tmpfs,...`, `-e K=V` / `-e K` (from kiln's environment; dropped when unset, as
// docker does) and `--env-file` lines (KEY=VALUE or KEY, `#` comments and blank lines skipped,
// values taken literally: no quotes removed). Every mistake is one line naming the value.
import { readFile } from "node:fs/promises";
import { isAbsolute, posix } from "node:path";
import { KilnError } from "../errors.js";
import type { RunMount } from "../run/types.js";

function targetPath(t: string, what: string): string {
  if (!t.startsWith("/")) throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: the container path ${JSON.stringify(t)} must be absolute`);
  const norm = posix.normalize(t);
  if (norm === "/") throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: cannot mount over the container's /`);
  return norm.replace(/\/+$/, "");
}

/** `-v HOST:CTR[:OPTIONS]`. */
export function parseVolume(spec: string): RunMount {
  const what = `bad volume spec ${JSON.stringify(spec)}`;
  const parts = spec.split(":");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: expected HOST:CONTAINER[:ro|rw]`);
  const [host, ctr, opts] = parts as [string, string, string | undefined];
  if (!isAbsolute(host)) throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: HOST must be an absolute path (kiln has no named volumes)`);
  let readonly = false;
  for (const o of (opts ?? "").split(",").filter((x) => x !== "")) {
    if (o === "ro") readonly = true;
    else if (o === "rw") readonly = false;
    else throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: unknown option "${o}" (kiln supports ro and rw)`);
  }
  return { type: "bind", source: host, target: targetPath(ctr, what), readonly, label: `-v ${spec}` };
}

/** `--mount type=bind,source=...,target=...[,readonly]` or `type=tmpfs,target=...`. */
export function parseMount(spec: string): RunMount {
  const what = `bad --mount ${JSON.stringify(spec)}`;
  const fields = new Map<string, string | undefined>();
  for (const f of spec.split(",")) {
    if (f === "") continue;
    const eq = f.indexOf("=");
    fields.set((eq < 0 ? f : f.slice(0, eq)).trim().toLowerCase(), eq < 0 ? undefined : f.slice(eq + 1));
  }
  const take = (...names: string[]): string | undefined => {
    for (const n of names) if (fields.has(n)) {
      const v = fields.get(n);
      for (const m of names) fields.delete(m);
      return v ?? "";
    }
    return undefined;
  };
  const type = take("type") ?? "volume";
  const target = take("target", "dst", "destination");
  if (target === undefined || target === "") throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: target= is required`);
  const ro = take("readonly", "ro");
  const readonly = ro === undefined ? false : ro === "" || ro === "true" || ro === "1" ? true : ro === "false" || ro === "0" ? false : null;
  if (readonly === null) throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: readonly takes true or false`);
  let mount: RunMount;
  if (type === "bind") {
    const source = take("source", "src");
    if (!source || !isAbsolute(source)) throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: type=bind needs source= an absolute host path`);
    mount = { type: "bind", source, target: targetPath(target, what), readonly, label: `--mount ${spec}` };
  } else if (type === "tmpfs") {
    mount = { type: "tmpfs", target: targetPath(target, what), label: `--mount ${spec}` };
  } else {
    throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: type=${type} is not supported (kiln supports type=bind and type=tmpfs)`);
  }
  const left = [...fields.keys()];
  if (left.length > 0) throw new KilnError("CONTAINER_MOUNT_INVALID", `${what}: unknown field "${left[0]}"`);
  return mount;
}

/** One `-e` value: K=V, or K taken from `env` (undefined when it is not set there). */
export function envEntry(item: string, env: NodeJS.ProcessEnv, what: string): [string, string] | undefined {
  const eq = item.indexOf("=");
  if (eq === 0 || item === "") throw new KilnError("CONTAINER_ENV_INVALID", `${what}: invalid environment entry ${JSON.stringify(item)} (no variable name)`);
  if (eq > 0) return [item.slice(0, eq), item.slice(eq + 1)];
  const v = env[item];
  return v === undefined ? undefined : [item, v];
}

/** The entries of an `--env-file`, in order. */
export async function readEnvFile(path: string, env: NodeJS.ProcessEnv): Promise<Array<[string, string]>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new KilnError("CONTAINER_ENV_INVALID", `--env-file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const out: Array<[string, string]> = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/^\s+/, "");
    if (line === "" || line.startsWith("#")) continue;
    if (/\s/.test(line.split("=")[0]!)) throw new KilnError("CONTAINER_ENV_INVALID", `--env-file ${path}:${i + 1}: variable name ${JSON.stringify(line.split("=")[0])} contains whitespace`);
    const e = envEntry(line, env, `--env-file ${path}:${i + 1}`);
    if (e) out.push(e);
  }
  return out;
}
