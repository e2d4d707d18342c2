// The git runner's limits: every command stops at its time limit and at the AbortSignal, against
// a loopback server that accepts the connection and never answers (so only kiln's limits end it).
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveGitRef } from "../../src/context/git.js";
import { parseGitUrl } from "../../src/context/git-url.js";
import { AbortError, KilnError } from "../../src/errors.js";

let server: Server;
let port: number;
const sockets: Socket[] = [];

beforeAll(async () => {
  server = createServer((s) => void sockets.push(s)); // accepts, never speaks
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

describe("git commands", () => {
  it("end at their time limit with one line naming the source", async () => {
    const started = Date.now();
    const err = await resolveGitRef(parseGitUrl(`git://127.0.0.1:${port}/r.git#main`), { timeoutMs: 400 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe("GIT_FETCH_FAILED");
    expect((err as Error).message).toBe(`git source git://127.0.0.1:${port}/r.git#main: git ls-remote took longer than 400ms`);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("end when the signal aborts", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("stop")), 300);
    const err = await resolveGitRef(parseGitUrl(`git://127.0.0.1:${port}/r.git#main`), { signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
  });
});
