// Typed instructions: turns one AST Instruction into a validated, typed value (a discriminated
// union on `kind`), checking flags, argument counts and everything knowable before expansion.
// Words stay UNEXPANDED here; expand-instruction.ts applies variable expansion afterwards.
// Mirrors BuildKit's frontend/dockerfile/instructions/parse.go.
import { isGitUrl } from "../context/git-url.js";
import type { Heredoc, Instruction } from "./ast.js";
import { DockerfileError } from "../errors.js";
import { FlagError, type FlagSpec, type ParsedFlags, parseFlags, parseGoDuration } from "./flags.js";
import { suggestInstruction } from "./suggest.js";
import { MountError, type RunMount, parseMountSpec } from "./mounts.js";

interface Base {
  /** 1-based line of the keyword, and the last line of the instruction. */
  line: number;
  endLine: number;
  /** The instruction as written (for history `created_by` and messages). */
  original: string;
}

export interface KeyValue {
  key: string;
  value: string;
}

/** A COPY/ADD source given inline as a heredoc (`COPY <<EOF /dst`). */
export interface InlineSource {
  /** The file name: the heredoc delimiter. */
  path: string;
  data: string;
  /** False when the delimiter was quoted: the body is used verbatim. */
  expand: boolean;
}

export interface FromInstruction extends Base {
  kind: "from";
  /** Base image, stage name or "scratch", as written. */
  image: string;
  /** Stage name as written (`AS Build` -> "Build"); compare lower-cased. */
  stageName?: string;
  /** The `AS` keyword exactly as written (for casing lint). */
  asKeyword?: string;
  platform?: string;
}

export interface RunInstruction extends Base {
  kind: "run";
  /** Shell form: one element (the command line); exec form: argv. */
  command: string[];
  /** True for shell form (run via SHELL), false for JSON exec form. */
  shellForm: boolean;
  heredocs: Heredoc[];
  mounts: RunMount[];
  network?: "default" | "none" | "host";
  security?: "insecure" | "sandbox";
}

export interface CopyInstruction extends Base {
  kind: "copy";
  sources: string[];
  inline: InlineSource[];
  dest: string;
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
}

export interface AddInstruction extends Base {
  kind: "add";
  sources: string[];
  inline: InlineSource[];
  dest: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  checksum?: string;
  keepGitDir: boolean;
  /** undefined = default (unpack local archives only). */
  unpack?: boolean;
  exclude: string[];
}

export interface EnvInstruction extends Base {
  kind: "env";
  pairs: KeyValue[];
  /** `ENV key value` (no "=") form. */
  legacy: boolean;
}

export interface LabelInstruction extends Base {
  kind: "label";
  pairs: KeyValue[];
  legacy: boolean;
}

export interface MaintainerInstruction extends Base {
  kind: "maintainer";
  maintainer: string;
}

export interface ExposeInstruction extends Base {
  kind: "expose";
  ports: string[];
}

export interface VolumeInstruction extends Base {
  kind: "volume";
  paths: string[];
}

export interface UserInstruction extends Base {
  kind: "user";
  user: string;
}

export interface WorkdirInstruction extends Base {
  kind: "workdir";
  path: string;
}

export interface CmdInstruction extends Base {
  kind: "cmd";
  command: string[];
  shellForm: boolean;
  heredocs: Heredoc[];
}

export interface EntrypointInstruction extends Base {
  kind: "entrypoint";
  command: string[];
  shellForm: boolean;
  heredocs: Heredoc[];
}

export interface StopsignalInstruction extends Base {
  kind: "stopsignal";
  signal: string;
}

export interface HealthcheckInstruction extends Base {
  kind: "healthcheck";
  /** ["NONE"], ["CMD", ...argv] or ["CMD-SHELL", "command line"] (Docker's HealthConfig.Test). */
  test: string[];
  /** Durations in nanoseconds; 0 / undefined = inherit the default. */
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
}

export interface ShellInstruction extends Base {
  kind: "shell";
  shell: string[];
}

export interface OnbuildInstruction extends Base {
  kind: "onbuild";
  /** The trigger text as stored in the image config (`OnBuild`), never expanded. */
  expression: string;
  /** The wrapped instruction, typed (validated now so mistakes surface at build time). */
  trigger: TypedInstruction;
}

export interface ArgDeclaration {
  name: string;
  /** Default as written (unexpanded); undefined for `ARG NAME`. */
  default?: string;
}

export interface ArgInstruction extends Base {
  kind: "arg";
  args: ArgDeclaration[];
}

