// Tests for the Dockerfile parser (src/frontend/parse.ts), the BuildKit-format dumper
// (src/frontend/dump.ts) and instruction suggestions (src/frontend/suggest.ts).

import { describe, it, expect } from "vitest";
import { parseDockerfile } from "../../src/frontend/parse.js";
import { dumpBuildkit, goQuote } from "../../src/frontend/dump.js";
import { editDistance, suggest, suggestInstruction } from "../../src/frontend/suggest.js";
import { DockerfileError } from "../../src/errors.js";
import type { Instruction } from "../../src/frontend/ast.js";

function parse(text: string): Instruction[] {
  return parseDockerfile(text).instructions;
}

function dump(text: string): string[] {
  return dumpBuildkit(parseDockerfile(text)).trimEnd().split("\n");
}

function parseError(text: string, file?: string): DockerfileError {
  try {
    parseDockerfile(text, file === undefined ? undefined : { file });
  } catch (err) {
    expect(err).toBeInstanceOf(DockerfileError);
    return err as DockerfileError;
  }
  throw new Error("expected a DockerfileError");
}

describe("parser directives", () => {
  it("records syntax, check and escape at the top, names lower-cased", () => {
    const ast = parseDockerfile("# Syntax = example/frontend:2 \n#CHECK=skip=all\n#  escape = `\nFROM a\n");
    expect(ast.directives).toEqual([
      { name: "syntax", value: "example/frontend:2", line: 1 },
      { name: "check", value: "skip=all", line: 2 },
      { name: "escape", value: "`", line: 3 },
    ]);
    expect(ast.escapeToken).toBe("`");
  });

  it("uses a backtick escape for continuations and keeps backslashes literal", () => {
    const ast = parseDockerfile("# escape=`\nFROM w\nRUN copy C:\\src `\n    C:\\dst\nWORKDIR C:\\app\\\n");
    expect(dumpBuildkit(ast).trimEnd().split("\n")).toEqual([
      '(from "w")',
      '(run "copy C:\\\\src     C:\\\\dst")',
      '(workdir "C:\\\\app\\\\")',
    ]);
    expect(ast.instructions[1].startLine).toBe(3);
    expect(ast.instructions[1].endLine).toBe(4);
  });

  it("ignores a directive after an ordinary comment", () => {
    const ast = parseDockerfile("# hello\n# escape=`\nFROM a\nRUN a \\\n b\n");
    expect(ast.directives).toEqual([]);
    expect(ast.escapeToken).toBe("\\");
    expect(dump("# hello\n# escape=`\nFROM a\nRUN a \\\n b\n")[1]).toBe('(run "a  b")');
  });

  it("ignores a directive after an instruction or a blank line", () => {
    expect(parseDockerfile("FROM a\n# escape=`\nRUN x\n").directives).toEqual([]);
    expect(parseDockerfile("\n# escape=`\nFROM a\n").escapeToken).toBe("\\");
  });

  it("stops at an unknown directive name", () => {
    const ast = parseDockerfile("# foo=bar\n# escape=`\nFROM a\n");
    expect(ast.directives).toEqual([]);
    expect(ast.escapeToken).toBe("\\");
  });

  it("rejects a repeated directive and a bad escape token, naming the line", () => {
    expect(parseError("# syntax=a\n# syntax=b\nFROM a\n").message).toBe(
      "Dockerfile:2: only one syntax parser directive can be used",
    );
    expect(parseError("# escape=x\nFROM a\n").message).toBe(
      'Dockerfile:1: invalid escape token "x" does not match ` or \\',
    );
  });
});

