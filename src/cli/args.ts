// Command-line option parsing shared by every kiln command: `--name value`, `--name=value`,
// short aliases (`-f x`, `-t x`), repeatable options, boolean switches, positionals.
// Mistakes are UsageErrors (exit code 2) that name the option.
import { UsageError } from "../errors.js";

export interface OptionSpec {
  /** Long name without dashes, e.g. "build-arg". */
  name: string;
  short?: string;
  /** "string" takes a value; "boolean" is a switch (`--push`, `--push=false`). */
  type: "string" | "boolean";
  repeatable?: boolean;
  /** Shown by `kiln help COMMAND`. */
  help: string;
  valueName?: string;
  /**
   * A "string" option that may also stand alone (buildx's `--pull`): without `=VALUE` it takes
   * `value`, unless the next word is one of `accepts` (then that word is its value).
   */
  bare?: { value: string; accepts: readonly string[] };
}

export interface ParsedArgs {
  options: Map<string, string[]>;
  flags: Set<string>;
  positionals: string[];
}

/**
 * `stopAtPositional`: everything from the first positional on is positional (`kiln run IMAGE
 * sh -c ...`, as docker's run stops reading its own flags at the image).
 */
export function parseArgs(
  argv: string[],
  specs: OptionSpec[],
  command: string,
  mode: { stopAtPositional?: boolean; hints?: Readonly<Record<string, string>> } = {},
): ParsedArgs {
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short as string, s]));
  const options = new Map<string, string[]>();
  const flags = new Set<string>();
  const positionals: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i++] as string;
    if (arg === "--") {
      positionals.push(...argv.slice(i));
      break;
    }
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      spec = byLong.get(name);
      const hint = mode.hints?.[name];
      if (!spec && hint) throw new UsageError("USAGE", hint);
      if (!spec) throw new UsageError("USAGE", `kiln ${command}: unknown option --${name} (see: kiln help ${command})`);
    } else if (arg.startsWith("-") && arg.length > 1) {
      const name = arg.slice(1, 2);
      spec = byShort.get(name);
      if (!spec) throw new UsageError("USAGE", `kiln ${command}: unknown option ${arg} (see: kiln help ${command})`);
      // grouped switches: `-it` is `-i -t`
      const group = arg.slice(1).split("").map((c) => byShort.get(c));
      if (arg.length > 2 && group.every((g) => g?.type === "boolean")) {
        for (const g of group) flags.add(g!.name);
        continue;
      }
      if (arg.length > 2) inline = arg.slice(2).replace(/^=/, "");
    } else {
      if (mode.stopAtPositional) {
        positionals.push(arg, ...argv.slice(i));
        break;
      }
      positionals.push(arg);
      continue;
    }
    if (spec.type === "boolean") {
      const v = inline ?? "true";
      if (v !== "true" && v !== "false") throw new UsageError("USAGE", `kiln ${command}: --${spec.name} takes true or false, not "${v}"`);
      if (v === "true") flags.add(spec.name);
      else flags.delete(spec.name);
      continue;
    }
    let value = inline;
    if (value === undefined && spec.bare) {
      const next = argv[i];
      value = next !== undefined && spec.bare.accepts.includes(next) ? (i++, next) : spec.bare.value;
    }
    if (value === undefined) {
      if (i >= argv.length) throw new UsageError("USAGE", `kiln ${command}: option --${spec.name} needs a value`);
      value = argv[i++] as string;
    }
    const list = options.get(spec.name) ?? [];
    if (!spec.repeatable && list.length > 0) {
      throw new UsageError("USAGE", `kiln ${command}: option --${spec.name} given more than once`);
    }
    list.push(value);
    options.set(spec.name, list);
  }
  return { options, flags, positionals };
}

export function one(args: ParsedArgs, name: string): string | undefined {
  return args.options.get(name)?.[0];
}

export function many(args: ParsedArgs, name: string): string[] {
  return args.options.get(name) ?? [];
}

/** `K=V` pairs into a record (`--build-arg`, `--label`); `K` alone takes the value from `fromEnv`. */
export function keyValues(
  list: string[],
  option: string,
  fromEnv?: (key: string) => string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq === 0) throw new UsageError("USAGE", `--${option}: missing name in "${item}"`);
    if (eq < 0) {
      if (!fromEnv) throw new UsageError("USAGE", `--${option}: expected KEY=VALUE, got "${item}"`);
      const v = fromEnv(item);
      if (v !== undefined) out[item] = v;
      continue;
    }
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** buildx-style CSV option values: `type=oci,dest=out,tar=true` (values may be "quoted"). */
export function parseCsv(value: string, option: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of splitCsv(value)) {
    if (field === "") continue;
    const eq = field.indexOf("=");
    if (eq <= 0) throw new UsageError("USAGE", `--${option}: expected key=value in "${field}"`);
    out[field.slice(0, eq).trim().toLowerCase()] = field.slice(eq + 1);
  }
  return out;
}

function splitCsv(s: string): string[] {
  const fields: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    else if (ch === "," && !quoted) {
      fields.push(cur);
      cur = "";
    } else cur += ch;
  }
  fields.push(cur);
  return fields;
}

export function formatOptionHelp(specs: OptionSpec[]): string {
  const rows = specs.map((s) => {
    const names = `${s.short ? `-${s.short}, ` : "    "}--${s.name}${s.type === "string" ? ` ${s.valueName ?? "VALUE"}` : ""}`;
    return `  ${names.padEnd(36)} ${s.help}`;
  });
  return rows.join("\n");
}

/** `--NAME N`: a whole number from min to max, or undefined when absent. */
export function intOption(args: ParsedArgs, name: string, min: number, max: number): number | undefined {
  const v = one(args, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError("USAGE", `--${name} must be a whole number from ${min} to ${max}`);
  return Number(v);
}