export type TypedInstruction =
  | FromInstruction
  | RunInstruction
  | CopyInstruction
  | AddInstruction
  | EnvInstruction
  | LabelInstruction
  | MaintainerInstruction
  | ExposeInstruction
  | VolumeInstruction
  | UserInstruction
  | WorkdirInstruction
  | CmdInstruction
  | EntrypointInstruction
  | StopsignalInstruction
  | HealthcheckInstruction
  | ShellInstruction
  | OnbuildInstruction
  | ArgInstruction;

export type InstructionKind = TypedInstruction["kind"];

export const INSTRUCTION_KINDS: readonly InstructionKind[] = [
  "from", "run", "copy", "add", "env", "label", "maintainer", "expose", "volume", "user",
  "workdir", "cmd", "entrypoint", "stopsignal", "healthcheck", "shell", "onbuild", "arg",
];

const FLAG_SPECS: Record<InstructionKind, FlagSpec> = {
  from: { platform: "string" },
  run: { mount: "strings", network: "string", security: "string" },
  copy: { chown: "string", chmod: "string", from: "string", link: "bool", parents: "bool", exclude: "strings" },
  add: {
    chown: "string", chmod: "string", link: "bool", checksum: "string", "keep-git-dir": "bool",
    unpack: "bool", exclude: "strings",
  },
  healthcheck: {
    interval: "string", timeout: "string", "start-period": "string", "start-interval": "string",
    retries: "string",
  },
  env: {}, label: {}, maintainer: {}, expose: {}, volume: {}, user: {}, workdir: {}, cmd: {},
  entrypoint: {}, stopsignal: {}, shell: {}, onbuild: {}, arg: {},
};

/** `ADD --checksum` accepts `sha256:<64 hex>` (and sha384/sha512 digests as BuildKit does). */
const CHECKSUM_RE = /^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$/;
/** Symbolic or octal chmod (`755`, `u=rwx,go+rx`), as BuildKit accepts. */
const CHMOD_OCTAL_RE = /^[0-7]{3,4}$/;
const CHMOD_SYMBOLIC_RE = /^([ugoa]*[-+=]([rwxXst]*|[ugo]))+(,([ugoa]*[-+=]([rwxXst]*|[ugo]))+)*$/;

/** Validate a `--chmod` value (after expansion, or before when it holds no `$`). */
export function checkChmod(value: string): string | undefined {
  if (CHMOD_OCTAL_RE.test(value) || CHMOD_SYMBOLIC_RE.test(value)) return undefined;
  return `invalid --chmod value ${JSON.stringify(value)} (octal like 755 or symbolic like u+x)`;
}

/** Validate a `--checksum` value: a digest, or for a git source (Dockerfile 1.17) the commit its ref must resolve to. */
export function checkChecksum(value: string, sources: readonly string[] = []): string | undefined {
  if (sources.some((s) => isGitUrl(s))) {
    if (/^[0-9a-f]{7,64}$/.test(value)) return undefined;
    return `invalid --checksum ${JSON.stringify(value)} for a git source (expected the commit: hex digits)`;
  }
  if (CHECKSUM_RE.test(value)) return undefined;
  return `invalid --checksum ${JSON.stringify(value)} (expected sha256:<64 hex digits>)`;
}