describe("comments and continuations", () => {
  it("joins continuation lines, skipping comment lines inside them", () => {
    const ins = parse("FROM a\nRUN apt-get update && \\\n# a comment\n    # indented comment\n    apt-get install x\nUSER me\n");
    expect(ins.map((i) => i.keyword)).toEqual(["from", "run", "user"]);
    expect(ins[1].args).toEqual(["apt-get update &&     apt-get install x"]);
    expect([ins[1].startLine, ins[1].endLine]).toEqual([2, 5]);
    expect([ins[2].startLine, ins[2].endLine]).toEqual([6, 6]);
    expect(parseDockerfile("FROM a\nRUN a \\\n# c\n  b\n").warnings).toEqual([]);
  });

  it("keeps going over empty continuation lines and warns about them", () => {
    const ast = parseDockerfile("FROM a\nRUN one \\\n\n   \ntwo\nUSER x\n");
    expect(ast.instructions[1].args).toEqual(["one two"]);
    expect(ast.instructions[1].endLine).toBe(5);
    expect(ast.warnings).toEqual([{ line: 5, message: "Empty continuation line found in: RUN one two" }]);
    expect(parseDockerfile("FROM a\nRUN x\n").warnings).toEqual([]);
  });

  it("accepts a continuation at end of file", () => {
    expect(dump("FROM a\nRUN make \\")).toEqual(['(from "a")', '(run "make")']);
    expect(dump("FROM a\nRUN make \\\n")).toEqual(['(from "a")', '(run "make")']);
  });

  it("treats an escaped escape at end of line as literal, and allows blanks after the escape", () => {
    expect(dump("FROM a\nENV P a\\\\\nENV Q b \\ \t\nc\n")).toEqual([
      '(from "a")',
      '(env "P" "a\\\\\\\\" "")',
      '(env "Q" "b c" "")',
    ]);
  });

  it("strips a UTF-8 BOM and handles CRLF line endings", () => {
    const ast = parseDockerfile("\uFEFFFROM a\r\nRUN x \\\r\n  y\r\nLABEL k=v\r\n");
    expect(dumpBuildkit(ast)).toBe('(from "a")\n(run "x   y")\n(label "k" "v" "=")\n');
  });

  it("does not treat a comment ending in a backslash as a continuation", () => {
    expect(dump("FROM a\n# note \\\nRUN x\n")).toEqual(['(from "a")', '(run "x")']);
  });

  it("accepts all 18 instructions in any case", () => {
    const text = [
      "from a", "Run x", "cmd x", "LaBeL a=b", "maintainer m", "expose 80", "env a=b", "add a b",
      "copy a b", "entrypoint x", "volume /v", "user u", "workdir /w", "arg A", "onbuild run x",
      "stopsignal 9", "healthcheck NONE", "shell [\"sh\"]",
    ].join("\n");
    expect(parse(text).map((i) => i.keyword)).toEqual([
      "from", "run", "cmd", "label", "maintainer", "expose", "env", "add", "copy", "entrypoint",
      "volume", "user", "workdir", "arg", "onbuild", "stopsignal", "healthcheck", "shell",
    ]);
  });
});

describe("JSON (exec) form versus shell form", () => {
  it("decodes a JSON array of strings", () => {
    const [cmd] = parse('CMD  [ "echo", "a b", "\\u00e9\\n" ]');
    expect(cmd.json).toBe(true);
    expect(cmd.args).toEqual(["echo", "a b", "é\n"]);
    expect(parse("ENTRYPOINT []")[0]).toMatchObject({ json: true, args: [] });
  });

  it("falls back to shell form for anything that is not valid JSON", () => {
    expect(parse("RUN ['sh', '-c']")[0]).toMatchObject({ json: false, args: ["['sh', '-c']"] });
    expect(parse('RUN ["unterminated"')[0]).toMatchObject({ json: false, args: ['["unterminated"'] });
    expect(parse('CMD {"a": "b"}')[0]).toMatchObject({ json: false });
    expect(parse('CMD "[\\"x\\"]"')[0]).toMatchObject({ json: false });
  });

  it("rejects JSON arrays holding non-strings", () => {
    expect(parseError('FROM a\nCMD ["a", 1]').message).toBe(
      "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only",
    );
    expect(parseError('CMD ["a", ["b"]]').line).toBe(1);
    expect(parseError('RUN [null]').line).toBe(1);
  });

  it("splits COPY/ADD/VOLUME on blanks when not JSON, keeps JSON words whole", () => {
    expect(parse("COPY  a\tb   /dst/")[0]).toMatchObject({ json: false, args: ["a", "b", "/dst/"] });
    expect(parse('COPY ["my file", "/dst dir/"]')[0]).toMatchObject({ json: true, args: ["my file", "/dst dir/"] });
    expect(parse("VOLUME [\"/a\", \"/b\"]")[0].args).toEqual(["/a", "/b"]);
    expect(parse("VOLUME /a /b")[0].args).toEqual(["/a", "/b"]);
  });

  it("keeps FROM/EXPOSE as blank-separated words and USER/WORKDIR as one string", () => {
    expect(parse("FROM --platform=linux/arm64 img:1 AS build")[0]).toMatchObject({
      flags: ["--platform=linux/arm64"],
      args: ["img:1", "AS", "build"],
    });
    expect(parse("EXPOSE 80/tcp  443")[0].args).toEqual(["80/tcp", "443"]);
    expect(parse("WORKDIR /my dir")[0].args).toEqual(["/my dir"]);
    expect(parse("USER")[0].args).toEqual([]);
  });
});

