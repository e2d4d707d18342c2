// The error contract of the library: every KilnError thrown in src/ names a documented code (a
// scan of the source, on top of the constructor's type), the code list has no dead entries,
// DockerfileError carries its location as fields, AbortError keeps the signal's reason, and a
// RegistryError carries the status, repository and the registry's own codes from a real answer.
// Exit codes and the "run kiln login" hint come from src/cli/exit.ts only.
import { describe, it, expect, afterEach } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { AbortError, DockerfileError, ERROR_CODES, KilnError, RegistryError, UsageError, abortError } from "../src/errors.js";
import * as api from "../src/index.js";
import { describeError, exitCodeFor } from "../src/cli/exit.js";
import { pullImage } from "../src/registry/pull.js";
import { BlobStore } from "../src/store/blob-store.js";
import { parsePlatform } from "../src/image/platform.js";
import { startFakeRegistry } from "./registry/fake-registry.js";

const SRC = resolve(__dirname, "../src");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Classes whose constructor takes the code first. Subclasses with a fixed code (AbortError, ExpansionError, ...) set it themselves. */
const CODE_FIRST = ["KilnError", "DockerfileError", "UsageError", "RegistryError"];

describe("error codes", () => {
  it("are UPPER_SNAKE and each has a description", () => {
    for (const [code, what] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
      expect(what.length).toBeGreaterThan(10);
    }
  });

  it("every KilnError constructed in src/ names a listed code, and every listed code is used", () => {
    const used = new Set<string>();
    const bad: string[] = [];
    const siteRe = new RegExp(`new (${CODE_FIRST.join("|")})\\(\\s*([^,)]*)`, "g");
    let sites = 0;
    for (const file of sources(SRC)) {
      const text = readFileSync(file, "utf8");
      const rel = relative(SRC, file);
      for (const m of text.matchAll(siteRe)) {
        sites++;
        const arg = m[2]!.trim();
        const literal = /^"([A-Z0-9_]+)"$/.exec(arg);
        if (literal) {
          used.add(literal[1]!);
          if (!(literal[1]! in ERROR_CODES)) bad.push(`${rel}: unknown code ${arg}`);
        } else if (!/^(err\.code|code|codeOf\(.*|code \?\? "[A-Z_]+")$/.test(arg)) {
          // a computed code must come from another error (err.code, codeOf) or a typed parameter
          bad.push(`${rel}: new ${m[1]}(${arg}, ...) does not start with a code`);
        }
      }
      if (rel !== "errors.ts") for (const c of text.matchAll(/"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|USAGE|INTERNAL)"/g)) used.add(c[1]!);
    }
    used.add("ABORTED"); // set by AbortError itself
    used.add("ISOLATION_FAILED"); // set by IsolationError itself
    expect(bad).toEqual([]);
    expect(sites).toBeGreaterThan(300);
    expect(Object.keys(ERROR_CODES).filter((c) => !used.has(c))).toEqual([]);
  });

  it("src/ throws no plain Error except the listed inner ones (each is wrapped into a KilnError by its caller)", () => {
    const allowed = new Set(["snapshot/apply-layer.ts", "errors.ts", "cli/build-command.ts"]);
    const plain: string[] = [];
    for (const file of sources(SRC)) {
      const rel = relative(SRC, file);
      if (!allowed.has(rel) && /new Error\(/.test(readFileSync(file, "utf8"))) plain.push(rel);
    }
    expect(plain).toEqual([]);
  });

  it("the error classes and the code list are exported from the library", () => {
    expect(api.KilnError).toBe(KilnError);
    expect(api.DockerfileError).toBe(DockerfileError);
    expect(api.RegistryError).toBe(RegistryError);
    expect(api.AbortError).toBe(AbortError);
    expect(api.UsageError).toBe(UsageError);
    expect(api.ERROR_CODES).toBe(ERROR_CODES);
  });
});

describe("DockerfileError", () => {
  it("keeps the location as fields and composes the message from them", () => {
    const e = new DockerfileError("DOCKERFILE_INSTRUCTION", "requires exactly one argument", 3, "df", { instruction: "MAINTAINER" });
    expect(e).toMatchObject({ code: "DOCKERFILE_INSTRUCTION", file: "df", line: 3, instruction: "MAINTAINER", problem: "requires exactly one argument" });
    expect(e.detail).toBe("MAINTAINER: requires exactly one argument");
    expect(e.message).toBe("df:3: MAINTAINER: requires exactly one argument");
    expect(new DockerfileError("DOCKERFILE_SYNTAX", "file with no instructions", 0, "df").message).toBe("df: file with no instructions");
  });

  it("at() locates a step's failure without touching its text and keeps its code and cause", () => {
    const inner = new KilnError("CONTEXT_SOURCE_NOT_FOUND", 'source "x" not found in build context');
    const e = DockerfileError.at(inner, { file: "Dockerfile", line: 7, instruction: "COPY" }) as DockerfileError;
    expect(e).toBeInstanceOf(DockerfileError);
    expect(e.message).toBe('Dockerfile:7: COPY: source "x" not found in build context');
    expect(e.code).toBe("CONTEXT_SOURCE_NOT_FOUND");
    expect(e.cause).toBe(inner);
    expect(e.problem).toBe(inner.message);
    // already located, or cancelled: returned as they are
    expect(DockerfileError.at(e, { file: "Dockerfile", line: 9, instruction: "RUN" })).toBe(e);
    const abort = new AbortError(new Error("build interrupted"));
    expect(DockerfileError.at(abort, { file: "Dockerfile", line: 9, instruction: "RUN" })).toBe(abort);
    // a system error from a step: IO_FAILED, located
    const errno = Object.assign(new Error("EACCES: permission denied, open '/x'"), { code: "EACCES" });
    const io = DockerfileError.at(errno, { file: "Dockerfile", line: 2, instruction: "COPY" }) as DockerfileError;
    expect(io.code).toBe("IO_FAILED");
    expect(io.message).toBe("Dockerfile:2: COPY: EACCES: permission denied, open '/x'");
  });
});

describe("AbortError", () => {
  it("is named AbortError, has code ABORTED and the signal's reason as cause", () => {
    const c = new AbortController();
    const reason = new Error("build interrupted");
    c.abort(reason);
    const e = abortError(c.signal);
    expect(e.name).toBe("AbortError");
    expect(e.code).toBe("ABORTED");
    expect(e.cause).toBe(reason);
    expect(e.message).toBe("build interrupted");
    const d = new AbortController();
    d.abort();
    expect(abortError(d.signal).cause).toBe(d.signal.reason);
    const already = new AbortError("x");
    const f = new AbortController();
    f.abort(already);
    expect(abortError(f.signal)).toBe(already);
  });
});

describe("RegistryError from a real answer, exit codes and hints in the CLI", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
  const store = (): BlobStore => {
    const d = mkdtempSync(join(tmpdir(), "kiln-errs-"));
    cleanups.push(() => rm(d, { recursive: true, force: true }));
    return new BlobStore(d);
  };
  const amd64 = parsePlatform("linux/amd64");

  it("an unknown image: status 404, the repository and MANIFEST_UNKNOWN", async () => {
    const reg = await startFakeRegistry();
    cleanups.push(() => reg.close());
    const err = await pullImage(`${reg.host}/team/app:v1`, { store: store(), platform: amd64, retry: { attempts: 1 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: "REGISTRY_MANIFEST_UNKNOWN", status: 404, registry: reg.host, repository: "team/app", codes: ["MANIFEST_UNKNOWN"] });
    expect(exitCodeFor(err)).toBe(1);
    expect(describeError(err)).toBe((err as Error).message);
  });

  it("no credentials: REGISTRY_AUTH with the status; the login hint is added by the CLI only", async () => {
    const reg = await startFakeRegistry({ basic: { user: "u", password: "p" } });
    cleanups.push(() => reg.close());
    const cfg = mkdtempSync(join(tmpdir(), "kiln-errs-cfg-"));
    cleanups.push(() => rm(cfg, { recursive: true, force: true }));
    await writeFile(join(cfg, "config.json"), "{}");
    const err = await pullImage(`${reg.host}/team/app:v1`, { store: store(), platform: amd64, dockerConfig: cfg, retry: { attempts: 1 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    const r = err as RegistryError;
    expect(r).toMatchObject({ code: "REGISTRY_AUTH", status: 401, registry: reg.host, repository: "team/app" });
    expect(r.message).not.toMatch(/kiln login/);
    expect(describeError(r)).toBe(`${r.message}; run kiln login ${reg.host}`);
    // wrong credentials: denied, no login hint
    await writeFile(join(cfg, "config.json"), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from("u:wrong").toString("base64") } } }));
    const denied = (await pullImage(`${reg.host}/team/app:v1`, { store: store(), platform: amd64, dockerConfig: cfg, retry: { attempts: 1 } }).catch((e: unknown) => e)) as RegistryError;
    expect(denied).toMatchObject({ code: "REGISTRY_DENIED", status: 401 });
    expect(describeError(denied)).toBe(denied.message);
  });

  it("usage errors exit 2, everything else 1", () => {
    expect(exitCodeFor(new UsageError("OPTION_INVALID", "--output x: unsupported type"))).toBe(2);
    expect(exitCodeFor(new KilnError("BLOB_MISSING", "blob gone"))).toBe(1);
    expect(exitCodeFor(new Error("plain"))).toBe(1);
    // kiln run's own failures (usage ones too) are 125, as docker run's
    expect(exitCodeFor(new UsageError("USAGE", "kiln run: unknown option --x"), "run")).toBe(125);
    expect(exitCodeFor(new KilnError("USER_UNKNOWN", "app:1: user \"x\" not found in /etc/passwd"), "run")).toBe(125);
    expect(exitCodeFor(new UsageError("USAGE", "kiln build: unknown option --x"), "build")).toBe(2);
  });
});

describe("CLI hints", () => {
  it("a missing required secret gets the --secret hint from the CLI; the library message has none", () => {
    const e = DockerfileError.at(new KilnError("RUN_SECRET_MISSING", 'secret "tok" is required but was not given'), { file: "Dockerfile", line: 3, instruction: "RUN" });
    expect((e as Error).message).toBe('Dockerfile:3: RUN: secret "tok" is required but was not given');
    expect(describeError(e)).toBe('Dockerfile:3: RUN: secret "tok" is required but was not given; give it with --secret id=ID,src=FILE (or env=VAR)');
  });
});

describe("errors from build(), in process", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    while (dirs.length > 0) await rm(dirs.pop()!, { recursive: true, force: true });
  });
  const temp = (): string => {
    const d = mkdtempSync(join(tmpdir(), "kiln-errs-build-"));
    dirs.push(d);
    return d;
  };

  it("a step's failure is a DockerfileError at its line, with the step's code and the original error as cause", async () => {
    const ctx = temp();
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY missing.txt /x\n");
    const err = await api.build({ context: ctx, cacheDir: temp(), outputs: [{ type: "oci", dest: join(ctx, "out"), tar: false }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockerfileError);
    expect(err).toMatchObject({ code: "CONTEXT_SOURCE_NOT_FOUND", file: "Dockerfile", line: 2, instruction: "COPY", problem: 'source "missing.txt" not found in build context' });
    expect((err as Error).message).toBe('Dockerfile:2: COPY: source "missing.txt" not found in build context');
    expect((err as Error).cause).toBeInstanceOf(KilnError);
    expect(exitCodeFor(err)).toBe(1);
  });

  it("an unreadable Dockerfile: DOCKERFILE_READ with the system error as cause", async () => {
    const ctx = temp();
    const err = await api.build({ context: ctx, cacheDir: temp() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "DOCKERFILE_READ" });
    expect(((err as Error).cause as NodeJS.ErrnoException).code).toBe("ENOENT");
  });
});
