// RUN --mount specs ("type=cache,target=/root/.cache,sharing=locked"): CSV parsing, option
// names and aliases, per-type rules and defaults, mirroring BuildKit's run-mount parsing.
// Values containing "$" are kept raw and checked again once expanded (see expand-instruction.ts).
import { suggestName } from "./flags.js";

export type MountType = "bind" | "cache" | "tmpfs" | "secret" | "ssh";
export type CacheSharing = "shared" | "private" | "locked";

export const MOUNT_TYPES: readonly MountType[] = ["bind", "cache", "tmpfs", "secret", "ssh"];

export interface RunMount {
  type: MountType;
  /** Stage name/index, named context or image to mount from (bind, cache). */
  from?: string;
  /** Path inside `from` (bind, cache) or the secret id alias (secret). */
  source?: string;
  /** Mount point inside the RUN container. */
  target?: string;
  readOnly: boolean;
  /** Cache id, secret id or ssh agent id. */
  id?: string;
  sharing?: CacheSharing;
  /** secret/ssh: fail when the secret / agent is not provided. */
  required: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  /** tmpfs size in bytes. */
  size?: number;
  /** secret: expose the secret as this environment variable. */
  env?: string;
  /** The spec exactly as written (unexpanded), for cache keys and re-parsing after expansion. */
  spec: string;
}

/** A bad mount spec; the caller adds the instruction keyword and line. */
export class MountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MountError";
  }
}

const KEYS = [
  "type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro",
  "readwrite", "rw", "id", "sharing", "required", "mode", "uid", "gid", "size", "env",
];

/** Split one CSV record the way Go's encoding/csv does (quotes, "" escapes, no bare quotes). */
export function splitCsv(text: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = "";
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new MountError(`unterminated quote in mount spec ${JSON.stringify(text)}`);
        const c = text[i];
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += c;
        i++;
      }
      if (i < text.length && text[i] !== ",") {
        throw new MountError(`extraneous text after quoted field in mount spec ${JSON.stringify(text)}`);
      }
    } else {
      while (i < text.length && text[i] !== ",") {
        if (text[i] === '"') throw new MountError(`bare " in mount spec ${JSON.stringify(text)}`);
        field += text[i];
        i++;
      }
    }
    fields.push(field);
    if (i >= text.length) break;
    i++; // the comma
  }
  return fields;
}

function parseBool(key: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === "true" || v === "1" || v === "t") return true;
  if (v === "false" || v === "0" || v === "f") return false;
  throw new MountError(`invalid value for ${key}: ${JSON.stringify(value)}`);
}

function parseUint(key: string, value: string, radix: 8 | 10): number {
  const re = radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!re.test(value)) throw new MountError(`invalid value ${JSON.stringify(value)} for ${key}`);
  const n = parseInt(value, radix);
  if (n > 0xffffffff) throw new MountError(`invalid value ${JSON.stringify(value)} for ${key}`);
  return n;
}

/** "64m", "1g", "1024", "2GiB" -> bytes (binary multiples, as docker's RAMInBytes). */
function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$/i.exec(value);
  if (!m) throw new MountError(`invalid value ${JSON.stringify(value)} for size`);
  const mult = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 }[m[2].toLowerCase()] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

export interface ParseMountOptions {
  /**
   * Expands one value (e.g. word expansion with the build args in scope). Without it, values
   * containing "$" are kept unvalidated for a later, expanded parse.
   */
  expand?: (value: string) => string;
}