describe("flags", () => {
  it("extracts --name=value and bare --name before the arguments", () => {
    const [, copy, run] = parse(
      "FROM a\nCOPY --from=build --chown=1:1 --link src /dst\nRUN --mount=type=cache,target=/root/.cache --network=none make\n",
    );
    expect(copy.flags).toEqual(["--from=build", "--chown=1:1", "--link"]);
    expect(copy.args).toEqual(["src", "/dst"]);
    expect(run.flags).toEqual(["--mount=type=cache,target=/root/.cache", "--network=none"]);
    expect(run.args).toEqual(["make"]);
  });

  it("removes quotes from flag words and stops at --", () => {
    const [copy] = parse('COPY --chmod="7 55" --x=\'a\' -- --not-a-flag /b');
    expect(copy.flags).toEqual(["--chmod=7 55", "--x=a"]);
    expect(copy.args).toEqual(["--not-a-flag", "/b"]);
  });

  it("only takes flags before the first argument", () => {
    expect(parse("COPY a --from=x b")[0]).toMatchObject({ flags: [], args: ["a", "--from=x", "b"] });
    expect(parse("RUN echo --flag")[0]).toMatchObject({ flags: [], args: ["echo --flag"] });
  });

  it("dumps flags as a bracketed list", () => {
    expect(dump("COPY --from=a --link x y")).toEqual(['(copy ["--from=a" "--link"] "x" "y")']);
  });
});

describe("ENV, LABEL and ARG", () => {
  it("produces key/value/= triples, keeping quotes and escapes for later expansion", () => {
    expect(parse('ENV a=1 b="two words" c=x\\ y')[0].args).toEqual([
      "a", "1", "=", "b", '"two words"', "=", "c", "x\\ y", "=",
    ]);
    expect(parse('LABEL "com.example.k"="v" x=')[0].args).toEqual(['"com.example.k"', '"v"', "=", "x", "", "="]);
  });

  it("supports the legacy `ENV key value` form with the rest of the line as value", () => {
    expect(parse("ENV PATH /usr/bin:/bin   extra")[0].args).toEqual(["PATH", "/usr/bin:/bin   extra", ""]);
    expect(parse("LABEL maintainer Some One <a@b.c>")[0].args).toEqual(["maintainer", "Some One <a@b.c>", ""]);
  });

  it("rejects ENV/LABEL without a value and words without '='", () => {
    expect(parseError("FROM a\nENV ONLYKEY\n").message).toBe("Dockerfile:2: ENV must have two arguments");
    expect(parseError("LABEL k").message).toBe("Dockerfile:1: LABEL must have two arguments");
    expect(parseError("FROM a\n\nENV a=b c\n").message).toBe(
      'Dockerfile:3: Syntax error - can\'t find = in "c". Must be of the form: name=value',
    );
  });

  it("splits ARG into words, quotes kept", () => {
    expect(parse('ARG A B=2 C="x y"')[0].args).toEqual(["A", "B=2", 'C="x y"']);
  });
});

describe("HEALTHCHECK and ONBUILD", () => {
  it("splits HEALTHCHECK into type and command", () => {
    expect(parse("HEALTHCHECK NONE")[0].args).toEqual(["NONE"]);
    expect(parse("HEALTHCHECK --interval=5s CMD curl -f http://x/ || exit 1")[0]).toMatchObject({
      flags: ["--interval=5s"],
      args: ["CMD", "curl -f http://x/ || exit 1"],
      json: false,
    });
    expect(parse('HEALTHCHECK CMD ["curl", "-f"]')[0]).toMatchObject({ args: ["CMD", "curl", "-f"], json: true });
  });

  it("parses the wrapped instruction of ONBUILD into `inner`", () => {
    const [, on] = parse("FROM a\nONBUILD COPY --chown=1 . /app\n");
    expect(on.keyword).toBe("onbuild");
    expect(on.args).toEqual(["COPY --chown=1 . /app"]);
    expect(on.inner).toMatchObject({ keyword: "copy", flags: ["--chown=1"], args: [".", "/app"], startLine: 2, endLine: 2 });
    expect(dump("ONBUILD RUN [\"a\"]\nONBUILD run echo hi")).toEqual(['(onbuild (run "a"))', '(onbuild (run "echo hi"))']);
  });

  it("reports an unknown wrapped instruction", () => {
    expect(parseError("FROM a\nONBUILD RUNX x\n").message).toBe('Dockerfile:2: unknown instruction "RUNX" (did you mean RUN?)');
  });
});

