// instructionExtra: the flags and bodies of a parsed instruction go into the cache key; its
// position in the Dockerfile does not.
import { describe, it, expect } from "vitest";
import { instructionExtra } from "../../src/engine/step-extra.js";
import { typeInstruction } from "../../src/frontend/instructions.js";
import { parseDockerfile } from "../../src/frontend/parse.js";

function extraOf(text: string): Record<string, string> {
  const ast = parseDockerfile(text);
  const last = ast.instructions[ast.instructions.length - 1]!;
  return instructionExtra(typeInstruction(last));
}

describe("instructionExtra", () => {
  it("ignores the instruction's line", () => {
    expect(extraOf("FROM scratch\nCOPY --chmod=644 a /b\n")).toEqual(extraOf("FROM scratch\n\n\n# c\nCOPY --chmod=644 a /b\n"));
  });

  it("changes with every COPY/ADD flag", () => {
    const variants = [
      "COPY a /b",
      "COPY --chmod=644 a /b",
      "COPY --chmod=755 a /b",
      "COPY --chown=1:1 a /b",
      "COPY --link a /b",
      "COPY --parents a /b",
      "COPY --exclude=*.md a /b",
      "COPY --from=other a /b",
      "COPY a /c",
      "ADD a /b",
      "ADD --unpack=false a /b",
      "ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.com/a /b",
    ];
    const seen = new Set(variants.map((v) => JSON.stringify(extraOf(`FROM scratch\n${v}\n`))));
    expect(seen.size).toBe(variants.length);
  });

  it("changes with RUN mounts, network, heredoc bodies; not with a secret's contents (absent)", () => {
    const variants = [
      "RUN make",
      "RUN --network=none make",
      "RUN --mount=type=cache,target=/root/.cache make",
      "RUN --mount=type=cache,target=/root/.cache,id=x make",
      "RUN --mount=type=tmpfs,target=/tmp make",
      "RUN <<EOF\necho one\nEOF",
      "RUN <<EOF\necho two\nEOF",
      '["make"]',
    ];
    const texts = variants.map((v) => (v.startsWith("[") ? `RUN ${v}` : v));
    const seen = new Set(texts.map((v) => JSON.stringify(extraOf(`FROM scratch\n${v}\n`))));
    expect(seen.size).toBe(variants.length);
    const extra = extraOf("FROM scratch\nRUN --mount=type=secret,id=tok make\n");
    expect(extra.mounts).toContain('"id":"tok"');
  });
});
