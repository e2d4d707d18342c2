import { describe, it, expect } from "vitest";
import { parseDockerfile } from "../../src/frontend/parse.js";
import { typeInstruction, type TypedInstruction } from "../../src/frontend/instructions.js";
import { expandInstruction } from "../../src/frontend/expand-instruction.js";
import { parseMountSpec, MountError } from "../../src/frontend/mounts.js";
import { parseFlags, parseGoDuration, FlagError } from "../../src/frontend/flags.js";
import { DockerfileError } from "../../src/errors.js";

/** Parse `text` and type every instruction; returns the typed list. */
function typeAll(text: string, file = "Dockerfile"): TypedInstruction[] {
  return parseDockerfile(text, { file }).instructions.map((n) => typeInstruction(n, file));
}

/** Type `text` and return the DockerfileError it throws (fails the test when none). */
function typeError(text: string, file = "Dockerfile"): DockerfileError {
  try {
    typeAll(text, file);
  } catch (e) {
    expect(e).toBeInstanceOf(DockerfileError);
    return e as DockerfileError;
  }
  throw new Error(`expected an error for:\n${text}`);
}

const FROM = "FROM scratch\n";

describe("flags", () => {
  it("reports unknown flags with a suggestion and the line", () => {
    const text = "FROM busybox\n\n\n\n\n\nCOPY --form=build /a /b\n";
    const e = typeError(text);
    expect(e.message).toBe("Dockerfile:7: COPY: unknown flag --form (did you mean --from?)");
    expect(e.line).toBe(7);
  });

  it("uses the file name given", () => {
    expect(typeError(FROM + "ADD --lnk a b\n", "app.Dockerfile").message).toBe(
      "app.Dockerfile:2: ADD: unknown flag --lnk (did you mean --link?)",
    );
  });

  it("rejects flags on instructions that take none", () => {
    for (const kw of ["ENV --x=1 a=b", "WORKDIR --chown=1 /x", "USER --x u", "EXPOSE --p=1 80", "CMD --x echo"]) {
      const e = typeError(FROM + kw + "\n");
      expect(e.line).toBe(2);
      expect(e.detail).toMatch(/takes no flags/);
    }
  });

  it("validates bool flags", () => {
    expect(typeError(FROM + "COPY --link=maybe a b\n").detail).toBe('COPY: --link expects true or false, not "maybe"');
    const [, copy] = typeAll(FROM + "COPY --link=FALSE --parents a b\n");
    expect(copy).toMatchObject({ kind: "copy", link: false, parents: true });
  });

  it("requires values on string flags and refuses duplicates", () => {
    expect(typeError(FROM + "COPY --from a b\n").detail).toBe("COPY: missing a value on flag --from");
    expect(typeError(FROM + "COPY --from=a --from=b a b\n").detail).toBe("COPY: duplicate flag --from");
  });

  it("accepts repeatable --exclude and --mount", () => {
    const [, copy, run] = typeAll(
      FROM + "COPY --exclude=*.md --exclude=.git . /app\nRUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t true\n",
    );
    expect(copy).toMatchObject({ exclude: ["*.md", ".git"], sources: ["."], dest: "/app" });
    expect(run.kind === "run" && run.mounts.map((m) => m.type)).toEqual(["cache", "tmpfs"]);
  });

  it("checks RUN --network and --security", () => {
    expect(typeError(FROM + "RUN --network=bogus true\n").detail).toBe(
      "RUN: unsupported --network=bogus (one of default, none, host)",
    );
    expect(typeError(FROM + "RUN --security=x true\n").detail).toBe(
      "RUN: unsupported --security=x (one of insecure, sandbox)",
    );
    const [, run] = typeAll(FROM + "RUN --network=none --security=sandbox true\n");
    expect(run).toMatchObject({ network: "none", security: "sandbox" });
  });

  it("checks ADD --checksum and --chmod before expansion", () => {
    expect(typeError(FROM + "ADD --checksum=md5:abc https://x/y /y\n").detail).toMatch(/^ADD: invalid --checksum "md5:abc"/);
    expect(typeError(FROM + "ADD --checksum=sha256:abc https://x/y /y\n").detail).toMatch(/invalid --checksum/);
    const sum = "sha256:" + "a".repeat(64);
    const [, add] = typeAll(FROM + `ADD --checksum=${sum} --keep-git-dir --unpack=false https://x/y /y\n`);
    expect(add).toMatchObject({ kind: "add", checksum: sum, keepGitDir: true, unpack: false });
    expect(typeError(FROM + "COPY --chmod=999 a b\n").detail).toMatch(/invalid --chmod value "999"/);
    expect(typeAll(FROM + "COPY --chmod=u+x,go=rx a b\n")[1]).toMatchObject({ chmod: "u+x,go=rx" });
    // A variable defers the check to expansion.
    expect(typeAll(FROM + "COPY --chmod=$MODE a b\n")[1]).toMatchObject({ chmod: "$MODE" });
  });

  it("FROM only takes --platform", () => {
    expect(typeError("FROM --plattform=linux/amd64 busybox\n").detail).toBe(
      "FROM: unknown flag --plattform (did you mean --platform?)",
    );
    expect(typeAll("FROM --platform=$BUILDPLATFORM busybox AS b\n")[0]).toMatchObject({
      kind: "from", image: "busybox", stageName: "b", platform: "$BUILDPLATFORM",
    });
  });

  it("parseFlags and parseGoDuration directly", () => {
    expect(() => parseFlags(["-x"], { x: "bool" })).toThrow(FlagError);
    expect(parseGoDuration("1m30s")).toBe(90e9);
    expect(parseGoDuration("500ms")).toBe(5e8);
    expect(parseGoDuration("1.5h")).toBe(5400e9);
    expect(parseGoDuration("0")).toBe(0);
    expect(() => parseGoDuration("abc")).toThrow(FlagError);
    expect(() => parseGoDuration("10")).toThrow(FlagError);
  });
});