describe("heredocs", () => {
  it("reads a heredoc body after the instruction line", () => {
    const ast = parseDockerfile("FROM a\nRUN <<EOF\nset -e\necho $HOME\nEOF\nUSER x\n");
    const run = ast.instructions[1];
    expect(run.args).toEqual(["<<EOF"]);
    expect(run.heredocs).toEqual([{ name: "EOF", content: "set -e\necho $HOME\n", expand: true, chomp: false }]);
    expect([run.startLine, run.endLine]).toEqual([2, 5]);
    expect(ast.instructions[2].startLine).toBe(6);
  });

  it("strips leading tabs for <<- (body and terminator)", () => {
    const [run] = parse("RUN <<-END\n\t\techo a\n\t  b\n\tEND\n");
    expect(run.heredocs[0]).toEqual({ name: "END", content: "echo a\n  b\n", expand: true, chomp: true });
  });

  it("marks quoted delimiters as not expanded", () => {
    const [a, b, c] = parse("RUN <<'A'\n$x\nA\nRUN <<\"B\"\n$y\nB\nRUN <<C\n$z\nC\n");
    expect(a.heredocs[0]).toMatchObject({ name: "A", expand: false, content: "$x\n" });
    expect(b.heredocs[0]).toMatchObject({ name: "B", expand: false });
    expect(c.heredocs[0]).toMatchObject({ name: "C", expand: true });
  });

  it("reads delimiter words the way BuildKit's shell lexer does", () => {
    const names = (text: string) => parse(text).map((i) => i.heredocs.map((h) => [h.name, h.expand]));
    expect(names("RUN <<   END > /out\nEND\n")).toEqual([[["END", true]]]);
    expect(names("RUN << -END\n-END\n")).toEqual([[["-END", true]]]);
    // Only blanks directly after `<<` join the word, so `<<-  END` is no heredoc (as in BuildKit).
    expect(names("RUN <<-  END\nUSER x\n")).toEqual([[], []]);
    expect(names("RUN 5<<END\nEND\n")).toEqual([[["END", true]]]);
    expect(names("RUN <<st'op'\nstop\n")).toEqual([[["stop", false]]]);
    expect(names("RUN <<st\\'op\nst'op\n")).toEqual([[["st'op", true]]]);
    expect(names("RUN <<\"a \\\" b\"\na \" b\n")).toEqual([[['a " b', false]]]);
    expect(names("RUN <<$TAG\n$TAG\n")).toEqual([[["$TAG", true]]]);
    // An unbalanced quote on the line means no heredoc at all; `<<` with no word is none either.
    expect(names("RUN <<'END\nUSER x\n")).toEqual([[], []]);
    expect(names("RUN cat << \nUSER x\n")).toEqual([[], []]);
  });

  it("reads several heredocs on one line in order", () => {
    const [copy] = parse("COPY <<one.txt <<two.txt /dst/\nfirst\none.txt\nsecond\ntwo.txt\n");
    expect(copy.args).toEqual(["<<one.txt", "<<two.txt", "/dst/"]);
    expect(copy.heredocs.map((h) => [h.name, h.content])).toEqual([
      ["one.txt", "first\n"],
      ["two.txt", "second\n"],
    ]);
    expect(copy.endLine).toBe(5);
  });

  it("ends only at a line that is exactly the delimiter", () => {
    const [run] = parse("RUN cat <<EOF > /f\nEOFX\n EOF\nxEOF\nEOF \nEOF\n");
    expect(run.heredocs[0].content).toBe("EOFX\n EOF\nxEOF\nEOF \n");
  });

  it("keeps empty heredocs and blank body lines", () => {
    expect(parse("RUN <<E\nE\n")[0].heredocs[0].content).toBe("");
    expect(parse("RUN <<E\n\n# not a comment\n\nE\n")[0].heredocs[0].content).toBe("\n# not a comment\n\n");
  });

  it("normalises CRLF in bodies and terminators", () => {
    const [, add] = parse("FROM a\r\nADD <<EOF /x\r\nline 1\r\nline 2\r\nEOF\r\n");
    expect(add.heredocs[0].content).toBe("line 1\nline 2\n");
  });

  it("ignores heredoc syntax where BuildKit does", () => {
    expect(() => parseDockerfile('RUN ["cat", "<<EOF"]\nEOF\n')).toThrow(/unknown instruction "EOF"/);
    expect(parse('RUN echo "<<EOF"\nUSER x\n').map((i) => i.heredocs.length)).toEqual([0, 0]);
    expect(parse("LABEL a=<<EOF\nUSER x\n").map((i) => i.keyword)).toEqual(["label", "user"]);
    expect(parse("RUN a<<EOF\nUSER x\n")[0].heredocs).toEqual([]);
  });

  it("attaches heredocs of ONBUILD RUN", () => {
    const [on] = parse("ONBUILD RUN <<EOF\necho hi\nEOF\n");
    expect(on.heredocs).toEqual([{ name: "EOF", content: "echo hi\n", expand: true, chomp: false }]);
    expect(on.inner?.heredocs).toEqual(on.heredocs);
  });

  it("reports an unterminated heredoc at its instruction line", () => {
    const err = parseError("FROM a\nRUN x\n\nRUN <<EOF\necho\nEF\n", "app.Dockerfile");
    expect(err.message).toBe('app.Dockerfile:4: unterminated heredoc "EOF" (started here)');
    expect(err.line).toBe(4);
    expect(err.file).toBe("app.Dockerfile");
  });
});

