// The command line's own surface: --version, help for every command, usage errors (exit 2)
// versus input errors (exit 1), and the lazy command table (each name loads its own command).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, kiln } from "../helpers/kiln.js";
import { COMMANDS } from "../../src/cli/commands.js";
import { imageCommands } from "../../src/cli/image-commands.js";

describe("kiln CLI", () => {
  it("--version prints the package version", async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
    const r = await kiln(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`kiln ${pkg.version}`);
  });

  it("help lists every command, and each has its own help with its options", async () => {
    const r = await kiln(["help"]);
    expect(r.code).toBe(0);
    const commands = ["build", "push", "pull", "lint", "verify", "du", "prune", "login", "logout", "doctor", "images", "tag", "rmi", "inspect", "history", "run", "attestations", "manifest"];
    for (const c of commands) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\s`, "m"));
    for (const c of commands) {
      const h = await kiln(["help", c]);
      expect(h.code, c).toBe(0);
      expect(h.stdout, c).toMatch(/^Usage: kiln /m);
    }
    const build = await kiln(["build", "--help"]);
    for (const flag of ["--file", "--tag", "--build-arg", "--target", "--platform", "--output", "--cache-from", "--cache-to", "--secret", "--isolation"]) {
      expect(build.stdout).toContain(flag);
    }
  });

  it("the command table loads, under each name, the command of that name (and has every image command)", async () => {
    for (const name of Object.keys(imageCommands)) expect(Object.keys(COMMANDS), name).toContain(name);
    for (const [name, load] of Object.entries(COMMANDS)) {
      const c = await load();
      expect(c.usage, name).toMatch(new RegExp(`^kiln ${name}\\b`));
    }
  });

  it("usage mistakes exit 2 with one line; a missing input file exits 1", async () => {
    for (const args of [["bogus"], ["build"], ["build", "--no-such-flag", "."], ["build", "--progress", "loud", "."], ["help", "nope"]]) {
      const r = await kiln(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
    }
    const r = await kiln(["verify", "/nonexistent/layout"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});