/** Parse one `--mount` value. Throws MountError with a one-line message. */
export function parseMountSpec(spec: string, options: ParseMountOptions = {}): RunMount {
  const fields = splitCsv(spec);
  const m: RunMount = { type: "bind", readOnly: true, required: false, spec };
  let roAuto = true;
  const deferred = new Set<string>();
  for (const field of fields) {
    if (field === "") continue;
    const eq = field.indexOf("=");
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0) {
      if (key === "readonly" || key === "ro") {
        m.readOnly = true;
        roAuto = false;
        continue;
      }
      if (key === "readwrite" || key === "rw") {
        m.readOnly = false;
        roAuto = false;
        continue;
      }
      if (key === "required") {
        m.required = true;
        continue;
      }
      if (!KEYS.includes(key)) throw unknownKey(key, field);
      throw new MountError(`invalid field ${JSON.stringify(field)}: must be a key=value pair`);
    }
    let value = field.slice(eq + 1);
    if (value.includes("$")) {
      if (options.expand) value = options.expand(value);
      else {
        if (!KEYS.includes(key)) throw unknownKey(key, field);
        if (key === "type") throw new MountError(`mount type can't use variables: ${JSON.stringify(field)}`);
        deferred.add(key);
        // Keep the raw text so dependency analysis can still see it; revalidated after expansion.
        if (key === "from") m.from = value;
        else if (key === "source" || key === "src") m.source = value;
        else if (key === "target" || key === "dst" || key === "destination") m.target = value;
        else if (key === "id") m.id = value;
        else if (key === "env") m.env = value;
        continue;
      }
    }
    switch (key) {
      case "type": {
        const t = value.toLowerCase();
        if (!(MOUNT_TYPES as readonly string[]).includes(t)) {
          throw new MountError(`unsupported mount type ${JSON.stringify(value)} (one of ${MOUNT_TYPES.join(", ")})`);
        }
        m.type = t as MountType;
        break;
      }
      case "from":
        m.from = value;
        break;
      case "source":
      case "src":
        m.source = value;
        break;
      case "target":
      case "dst":
      case "destination":
        m.target = value;
        break;
      case "readonly":
      case "ro":
        m.readOnly = parseBool(key, value);
        roAuto = false;
        break;
      case "readwrite":
      case "rw":
        m.readOnly = !parseBool(key, value);
        roAuto = false;
        break;
      case "required":
        m.required = parseBool(key, value);
        break;
      case "id":
        m.id = value;
        break;
      case "sharing": {
        const s = value.toLowerCase();
        if (s !== "shared" && s !== "private" && s !== "locked") {
          throw new MountError(`unsupported sharing value ${JSON.stringify(value)} (one of shared, private, locked)`);
        }
        m.sharing = s;
        break;
      }
      case "mode":
        m.mode = parseUint("mode", value, 8);
        break;
      case "uid":
        m.uid = parseUint("uid", value, 10);
        break;
      case "gid":
        m.gid = parseUint("gid", value, 10);
        break;
      case "size":
        m.size = parseSize(value);
        break;
      case "env":
        m.env = value;
        break;
      default:
        throw unknownKey(key, field);
    }
  }
  if (roAuto) m.readOnly = !(m.type === "cache" || m.type === "tmpfs");

  const t = m.type;
  if (m.required && t !== "secret" && t !== "ssh") {
    throw new MountError(`option "required" is not allowed for type=${t} mounts`);
  }
  const fileInfoAllowed = t === "secret" || t === "ssh" || t === "cache";
  for (const k of ["mode", "uid", "gid"] as const) {
    if (m[k] !== undefined && !fileInfoAllowed) throw new MountError(`option "${k}" is not allowed for type=${t} mounts`);
  }
  if (m.sharing !== undefined && t !== "cache") throw new MountError(`option "sharing" is only allowed for type=cache mounts`);
  if (m.size !== undefined && t !== "tmpfs") throw new MountError(`option "size" is only allowed for type=tmpfs mounts`);
  if (m.env !== undefined && t !== "secret") throw new MountError(`option "env" is only allowed for type=secret mounts`);
  if (m.from !== undefined && (t === "secret" || t === "ssh" || t === "tmpfs")) {
    throw new MountError(`option "from" is not allowed for type=${t} mounts`);
  }
  if ((m.source !== undefined) && t === "tmpfs") throw new MountError(`option "source" is not allowed for type=tmpfs mounts`);
  if (t === "secret") {
    if (m.source !== undefined && m.id !== undefined && !deferred.has("source") && !deferred.has("id")) {
      throw new MountError(`secret mount can't set both source and id`);
    }
    if (m.source === undefined && m.target === undefined && m.id === undefined && m.env === undefined) {
      throw new MountError(`secret mount needs an id, source, target or env`);
    }
  }
  // No target: the working directory (BuildKit's rule; "/" is refused when the step runs).
  return m;
}

function unknownKey(key: string, field: string): MountError {
  const best = suggestName(key, KEYS);
  return new MountError(
    `unknown mount option ${JSON.stringify(key)} in ${JSON.stringify(field)}${best ? ` (did you mean ${best}?)` : ""}`,
  );
}