describe("errors", () => {
  it("suggests the nearest instruction for unknown ones", () => {
    expect(parseError("FROM a\nRUNN echo\n").message).toBe('Dockerfile:2: unknown instruction "RUNN" (did you mean RUN?)');
    expect(parseError("FROM a\n\ncopyy a b\n").message).toBe('Dockerfile:3: unknown instruction "copyy" (did you mean copy?)');
    expect(parseError("FROM a\nBANANA x\n").message).toBe('Dockerfile:2: unknown instruction "BANANA"');
  });

  it("rejects a continuation with nothing after it", () => {
    expect(parseError("FROM a\n\\\n").message).toBe(
      "Dockerfile:2: empty instruction: a line continuation with nothing after it",
    );
  });

  it("reports the first line of a multi-line instruction", () => {
    expect(parseError("FROM a\nENV \\\n  X\n").line).toBe(2);
  });

  it("rejects empty files and files with only comments", () => {
    expect(parseError("").message).toBe("Dockerfile: file with no instructions");
    expect(parseError("# just\n\n   # comments\n\n").message).toBe("Dockerfile: file with no instructions");
    expect(parseError("\uFEFF\r\n\r\n").message).toBe("Dockerfile: file with no instructions");
  });

  it("keeps messages to one line for hostile text", () => {
    const err = parseError("FROM a\nX\u0000\u001b[31m" + "y".repeat(500) + " z\n");
    expect(err.message.split("\n")).toHaveLength(1);
    expect(err.message.length).toBeLessThan(200);
    expect(err.message).toContain("\\x00\\x1b[31m");
  });
});

describe("dumpBuildkit and goQuote", () => {
  it("quotes like Go's strconv.Quote", () => {
    expect(goQuote('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(goQuote("\u0007\b\f\n\r\t\v\u0000\u001f\u007f")).toBe('"\\a\\b\\f\\n\\r\\t\\v\\x00\\x1f\\x7f"');
    expect(goQuote("é 한국어 ♥ 🎉")).toBe('"é 한국어 ♥ 🎉"');
    expect(goQuote("\u0080\u00a0\u00ad\u2028\ufeff")).toBe('"\\u0080\\u00a0\\u00ad\\u2028\\ufeff"');
    expect(goQuote("\u{e0001}")).toBe('"\\U000e0001"');
    expect(goQuote("")).toBe('""');
  });

  it("dumps one line per instruction", () => {
    const text = 'FROM a AS b\nENV k v\nCMD ["x", "y z"]\nHEALTHCHECK\nONBUILD --f ADD x y\n';
    expect(dumpBuildkit(parseDockerfile(text))).toBe(
      '(from "a" "AS" "b")\n(env "k" "v" "")\n(cmd "x" "y z")\n(healthcheck)\n(onbuild ["--f"] (add "x" "y"))\n',
    );
  });
});

describe("suggest", () => {
  it("computes bounded edit distances", () => {
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("abc", "abc")).toBe(0);
    expect(editDistance("a".repeat(1000), "b", 3)).toBe(3);
  });

  it("picks a close option in the user's case, or nothing", () => {
    expect(suggestInstruction("WORKDRI")).toBe("WORKDIR");
    expect(suggestInstruction("entrypiont")).toBe("entrypoint");
    expect(suggestInstruction("RUN")).toBeUndefined();
    expect(suggestInstruction("xyzzy")).toBeUndefined();
    expect(suggest("--form", ["--from", "--chown"], { caseSensitive: true })).toBe("--from");
  });
});
