// `kiln build --progress tty|auto` on a real terminal (tmux as the terminal emulator: its
// capture-pane is the screen a user sees) and `--progress rawjson` (one JSON event per line).
// The final screen holds each step once (finished, collapsed to one line), a total, and nothing
// of the live block; parallel stages are visible at once while they run; a failed build leaves a
// clean screen too. Not a terminal: `tty` falls back to plain.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { KILN_BIN, REPO_ROOT, expectBuilt, kiln, mustRun, run } from "../helpers/kiln.js";
import { useBusyboxBase } from "../helpers/busybox.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const socket = `kiln-test-${randomBytes(4).toString("hex")}`;
afterAll(async () => {
  await run("tmux", ["-L", socket, "kill-server"]);
  await temps.cleanup();
});
const base = useBusyboxBase();

const DOCKERFILE = [
  "FROM base AS one",
  "RUN sleep 2 && echo one-done > /one",
  "FROM base AS two",
  "RUN sleep 2 && echo two-done > /two",
  "FROM base",
  "COPY --from=one /one /one",
  "COPY --from=two /two /two",
  "RUN cat /one /two",
  "",
].join("\n");

async function context(dockerfile: string): Promise<{ ctx: string; cache: string }> {
  const ctx = await temps.make("kiln-live-");
  await writeFile(join(ctx, "Dockerfile"), dockerfile);
  return { ctx, cache: await temps.make("kiln-live-cache-") };
}

