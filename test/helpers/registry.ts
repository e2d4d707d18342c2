// The real CNCF distribution registry for end-to-end tests: the same starter the registry tests
// use (plain HTTP on 127.0.0.1, filesystem storage in a temp dir, an access log to inspect), and
// useRegistry(), which starts one for a test file (beforeAll) and stops it (afterAll).
import { afterAll, beforeAll } from "vitest";
import { startRegistry, type RunningRegistry } from "../registry/harness.js";

export { startRegistry, type RunningRegistry as LocalRegistry } from "../registry/harness.js";

/** A registry for the whole test file: call at the top level; the getter works inside tests. */
export function useRegistry(): () => RunningRegistry {
  let registry: RunningRegistry | undefined;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });
  return () => {
    if (!registry) throw new Error("useRegistry(): the registry is not started yet (use it inside a test)");
    return registry;
  };
}
