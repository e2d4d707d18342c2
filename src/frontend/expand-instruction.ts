// Variable expansion of typed instructions, exactly where Docker expands: ADD, COPY (sources,
// dest, --chown/--chmod/--from/--checksum/--exclude, heredoc bodies with unquoted delimiters),
// ENV, EXPOSE, FROM (image, --platform), LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and the option
// values of RUN --mount. Never RUN/CMD/ENTRYPOINT command text, SHELL, HEALTHCHECK or ONBUILD
// (ONBUILD triggers are stored verbatim and expanded when they fire in a child build).
// Validation that needs the expanded value (EXPOSE ports, STOPSIGNAL, empty WORKDIR, ...) is here.
import { DockerfileError } from "../errors.js";
import { type ExpandEnv, ExpansionError, expandHeredoc, expandWord, expandWordDetailed } from "./expand.js";
import { checkChecksum, checkChmod, checkExposePort, checkStopSignal, type KeyValue, type TypedInstruction } from "./instructions.js";
import { MountError, parseMountSpec } from "./mounts.js";

export type { ExpandEnv };

export interface ExpandInstructionOptions {
  escapeToken: "\\" | "`";
  file?: string;
  /**
   * Called with every variable name that was referenced but not defined (for the UndefinedVar
   * lint). Only collected when given.
   */
  onUndefined?: (name: string) => void;
}

/** Characters that make expansion do something: variables, quotes, either escape token. */
const PLAIN_WORD_SPECIALS = /[$'"\\`]/;

/**
 * Return a copy of `t` with its words expanded against `env`. Instructions Docker doesn't expand
 * come back unchanged (same object). Throws DockerfileError with the instruction's line for
 * expansion errors and for values that are invalid once expanded.
 */
export function expandInstruction(t: TypedInstruction, env: ExpandEnv, opts: ExpandInstructionOptions): TypedInstruction {
  const file = opts.file ?? "Dockerfile";
  const KEY = t.kind.toUpperCase();
  const fail = (detail: string): DockerfileError => new DockerfileError("DOCKERFILE_EXPANSION", detail, t.line, file, { instruction: KEY });
  const word = (w: string): string => {
    // Fast path: nothing to substitute, unquote or unescape.
    if (!PLAIN_WORD_SPECIALS.test(w)) return w;
    try {
      if (opts.onUndefined) {
        const r = expandWordDetailed(w, env, { escapeToken: opts.escapeToken });
        for (const name of r.unmatched) opts.onUndefined(name);
        return r.value;
      }
      return expandWord(w, env, { escapeToken: opts.escapeToken });
    } catch (e) {
      if (e instanceof ExpansionError || (e instanceof Error && !(e instanceof DockerfileError))) {
        throw fail(e.message);
      }
      throw e;
    }
  };
  /** Expand an optional flag value; an empty result means "not set", as in BuildKit. */
  const opt = (w: string | undefined): string | undefined => (w === undefined ? undefined : word(w) || undefined);
  const pairs = (list: KeyValue[]): KeyValue[] => list.map((p) => ({ key: word(p.key), value: word(p.value) }));

  switch (t.kind) {
    case "from": {
      const image = word(t.image);
      if (image === "") throw fail(`base name ${JSON.stringify(t.image)} expands to an empty string`);
      const platform = opt(t.platform);
      return { ...t, image, platform };
    }
    case "copy":
    case "add": {
      const sources = t.sources.map(word);
      const dest = word(t.dest);
      if (dest === "") throw fail("destination expands to an empty string");
      const inline = t.inline.map((s) => {
        if (!s.expand) return s;
        try {
          return { ...s, data: expandHeredoc(s.data, env, { escapeToken: opts.escapeToken }) };
        } catch (e) {
          if (e instanceof Error) throw fail(e.message);
          throw e;
        }
      });
      const chown = opt(t.chown);
      const chmod = opt(t.chmod);
      if (chmod !== undefined) {
        const problem = checkChmod(chmod);
        if (problem) throw fail(problem);
      }
      const exclude = t.exclude.map(word);
      if (t.kind === "copy") {
        const from = opt(t.from);
        return { ...t, sources, dest, inline, chown, chmod, exclude, from };
      }
      const checksum = opt(t.checksum);
      if (checksum !== undefined) {
        const problem = checkChecksum(checksum, sources);
        if (problem) throw fail(problem);
      }
      return { ...t, sources, dest, inline, chown, chmod, exclude, checksum };
    }
    case "env":
    case "label": {
      const out = pairs(t.pairs);
      if (out.some((p) => p.key === "")) throw fail("names can not be blank");
      return { ...t, pairs: out };
    }
    case "expose": {
      const ports: string[] = [];
      for (const p of t.ports) {
        const v = word(p);
        const problem = checkExposePort(v);
        if (problem) throw fail(problem);
        ports.push(v);
      }
      return { ...t, ports };
    }
    case "stopsignal": {
      const signal = word(t.signal);
      const problem = checkStopSignal(signal);
      if (problem) throw fail(problem);
      return { ...t, signal };
    }
    case "user": {
      const user = word(t.user);
      if (user === "") throw fail("user expands to an empty string");
      return { ...t, user };
    }
    case "workdir": {
      const path = word(t.path);
      if (path === "") throw fail("path expands to an empty string");
      return { ...t, path };
    }
    case "volume": {
      const paths = t.paths.map((p) => word(p).trim());
      if (paths.some((p) => p === "")) throw fail("VOLUME specified can not be an empty string");
      return { ...t, paths };
    }
    case "run": {
      if (!t.mounts.some((m) => m.spec.includes("$"))) return t;
      const mounts = t.mounts.map((m) => {
        if (!m.spec.includes("$")) return m;
        try {
          return parseMountSpec(m.spec, { expand: word });
        } catch (e) {
          if (e instanceof MountError) throw fail(`--mount=${m.spec}: ${e.message}`);
          throw e;
        }
      });
      return { ...t, mounts };
    }
    case "maintainer":
    case "arg":
    case "cmd":
    case "entrypoint":
    case "shell":
    case "healthcheck":
    case "onbuild":
      return t;
  }
}