function shq(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Runs `kiln ARGS` in a 120x50 tmux window; resolves with the screen once it printed EXIT=N (and the screens seen on the way). */
async function onTerminal(name: string, args: string[], during?: (screen: string) => Promise<void>): Promise<{ screen: string; seen: string[] }> {
  const cmd = `cd ${shq(REPO_ROOT)} && ${shq(process.execPath)} ${shq(KILN_BIN)} ${args.map(shq).join(" ")}; echo EXIT=$?; sleep 600`;
  await mustRun("tmux", ["-L", socket, "new-session", "-d", "-s", name, "-x", "120", "-y", "50", cmd]);
  const seen: string[] = [];
  const deadline = Date.now() + 120_000;
  for (;;) {
    const screen = (await mustRun("tmux", ["-L", socket, "capture-pane", "-p", "-t", name])).stdout;
    seen.push(screen);
    if (/EXIT=\d+/.test(screen)) {
      await run("tmux", ["-L", socket, "kill-session", "-t", name]);
      return { screen, seen };
    }
    if (Date.now() > deadline) throw new Error(`no EXIT= on the screen:\n${screen}`);
    await during?.(screen);
    await new Promise((r) => setTimeout(r, 150));
  }
}

describe("live progress on a terminal", () => {
  it("parallel stages run side by side with timers; the final screen has each step once, a total and the exit status", async () => {
    const { ctx, cache } = await context(DOCKERFILE);
    const { screen, seen } = await onTerminal("ok", ["build", "--progress", "tty", "--cache-dir", cache, "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${join(cache, "out")}`, ctx]);
    const lines = screen.split("\n").map((l) => l.trimEnd());
    expect(lines).toContain("EXIT=0");
    // every step of the plan, once, finished
    const steps = lines.filter((l) => /^#\d+ \[/.test(l));
    const texts = steps.map((l) => l.replace(/^#\d+ /, "").replace(/  (DONE|CACHED).*$/, ""));
    expect(texts.sort()).toEqual([
      "[one 1/2] FROM base AS one", "[one 2/2] RUN sleep 2 && echo one-done > /one",
      "[stage-2 1/4] FROM base", "[stage-2 2/4] COPY --from=one /one /one", "[stage-2 3/4] COPY --from=two /two /two", "[stage-2 4/4] RUN cat /one /two",
      "[two 1/2] FROM base AS two", "[two 2/2] RUN sleep 2 && echo two-done > /two",
    ].sort());
    for (const l of steps) expect(l).toMatch(/  (DONE \d+\.\ds|CACHED)/);
    expect(lines.some((l) => /^#\d+ one-done$/.test(l))).toBe(true); // RUN output scrolled above
    expect(lines.some((l) => /^done: 8 steps \(0 cached\) in \d+\.\ds$/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith("built sha256:"))).toBe(true);
    // while it ran: both stages' RUN at once, each with its own timer
    const both = seen.find((s) => /\[one 2\/2\] RUN .*  \d+\.\ds/.test(s) && /\[two 2\/2\] RUN .*  \d+\.\ds/.test(s));
    expect(both, seen.at(-1)).toBeDefined();
  });

  it("a failing build leaves a clean screen: finished steps, the failed one marked ERROR, 'failed:' total, the error, exit 1", async () => {
    const { ctx, cache } = await context("FROM base\nRUN echo about to fail && exit 3\n");
    const { screen } = await onTerminal("fail", ["build", "--progress", "auto", "--cache-dir", cache, "--build-context", `base=${base().buildContext}`, ctx]);
    const lines = screen.split("\n").map((l) => l.trimEnd()).filter((l) => l !== "");
    expect(lines, screen).toContain("EXIT=1");
    expect(lines.some((l) => /^failed: 1 step \(0 cached\) in \d+\.\ds$/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith("error: Dockerfile:2: RUN"))).toBe(true);
    // the failed step once, marked (no live line left)
    expect(lines.filter((l) => l.includes("RUN echo about to fail")), screen).toEqual([expect.stringMatching(/^#2 \[stage-0 2\/2\] RUN echo about to fail && exit 3  ERROR \d+\.\ds$/)]);
  });

  it("Ctrl-C: the running step is marked CANCELED, 'interrupted:' total, exit 130, a clean screen", async () => {
    const { ctx, cache } = await context("FROM base\nRUN echo started && sleep 60\n");
    let sent = false;
    const { screen } = await onTerminal("int", ["build", "--progress", "tty", "--cache-dir", cache, "--build-context", `base=${base().buildContext}`, ctx], async (now) => {
      if (!sent && /^#2 started$/m.test(now)) {
        sent = true;
        await mustRun("tmux", ["-L", socket, "send-keys", "-t", "int", "C-c"]);
      }
    });
    const lines = screen.split("\n").map((l) => l.trimEnd()).filter((l) => l !== "");
    expect(lines, screen).toContain("EXIT=130");
    expect(lines.filter((l) => l.includes("RUN echo started")), screen).toEqual([expect.stringMatching(/  CANCELED \d+\.\ds$/)]);
    expect(lines.some((l) => /^interrupted: 1 step \(0 cached\) in \d+\.\ds$/.test(l)), screen).toBe(true);
    expect(lines).toContain("error: interrupted (SIGINT)");
  });

  it("a terminal made narrower mid-build: the live lines follow the new width and the final screen is clean", async () => {
    const long = `RUN echo started && sleep 3 && echo ${"x".repeat(70)}`;
    const { ctx, cache } = await context(`FROM base\n${long}\n`);
    let resized = false;
    const { screen } = await onTerminal("narrow", ["build", "--progress", "tty", "--cache-dir", cache, "--build-context", `base=${base().buildContext}`, ctx], async (now) => {
      if (!resized && /^#2 started$/m.test(now)) {
        resized = true;
        await mustRun("tmux", ["-L", socket, "resize-window", "-t", "narrow", "-x", "60", "-y", "50"]);
      }
    });
    expect(resized).toBe(true);
    const lines = screen.split("\n").map((l) => l.trimEnd()).filter((l) => l !== "");
    expect(lines, screen).toContain("EXIT=0");
    // the step once, finished, cut to the new width; no line of an old redraw left behind
    const stepLines = lines.filter((l) => l.startsWith("#2 [stage-0 2/2] RUN echo started"));
    expect(stepLines, screen).toHaveLength(1);
    expect(stepLines[0]!.length, screen).toBeLessThanOrEqual(60);
    expect(lines.filter((l) => /^done: 2 steps/.test(l)), screen).toHaveLength(1);
  });

  it("--progress tty without a terminal is plain; rawjson is one JSON event per line", async () => {
    const { ctx, cache } = await context("FROM base\nRUN echo hello-json && echo x > /f\n");
    const plain = await kiln(["build", "--progress", "tty", "--cache-dir", cache, "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${join(cache, "a")}`, ctx]);
    expectBuilt(plain);
    expect(plain.stderr).not.toContain("\x1b[");
    expect(plain.stderr).toMatch(/^#\d+ \[stage-0 2\/2\] RUN echo hello-json && echo x > \/f$/m);

    const raw = await kiln(["build", "--progress", "rawjson", "--no-cache", "--cache-dir", cache, "--build-context", `base=${base().buildContext}`, "-o", `type=oci,dest=${join(cache, "b")}`, ctx]);
    expectBuilt(raw);
    const events = raw.stderr.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.every((e) => typeof e.type === "string" && typeof e.time === "string")).toBe(true);
    const starts = events.filter((e) => e.type === "step-start");
    expect(starts.map((e) => e.text)).toEqual(["FROM base", "RUN echo hello-json && echo x > /f"]);
    expect(starts[1]).toMatchObject({ stage: "stage-0", step: 2, steps: 2 });
    const done = events.filter((e) => e.type === "step-done");
    expect(done.map((e) => e.id).sort()).toEqual(starts.map((e) => e.id).sort());
    const logs = events.filter((e) => e.type === "step-log" && e.id === starts[1]!.id);
    expect(logs.map((e) => Buffer.from(e.data as string, "base64").toString("utf8")).join("")).toContain("hello-json\n");
    expect(done.find((e) => e.id === starts[1]!.id)).toMatchObject({ layer: { digest: expect.stringMatching(/^sha256:/) } });
  });
});