describe("RUN --mount", () => {
  it("parses types, aliases and defaults", () => {
    const bind = parseMountSpec("target=/src,from=build,source=/out");
    expect(bind).toMatchObject({ type: "bind", target: "/src", from: "build", source: "/out", readOnly: true });
    const cache = parseMountSpec("type=cache,dst=/root/.cache,sharing=LOCKED,id=pip,mode=0755,uid=1000,gid=1000");
    expect(cache).toMatchObject({ type: "cache", target: "/root/.cache", sharing: "locked", id: "pip", mode: 0o755, uid: 1000, gid: 1000, readOnly: false });
    expect(parseMountSpec("type=bind,target=/x,rw").readOnly).toBe(false);
    expect(parseMountSpec("type=tmpfs,destination=/t,size=64m")).toMatchObject({ size: 64 * 1024 * 1024, readOnly: false });
    expect(parseMountSpec("type=secret,id=tok,env=TOKEN,required")).toMatchObject({ type: "secret", id: "tok", env: "TOKEN", required: true });
    expect(parseMountSpec("type=ssh")).toMatchObject({ type: "ssh", required: false });
    expect(parseMountSpec('type=bind,"target=/a,b"').target).toBe("/a,b");
    // no target: the working directory when the step runs (BuildKit's rule)
    expect(parseMountSpec("from=build,source=/out")).toMatchObject({ type: "bind", from: "build", source: "/out" });
    expect(parseMountSpec("from=build,source=/out").target).toBeUndefined();
    expect(parseMountSpec("type=cache").target).toBeUndefined();
  });

  it("rejects bad specs", () => {
    const bad: [string, RegExp][] = [
      ["type=nfs,target=/x", /unsupported mount type "nfs"/],
      ["type=cache,target=/x,sharing=sometimes", /unsupported sharing value/],
      ["type=bind,target=/x,mode=0755", /"mode" is not allowed for type=bind/],
      ["type=cache,target=/x,uid=abc", /invalid value "abc" for uid/],
      ["type=cache,target=/x,mode=999", /invalid value "999" for mode/],
      ["type=bind,target=/x,sharing=locked", /only allowed for type=cache/],
      ["type=secret,from=x,id=a", /"from" is not allowed for type=secret/],
      ["type=secret,id=a,source=b", /can't set both source and id/],
      ["type=secret", /needs an id, source, target or env/],
      ["type=bind,target=/x,required", /"required" is not allowed for type=bind/],
      ["type=cache,targt=/x", /unknown mount option "targt".*did you mean target/],
      ["type=bind,target=/x,ro=maybe", /invalid value for ro/],
      ['type=bind,tar"get=/x', /bare "/],
      ["type=cache,target=/x,size=1g", /"size" is only allowed for type=tmpfs/],
    ];
    for (const [spec, re] of bad) expect(() => parseMountSpec(spec), spec).toThrow(re);
    expect(() => parseMountSpec("type=bogus")).toThrow(MountError);
  });

  it("errors carry the RUN line", () => {
    const e = typeError(FROM + "RUN true\nRUN --mount=type=cache,target=/x,sharing=no true\n");
    expect(e.line).toBe(3);
    expect(e.message).toBe('Dockerfile:3: RUN: --mount=type=cache,target=/x,sharing=no: unsupported sharing value "no" (one of shared, private, locked)');
  });

  it("defers values with variables and revalidates after expansion", () => {
    const [, run] = typeAll(FROM + "RUN --mount=type=cache,target=$DIR,id=$ID true\n");
    expect(run.kind === "run" && run.mounts[0]).toMatchObject({ target: "$DIR", id: "$ID" });
    const out = expandInstruction(run, { DIR: "/c", ID: "x" }, { escapeToken: "\\" });
    expect(out.kind === "run" && out.mounts[0]).toMatchObject({ target: "/c", id: "x" });
    // RUN's command is never expanded.
    expect(out.kind === "run" && out.command).toEqual(["true"]);
    const [, bad] = typeAll(FROM + "RUN --mount=type=cache,target=/c,mode=$M true\n");
    expect(() => expandInstruction(bad, { M: "rwx" }, { escapeToken: "\\" })).toThrow(/Dockerfile:2: RUN: .*invalid value "rwx" for mode/);
  });
});

describe("argument counts and forms", () => {
  const cases: [string, string][] = [
    ["COPY onlyone", "COPY: requires at least two arguments, but only one was provided: the destination could not be determined"],
    ["ADD onlyone", "ADD: requires at least two arguments, but only one was provided: the destination could not be determined"],
    ["STOPSIGNAL 1 2", 'STOPSIGNAL: invalid signal "1 2" (a name like SIGTERM or a number)'],
    ["STOPSIGNAL 0", 'STOPSIGNAL: invalid signal "0" (a name like SIGTERM or a number)'],
    ["MAINTAINER", "MAINTAINER: requires exactly one argument"],
    ["SHELL /bin/sh -c", 'SHELL: requires the arguments to be in JSON form, e.g. SHELL ["/bin/sh", "-c"]'],
    ["SHELL []", "SHELL: requires at least one argument"],
    ["HEALTHCHECK NONE extra", "HEALTHCHECK: HEALTHCHECK NONE takes no arguments"],
    ["HEALTHCHECK CMD", "HEALTHCHECK: missing command after HEALTHCHECK CMD"],
    ["HEALTHCHECK CHECK curl x", 'HEALTHCHECK: unknown type "CHECK" (try CMD or NONE)'],
    ["HEALTHCHECK --interval=abc CMD true", "HEALTHCHECK: invalid --interval=abc: not a duration like 30s, 1m30s or 500ms"],
    ["HEALTHCHECK --timeout=500us CMD true", "HEALTHCHECK: --timeout can't be less than 1ms (500us)"],
    ["HEALTHCHECK --start-period=-1s CMD true", "HEALTHCHECK: --start-period can't be negative (-1s)"],
    ["HEALTHCHECK --retries=-1 CMD true", "HEALTHCHECK: --retries can't be negative (-1)"],
    ["HEALTHCHECK --retries=x CMD true", "HEALTHCHECK: invalid --retries=x: not an integer"],
    ["HEALTHCHECK --interval=5s NONE", "HEALTHCHECK: HEALTHCHECK NONE takes no flags"],
    ["EXPOSE 80/tcpx", 'EXPOSE: invalid protocol "tcpx" in "80/tcpx" (tcp, udp or sctp)'],
    ["EXPOSE 70000", 'EXPOSE: invalid port "70000": ports go up to 65535'],
    ["EXPOSE 8010-8000", 'EXPOSE: invalid port range "8010-8000": end is before start'],
    ["STOPSIGNAL SIGFOO", 'STOPSIGNAL: invalid signal "SIGFOO" (a name like SIGTERM or a number)'],
    ["ONBUILD ONBUILD RUN x", "ONBUILD: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"],
    ["ONBUILD FROM busybox", "ONBUILD: FROM isn't allowed as an ONBUILD trigger"],
    ["ONBUILD MAINTAINER me", "ONBUILD: MAINTAINER isn't allowed as an ONBUILD trigger"],
    ["ONBUILD COPY --form=x a b", "COPY: unknown flag --form (did you mean --from?)"],
    ["ARG =x", "ARG: names can not be blank"],
  ];
  for (const [line, detail] of cases) {
    it(line, () => {
      const e = typeError(FROM + "\n" + line + "\n");
      expect(e.detail).toBe(detail);
      expect(e.line).toBe(3);
    });
  }

  it("FROM forms", () => {
    expect(typeError("FROM a b\n").detail).toBe("FROM: requires either one or three arguments (FROM image [AS name])");
    expect(typeError("FROM a IS b\n").detail).toBe('FROM: expected "AS" as the second word, got "IS"');
    expect(typeError("FROM a AS 1st\n").detail).toMatch(/^FROM: invalid stage name "1st"/);
    expect(typeError("FROM a AS bad/name\n").detail).toMatch(/invalid stage name/);
    expect(typeAll("FROM a as My.Stage_1-x\n")[0]).toMatchObject({ stageName: "My.Stage_1-x", asKeyword: "as" });
  });

  it("types each kind", () => {
    const t = typeAll(
      [
        "FROM busybox",
        "ARG A B=2 C=x=y",
        "ENV k v",
        'ENV a=1 b="2 3"',
        "LABEL x=y",
        "EXPOSE 80 80/tcp 53/udp 8000-8010 8000-8010/udp",
        "VOLUME /a /b",
        'VOLUME ["/c"]',
        "USER app:app",
        "WORKDIR /w",
        "STOPSIGNAL SIGTERM",
        "STOPSIGNAL 9",
        "STOPSIGNAL TERM",
        'SHELL ["/bin/bash", "-c"]',
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=500ms --retries=3 CMD curl -f x",
        'HEALTHCHECK CMD ["a", "b"]',
        "HEALTHCHECK NONE",
        'CMD ["a", "b"]',
        "ENTRYPOINT run me",
        "ONBUILD RUN echo hi",
        "MAINTAINER me",
      ].join("\n") + "\n",
    );
    expect(t.map((x) => x.kind)).toEqual([
      "from", "arg", "env", "env", "label", "expose", "volume", "volume", "user", "workdir", "stopsignal",
      "stopsignal", "stopsignal", "shell", "healthcheck", "healthcheck", "healthcheck", "cmd", "entrypoint",
      "onbuild", "maintainer",
    ]);
    expect(t[1]).toMatchObject({ args: [{ name: "A" }, { name: "B", default: "2" }, { name: "C", default: "x=y" }], line: 2 });
    expect(t[2]).toMatchObject({ pairs: [{ key: "k", value: "v" }], legacy: true });
    expect(t[3]).toMatchObject({ pairs: [{ key: "a", value: "1" }, { key: "b", value: '"2 3"' }], legacy: false });
    expect(t[5]).toMatchObject({ ports: ["80", "80/tcp", "53/udp", "8000-8010", "8000-8010/udp"] });
    expect(t[7]).toMatchObject({ paths: ["/c"] });
    expect(t[14]).toMatchObject({
      test: ["CMD-SHELL", "curl -f x"], interval: 30e9, timeout: 90e9, startPeriod: 5e9, startInterval: 5e8, retries: 3,
    });
    expect(t[15]).toMatchObject({ test: ["CMD", "a", "b"] });
    expect(t[16]).toMatchObject({ test: ["NONE"] });
    expect(t[17]).toMatchObject({ command: ["a", "b"], shellForm: false });
    expect(t[18]).toMatchObject({ command: ["run me"], shellForm: true });
    expect(t[19]).toMatchObject({ kind: "onbuild", expression: "RUN echo hi", trigger: { kind: "run", command: ["echo hi"] } });
    expect(t[20]).toMatchObject({ maintainer: "me", original: "MAINTAINER me" });
  });

  it("COPY heredoc sources need no second argument", () => {
    const [, copy] = typeAll(FROM + "COPY <<EOF /dst\nhello $X\nEOF\n");
    expect(copy).toMatchObject({ kind: "copy", sources: [], dest: "/dst", inline: [{ path: "EOF", data: "hello $X\n", expand: true }] });
  });
});

describe("expandInstruction", () => {
  const env = new Map([["X", "val"], ["P", "8080"], ["M", "755"], ["DIR", "/srv"], ["SIG", "SIGKILL"], ["U", "app"]]);
  const expand = (text: string, e: ReadonlyMap<string, string> | Record<string, string> = env): TypedInstruction =>
    expandInstruction(typeAll(FROM + text + "\n")[1], e, { escapeToken: "\\" });

  it("expands COPY sources, dest and flags; heredoc bodies only when unquoted", () => {
    const copy = expand("COPY --from=$X --chown=$U:$U --chmod=$M a-$X $DIR/");
    expect(copy).toMatchObject({ from: "val", chown: "app:app", chmod: "755", sources: ["a-val"], dest: "/srv/" });
    expect(() => expand("COPY --chmod=$P a b")).toThrow(/invalid --chmod value "8080"/);
    const docs = typeAll(FROM + "COPY <<A <<'B' /d/\none $X\nA\ntwo $X\nB\n")[1];
    const out = expandInstruction(docs, env, { escapeToken: "\\" });
    expect(out.kind === "copy" && out.inline.map((i) => i.data)).toEqual(["one val\n", "two $X\n"]);
  });

  it("treats flag values that are or expand to empty as unset, like BuildKit", () => {
    expect(expand("COPY --from=$NOPE --chown=$NOPE a b")).toMatchObject({ from: undefined, chown: undefined });
    expect(typeAll(FROM + "COPY --chown= a b\n")[1]).toMatchObject({ chown: undefined });
    expect(expandInstruction(typeAll("FROM --platform=$NOPE busybox\n")[0], env, { escapeToken: "\\" })).toMatchObject({
      image: "busybox", platform: undefined,
    });
  });

  it("expands ENV, LABEL, EXPOSE, STOPSIGNAL, USER, WORKDIR, VOLUME", () => {
    expect(expand('ENV A=$X B="${X} two"')).toMatchObject({ pairs: [{ key: "A", value: "val" }, { key: "B", value: "val two" }] });
    expect(expand("LABEL l=$X")).toMatchObject({ pairs: [{ key: "l", value: "val" }] });
    expect(expand("EXPOSE $P/udp")).toMatchObject({ ports: ["8080/udp"] });
    expect(expand("STOPSIGNAL $SIG")).toMatchObject({ signal: "SIGKILL" });
    expect(expand("USER $U")).toMatchObject({ user: "app" });
    expect(expand(`USER "quoted"`)).toMatchObject({ user: "quoted" });
    expect(expand("WORKDIR /plain\\$X")).toMatchObject({ path: "/plain$X" });
    expect(expand("WORKDIR $DIR/app")).toMatchObject({ path: "/srv/app" });
    expect(expand("VOLUME $DIR")).toMatchObject({ paths: ["/srv"] });
  });

  it("validates after expansion with the instruction's line", () => {
    expect(() => expand("EXPOSE $X")).toThrow('Dockerfile:2: EXPOSE: invalid port "val"');
    expect(() => expand("STOPSIGNAL $X")).toThrow(/Dockerfile:2: STOPSIGNAL: invalid signal "val"/);
    expect(() => expand("WORKDIR $NOPE")).toThrow("Dockerfile:2: WORKDIR: path expands to an empty string");
    expect(() => expand('ENV a="${X:?must be set}"', {})).toThrow(/^Dockerfile:2: ENV: .*must be set/);
  });

  it("never expands RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD", () => {
    for (const line of ["RUN echo $X", "CMD echo $X", 'ENTRYPOINT ["echo", "$X"]', 'SHELL ["$X"]', "HEALTHCHECK CMD echo $X", "ONBUILD RUN echo $X"]) {
      const t = typeAll(FROM + line + "\n")[1];
      expect(expandInstruction(t, env, { escapeToken: "\\" })).toBe(t);
    }
  });

  it("reports undefined names when asked", () => {
    const seen: string[] = [];
    expandInstruction(typeAll(FROM + "WORKDIR /$X/$MISSING\n")[1], env, { escapeToken: "\\", onUndefined: (n) => seen.push(n) });
    expect(seen).toEqual(["MISSING"]);
  });

  it("honours the backtick escape token", () => {
    const [, t] = parseDockerfile("# escape=`\nFROM scratch\nENV a=`$X b=$X\n").instructions.map((n) => typeInstruction(n));
    expect(expandInstruction(t, env, { escapeToken: "`" })).toMatchObject({ pairs: [{ key: "a", value: "$X" }, { key: "b", value: "val" }] });
  });
});
