import { describe, it, expect } from "vitest";
import { lintDockerfile, type Diagnostic } from "../../src/frontend/lint.js";

const rules = (ds: Diagnostic[]): string[] => ds.map((d) => `${d.line}:${d.severity}:${d.rule}`);

describe("lintDockerfile", () => {
  it("a clean Dockerfile has no diagnostics", () => {
    const text = [
      "ARG VERSION=1",
      "FROM busybox:${VERSION} AS build",
      "WORKDIR /src",
      "COPY . .",
      "RUN make",
      "FROM scratch",
      "COPY --from=build /src/out /out",
      'ENTRYPOINT ["/out"]',
    ].join("\n") + "\n";
    expect(lintDockerfile(text)).toEqual([]);
  });

  it("collects several errors, continuing past bad instructions", () => {
    const text = [
      "FROM busybox",
      "COPY --form=x a b",
      "RUN --network=bogus true",
      "EXPOSE 99999",
      "HEALTHCHECK --retries=-2 CMD true",
    ].join("\n") + "\n";
    const ds = lintDockerfile(text, { file: "df" });
    expect(ds.filter((d) => d.severity === "error")).toEqual([
      { file: "df", line: 2, severity: "error", rule: "InvalidInstruction", message: "COPY: unknown flag --form (did you mean --from?)" },
      { file: "df", line: 3, severity: "error", rule: "InvalidInstruction", message: "RUN: unsupported --network=bogus (one of default, none, host)" },
      { file: "df", line: 4, severity: "error", rule: "InvalidInstruction", message: 'EXPOSE: invalid port "99999": ports go up to 65535' },
      { file: "df", line: 5, severity: "error", rule: "InvalidInstruction", message: "HEALTHCHECK: --retries can't be negative (-2)" },
    ]);
  });

  it("reports parse errors as one diagnostic", () => {
    const ds = lintDockerfile("FROM busybox\nFOO bar\n");
    expect(ds).toHaveLength(1);
    expect(ds[0]).toMatchObject({ line: 2, severity: "error", rule: "ParseError" });
  });

  it("reports a missing FROM, duplicate stages and an unknown target", () => {
    expect(rules(lintDockerfile("ARG X=1\n"))).toEqual(["0:error:InvalidInstruction"]);
    const dup = lintDockerfile("FROM scratch AS a\nFROM scratch AS a\n", { target: "zzz" });
    expect(dup.map((d) => d.message)).toEqual([
      'target stage "zzz" could not be found in Dockerfile (stages: a)',
      'FROM: duplicate stage name "a" (first defined on line 1)',
    ]);
  });

  it("warns on style and safety rules", () => {
    const text = [
      "from busybox as Build", // 1 StageNameCasing; casing is consistent (lower from / lower as)
      "maintainer me", // 2 MaintainerDeprecated
      "workdir app", // 3 WorkdirRelativePath
      "arg GITHUB_TOKEN", // 4 SecretsUsedInArgOrEnv
      "env DB_PASSWORD=x PUBLIC_KEY=y MONKEY=z", // 5 SecretsUsedInArgOrEnv (DB_PASSWORD only)
      "env legacy value", // 6 LegacyKeyValueFormat
      "cmd echo one", // 7 JSONArgsRecommended + MultipleInstructionsDisallowed
      'cmd ["echo", "two"]', // 8
      "expose 80/TCP", // 9 ExposeProtoCasing
      "FROM build AS next", // 10 ConsistentInstructionCasing (majority lower)
    ].join("\n") + "\n";
    const ds = lintDockerfile(text, { buildArgs: { NOT_DECLARED: "1" } });
    expect(rules(ds)).toEqual([
      "0:warning:UnusedBuildArg",
      "1:warning:StageNameCasing",
      "2:warning:MaintainerDeprecated",
      "3:warning:WorkdirRelativePath",
      "4:warning:SecretsUsedInArgOrEnv",
      "5:warning:SecretsUsedInArgOrEnv",
      "6:warning:LegacyKeyValueFormat",
      "7:warning:JSONArgsRecommended",
      "7:warning:MultipleInstructionsDisallowed",
      "9:warning:ExposeProtoCasing",
      "10:warning:ConsistentInstructionCasing",
    ]);
    expect(ds.find((d) => d.rule === "SecretsUsedInArgOrEnv" && d.line === 5)?.message).toContain("DB_PASSWORD");
    expect(ds.find((d) => d.rule === "UnusedBuildArg")?.message).toContain("NOT_DECLARED");
  });

  it("flags FROM/AS casing mismatch", () => {
    expect(rules(lintDockerfile("FROM scratch as base\n"))).toEqual(["1:warning:FromAsCasing"]);
  });

  it("reports undefined variables where the environment is known", () => {
    const text = [
      "FROM scratch AS base",
      "ARG A=1",
      "ENV B=2",
      "WORKDIR /$A/$B/$C",
      "FROM base",
      "COPY x /$B/$D/",
      "FROM busybox",
      "WORKDIR /$FROM_IMAGE_ENV", // unknown image env: not reported
      "FROM ${NOT_DECLARED:-busybox}",
    ].join("\n") + "\n";
    const ds = lintDockerfile(text);
    expect(ds.map((d) => `${d.line}:${d.rule}:${d.message}`)).toEqual([
      "4:UndefinedVar:usage of undefined variable '$C'",
      "6:UndefinedVar:usage of undefined variable '$D'",
      "9:UndefinedArgInFrom:FROM argument 'NOT_DECLARED' is not declared",
    ]);
  });

  it("knows the ARGs a stage inherits from the stage it is built FROM", () => {
    const ds = lintDockerfile("FROM scratch AS base\nARG A=1\nFROM base\nWORKDIR /$A/$Z\n");
    expect(ds.map((d) => `${d.line}:${d.rule}:${d.message}`)).toEqual(["4:UndefinedVar:usage of undefined variable '$Z'"]);
  });

  it("reports expansion errors", () => {
    const ds = lintDockerfile("FROM scratch\nARG P=abc\nEXPOSE $P\n");
    expect(ds).toEqual([
      { file: "Dockerfile", line: 3, severity: "error", rule: "InvalidExpansion", message: 'EXPOSE: invalid port "abc" (expected PORT[-END][/tcp|udp|sctp])' },
    ]);
  });

  it("honours the # check= directive", () => {
    const text = "FROM scratch\nMAINTAINER me\nCMD run\n";
    expect(rules(lintDockerfile(text))).toEqual(["2:warning:MaintainerDeprecated", "3:warning:JSONArgsRecommended"]);
    expect(rules(lintDockerfile("# check=skip=MaintainerDeprecated\n" + text))).toEqual(["4:warning:JSONArgsRecommended"]);
    expect(lintDockerfile("# check=skip=all\n" + text)).toEqual([]);
    expect(rules(lintDockerfile("# check=skip=JSONArgsRecommended;error=true\n" + text))).toEqual(["3:error:MaintainerDeprecated"]);
  });

  it("never throws on hostile input; every problem is a one-line diagnostic", () => {
    const inputs = [
      "",
      "\n\n",
      "FROM",
      "FROM scratch\nCOPY --from=${X:?boom} a b\n",
      "FROM scratch\nARG A=${B:?unset}\nRUN --mount=type=cache,target=$A true\n",
      "FROM ${",
      "FROM scratch AS a\nCOPY --from=b /x /y\nFROM a AS b\nCOPY --from=a /x /y\n",
      "FROM scratch\nONBUILD ONBUILD RUN x\nHEALTHCHECK --interval=1 CMD x\n",
      "FROM scratch\nRUN --mount=type=secret,\"id=a true\n",
      "FROM scratch\nEXPOSE ${P:-99999}\nSTOPSIGNAL ${S:-NOPE}\n",
      "\u0000FROM\u0000 x",
    ];
    for (const text of inputs) {
      const ds = lintDockerfile(text);
      expect(Array.isArray(ds)).toBe(true);
      for (const d of ds) {
        expect(d.message).not.toContain("\n");
        expect(["error", "warning"]).toContain(d.severity);
        expect(typeof d.line).toBe("number");
      }
    }
    expect(lintDockerfile("FROM scratch\nEXPOSE ${P:-99999}\n").map((d) => d.rule)).toContain("InvalidExpansion");
  });

  it("passes parse warnings through", () => {
    const ds = lintDockerfile("FROM scratch\nRUN echo a \\\n\n  b\n");
    expect(ds.some((d) => d.severity === "warning" && d.line > 0)).toBe(true);
  });
});
