// The real CNCF distribution registry (`docker-registry serve`) on 127.0.0.1 with plain HTTP and
// filesystem storage in a temp dir, for tests that look at an image through a registry.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import type { TempDirs } from "./temp.js";

export interface LocalRegistry {
  /** host:port */
  host: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export async function startRegistry(temps: TempDirs): Promise<LocalRegistry> {
  const dir = await temps.make("kiln-registry-");
  const port = await freePort();
  const config = join(dir, "config.yml");
  await writeFile(config, [
    "version: 0.1",
    "log:",
    "  level: error",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(dir, "data")}`,
    "http:",
    `  addr: 127.0.0.1:${port}`,
    "",
  ].join("\n"));
  const child: ChildProcess = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error("docker-registry did not start within 15s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
