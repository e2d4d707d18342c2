// Temporary directories for end-to-end tests: each made under os.tmpdir() and removed by
// `cleanup()` (call it from afterAll/afterEach).
import { mkdtemp, rm, cp, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./kiln.js";

export class TempDirs {
  private readonly dirs: string[] = [];

  async make(prefix = "kiln-e2e-"): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  async cleanup(): Promise<void> {
    const dirs = this.dirs.splice(0);
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** Path of a committed build case: testdata/builds/<name>. */
export function casePath(name: string): string {
  return join(REPO_ROOT, "testdata", "builds", name);
}

/**
 * Copies testdata/builds/<name> to a fresh temp dir (so tests can add generated files and touch
 * mtimes without changing the repository) and returns the copy's path.
 */
export async function copyCase(temps: TempDirs, name: string): Promise<string> {
  const dir = await temps.make(`kiln-case-${name}-`);
  await cp(casePath(name), dir, { recursive: true, verbatimSymlinks: true });
  await chmod(dir, 0o755);
  return dir;
}