const HEREDOC_WORD_RE = /^<<(-?)(["']?)([^"'\s]+)\2$/;

/**
 * Type and validate one AST instruction. Throws DockerfileError(`KEYWORD: problem`, line, file)
 * for anything wrong that can be known before expansion.
 */
export function typeInstruction(node: Instruction, file = "Dockerfile"): TypedInstruction {
  const keyword = node.keyword.toLowerCase();
  const KEY = keyword.toUpperCase();
  const fail = (detail: string): DockerfileError => new DockerfileError("DOCKERFILE_INSTRUCTION", detail, node.startLine, file, { instruction: KEY });
  if (!(INSTRUCTION_KINDS as readonly string[]).includes(keyword)) {
    const hint = suggestInstruction(node.keyword.toUpperCase());
    throw new DockerfileError("DOCKERFILE_INSTRUCTION", 
      `unknown instruction: ${node.keyword.toUpperCase()}${hint ? ` (did you mean ${hint}?)` : ""}`,
      node.startLine,
      file,
    );
  }
  const kind = keyword as InstructionKind;
  let flags: ParsedFlags;
  try {
    flags = parseFlags(node.flags, FLAG_SPECS[kind]);
  } catch (e) {
    if (e instanceof FlagError) throw fail(e.message);
    throw e;
  }
  const base: Base = { line: node.startLine, endLine: node.endLine, original: node.original };
  const args = node.args;

  switch (kind) {
    case "from": {
      if (args.length !== 1 && args.length !== 3) throw fail("requires either one or three arguments (FROM image [AS name])");
      let stageName: string | undefined;
      let asKeyword: string | undefined;
      if (args.length === 3) {
        if (args[1].toLowerCase() !== "as") throw fail(`expected "AS" as the second word, got ${JSON.stringify(args[1])}`);
        asKeyword = args[1];
        stageName = args[2];
        if (!/^[a-z][a-z0-9-_.]*$/i.test(stageName)) {
          throw fail(`invalid stage name ${JSON.stringify(stageName)}: it must start with a letter and contain only letters, digits, "-", "_" and "."`);
        }
      }
      if (args[0] === "") throw fail("empty base image name");
      const platform = flags.string("platform");
      return { line: base.line, endLine: base.endLine, original: base.original, kind, image: args[0], stageName, asKeyword, platform };
    }

    case "run": {
      if (args.length === 0 && node.heredocs.length === 0) throw fail("requires at least one argument");
      if (!node.json && args.length === 1 && args[0].trim() === "" && node.heredocs.length === 0) {
        throw fail("requires at least one argument");
      }
      const mounts: RunMount[] = [];
      for (const spec of flags.list("mount")) {
        try {
          mounts.push(parseMountSpec(spec));
        } catch (e) {
          if (e instanceof MountError) throw fail(`--mount=${spec}: ${e.message}`);
          throw e;
        }
      }
      const network = flags.string("network");
      if (network !== undefined && network !== "default" && network !== "none" && network !== "host") {
        throw fail(`unsupported --network=${network} (one of default, none, host)`);
      }
      const security = flags.string("security");
      if (security !== undefined && security !== "insecure" && security !== "sandbox") {
        throw fail(`unsupported --security=${security} (one of insecure, sandbox)`);
      }
      return {
        line: base.line, endLine: base.endLine, original: base.original, kind, command: [...args], shellForm: !node.json, heredocs: node.heredocs, mounts,
        network, security,
      };
    }

    case "copy":
    case "add": {
      if (args.length === 0) throw fail("requires at least two arguments: source(s) and destination");
      const hasHeredocSource = args.slice(0, -1).some((a) => HEREDOC_WORD_RE.test(a));
      if (args.length < 2 && !(node.heredocs.length > 0 && hasHeredocSource)) {
        throw fail("requires at least two arguments, but only one was provided: the destination could not be determined");
      }
      const dest = args[args.length - 1];
      if (HEREDOC_WORD_RE.test(dest) && node.heredocs.some((h) => h.name === HEREDOC_WORD_RE.exec(dest)![3])) {
        throw fail("cannot accept a heredoc as the destination");
      }
      const sources: string[] = [];
      const inline: InlineSource[] = [];
      for (const src of args.slice(0, -1)) {
        const m = HEREDOC_WORD_RE.exec(src);
        const doc = m ? node.heredocs.find((h) => h.name === m[3]) : undefined;
        if (doc) inline.push({ path: doc.name, data: doc.content, expand: doc.expand });
        else sources.push(src);
      }
      // An empty value (`--chown=`) means "not set", as in BuildKit.
      const chown = flags.string("chown") || undefined;
      const chmod = flags.string("chmod") || undefined;
      if (chmod !== undefined && !chmod.includes("$")) {
        const problem = checkChmod(chmod);
        if (problem) throw fail(problem);
      }
      const exclude = flags.list("exclude");
      if (kind === "copy") {
        const from = flags.string("from") || undefined;
        return {
          line: base.line, endLine: base.endLine, original: base.original, kind, sources, inline, dest, from, chown, chmod, link: flags.bool("link"),
          parents: flags.bool("parents"), exclude,
        };
      }
      const checksum = flags.string("checksum") || undefined;
      if (checksum !== undefined && !checksum.includes("$")) {
        const problem = checkChecksum(checksum, sources);
        if (problem) throw fail(problem);
      }
      return {
        line: base.line, endLine: base.endLine, original: base.original, kind, sources, inline, dest, chown, chmod, link: flags.bool("link"), checksum,
        keepGitDir: flags.bool("keep-git-dir"), unpack: flags.optionalBool("unpack"), exclude,
      };
    }

    case "env":
    case "label": {
      if (args.length === 0) throw fail("requires at least one argument");
      if (args.length % 3 !== 0) throw fail("malformed arguments (expected key=value pairs)");
      const pairs: KeyValue[] = [];
      let legacy = false;
      for (let i = 0; i < args.length; i += 3) {
        if (args[i] === "") throw fail("names can not be blank");
        pairs.push({ key: args[i], value: args[i + 1] });
        if (args[i + 2] !== "=") legacy = true;
      }
      return { line: base.line, endLine: base.endLine, original: base.original, kind, pairs, legacy };
    }

    case "maintainer":
      if (args.length !== 1) throw fail("requires exactly one argument");
      return { line: base.line, endLine: base.endLine, original: base.original, kind, maintainer: args[0] };

    case "expose":
      if (args.length === 0) throw fail("requires at least one argument");
      for (const p of args) {
        if (!p.includes("$")) {
          const problem = checkExposePort(p);
          if (problem) throw fail(problem);
        }
      }
      return { line: base.line, endLine: base.endLine, original: base.original, kind, ports: [...args] };

    case "volume": {
      if (args.length === 0) throw fail("requires at least one argument");
      const paths = args.map((a) => a.trim());
      if (paths.some((p) => p === "")) throw fail("VOLUME specified can not be an empty string");
      return { line: base.line, endLine: base.endLine, original: base.original, kind, paths };
    }

    case "user":
    case "workdir":
    case "stopsignal": {
      if (args.length !== 1) throw fail("requires exactly one argument");
      const v = args[0];
      if (kind === "user") return { line: base.line, endLine: base.endLine, original: base.original, kind, user: v };
      if (kind === "workdir") return { line: base.line, endLine: base.endLine, original: base.original, kind, path: v };
      if (!v.includes("$")) {
        const problem = checkStopSignal(v);
        if (problem) throw fail(problem);
      }
      return { line: base.line, endLine: base.endLine, original: base.original, kind, signal: v };
    }

    case "cmd":
    case "entrypoint":
      return { line: base.line, endLine: base.endLine, original: base.original, kind, command: [...args], shellForm: !node.json, heredocs: node.heredocs };

    case "shell":
      if (!node.json) throw fail(`requires the arguments to be in JSON form, e.g. SHELL ["/bin/sh", "-c"]`);
      if (args.length === 0) throw fail("requires at least one argument");
      return { line: base.line, endLine: base.endLine, original: base.original, kind, shell: [...args] };

    case "healthcheck":
      return typeHealthcheck(node, flags, base, fail);

    case "onbuild": {
      const inner = node.inner;
      if (!inner) {
        if (args.length === 0) throw fail("requires at least one argument");
        throw fail("malformed trigger instruction");
      }
      const innerKey = inner.keyword.toLowerCase();
      if (innerKey === "onbuild") throw fail("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
      if (innerKey === "from" || innerKey === "maintainer") {
        throw fail(`${innerKey.toUpperCase()} isn't allowed as an ONBUILD trigger`);
      }
      const trigger = typeInstruction(inner, file);
      let expression = node.original.replace(/^\s*onbuild\s*/i, "");
      for (const h of node.heredocs.length > 0 ? node.heredocs : inner.heredocs) {
        expression += "\n" + h.content + h.name;
      }
      return { line: base.line, endLine: base.endLine, original: base.original, kind, expression, trigger };
    }

    case "arg": {
      if (args.length === 0) throw fail("requires at least one argument");
      const decls: ArgDeclaration[] = [];
      for (const word of args) {
        const eq = word.indexOf("=");
        const name = eq < 0 ? word : word.slice(0, eq);
        if (name === "") throw fail("names can not be blank");
        decls.push(eq < 0 ? { name } : { name, default: word.slice(eq + 1) });
      }
      return { line: base.line, endLine: base.endLine, original: base.original, kind, args: decls };
    }
  }
}

function typeHealthcheck(
  node: Instruction,
  flags: ParsedFlags,
  base: Base,
  fail: (detail: string) => DockerfileError,
): HealthcheckInstruction {
  const args = node.args;
  if (args.length === 0) throw fail("requires at least one argument (NONE or CMD ...)");
  // Shell form keeps the whole rest of the line as one string: split off the first word.
  let typ: string;
  let rest: string[];
  let json = node.json;
  if (!node.json && args.length === 1) {
    const m = /^\s*(\S+)\s*([\s\S]*)$/.exec(args[0]);
    typ = m ? m[1] : "";
    rest = m && m[2] !== "" ? [m[2]] : [];
    if (m && /^\[/.test(m[2].trim())) {
      // `HEALTHCHECK CMD ["a","b"]` arrives as one string when the parser kept it whole.
      try {
        const parsed: unknown = JSON.parse(m[2].trim());
        if (Array.isArray(parsed) && parsed.every((x) => typeof x === "string")) {
          rest = parsed as string[];
          json = true;
        }
      } catch {
        // not JSON: shell form
      }
    }
  } else {
    typ = args[0];
    rest = args.slice(1);
  }
  const upper = typ.toUpperCase();
  if (upper === "NONE") {
    if (rest.length !== 0) throw fail("HEALTHCHECK NONE takes no arguments");
    if (flags.used().length > 0) throw fail("HEALTHCHECK NONE takes no flags");
    return { line: base.line, endLine: base.endLine, original: base.original, kind: "healthcheck", test: ["NONE"] };
  }
  if (upper !== "CMD") throw fail(`unknown type ${JSON.stringify(typ)} (try CMD or NONE)`);
  if (rest.length === 0 || (rest.length === 1 && !json && rest[0].trim() === "")) {
    throw fail("missing command after HEALTHCHECK CMD");
  }
  const test = json ? ["CMD", ...rest] : ["CMD-SHELL", rest.join(" ")];
  const duration = (name: string): number | undefined => {
    const v = flags.string(name);
    if (v === undefined || v === "") return undefined;
    let ns: number;
    try {
      ns = parseGoDuration(v);
    } catch {
      throw fail(`invalid --${name}=${v}: not a duration like 30s, 1m30s or 500ms`);
    }
    if (ns < 0) throw fail(`--${name} can't be negative (${v})`);
    if (ns !== 0 && ns < 1e6) throw fail(`--${name} can't be less than 1ms (${v})`);
    return ns;
  };
  const out: HealthcheckInstruction = { line: base.line, endLine: base.endLine, original: base.original, kind: "healthcheck", test };
  const interval = duration("interval");
  const timeout = duration("timeout");
  const startPeriod = duration("start-period");
  const startInterval = duration("start-interval");
  if (interval !== undefined) out.interval = interval;
  if (timeout !== undefined) out.timeout = timeout;
  if (startPeriod !== undefined) out.startPeriod = startPeriod;
  if (startInterval !== undefined) out.startInterval = startInterval;
  const retries = flags.string("retries");
  if (retries !== undefined && retries !== "") {
    if (!/^[-+]?\d+$/.test(retries)) throw fail(`invalid --retries=${retries}: not an integer`);
    const n = Number(retries);
    if (n < 0) throw fail(`--retries can't be negative (${retries})`);
    if (n > 2147483647) throw fail(`--retries=${retries} is out of range`);
    out.retries = n;
  }
  return out;
}

/** Validate one EXPOSE entry (`80`, `80/tcp`, `53/udp`, `8000-8010`, `8000-8010/udp`). */
export function checkExposePort(entry: string): string | undefined {
  const m = /^(\d+)(?:-(\d+))?(?:\/([A-Za-z]+))?$/.exec(entry);
  const bad = `invalid port ${JSON.stringify(entry)} (expected PORT[-END][/tcp|udp|sctp])`;
  if (!m) return bad;
  const start = Number(m[1]);
  const end = m[2] !== undefined ? Number(m[2]) : start;
  if (start > 65535 || end > 65535) return `invalid port ${JSON.stringify(entry)}: ports go up to 65535`;
  if (end < start) return `invalid port range ${JSON.stringify(entry)}: end is before start`;
  if (m[3] !== undefined && !["tcp", "udp", "sctp"].includes(m[3].toLowerCase())) {
    return `invalid protocol ${JSON.stringify(m[3])} in ${JSON.stringify(entry)} (tcp, udp or sctp)`;
  }
  return undefined;
}

const SIGNALS = new Set([
  "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
  "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
  "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "UNUSED",
]);

/** Validate a STOPSIGNAL value: a signal number or name (`SIGTERM`, `TERM`, `SIGRTMIN+3`). */
export function checkStopSignal(value: string): string | undefined {
  const bad = `invalid signal ${JSON.stringify(value)} (a name like SIGTERM or a number)`;
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    return n >= 1 && n <= 64 ? undefined : bad;
  }
  const name = value.toUpperCase().replace(/^SIG/, "");
  if (SIGNALS.has(name)) return undefined;
  const rt = /^RT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (rt) {
    const off = rt[3] !== undefined ? Number(rt[3]) : 0;
    if (off <= 30) return undefined;
  }
  return bad;
}
