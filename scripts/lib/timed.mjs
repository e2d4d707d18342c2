// Timing a command for the benchmarks: wall seconds (spawn to exit) and peak RSS from GNU time,
// with the command's output captured.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A `timed(cmd, args, env?)` that runs commands in `cwd` under `/usr/bin/time`, writing its
 * RSS reports into `scratch`. Resolves { code, seconds, rssMB, stdout, stderr }; never rejects
 * on a non-zero exit.
 */
export function makeTimer({ cwd, scratch }) {
  return function timed(cmd, args, env = {}) {
    const rssFile = join(scratch, `rss-${process.hrtime.bigint()}`);
    return new Promise((res) => {
      const t0 = process.hrtime.bigint();
      const child = spawn("/usr/bin/time", ["-o", rssFile, "-f", "%M", cmd, ...args], { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      const out = [];
      const err = [];
      child.stdout.on("data", (b) => out.push(b));
      child.stderr.on("data", (b) => err.push(b));
      child.on("close", (code) => {
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        let rssKiB = NaN;
        try {
          rssKiB = Number(readFileSync(rssFile, "utf8").trim().split("\n").pop());
        } catch {
          // time wrote nothing (the command did not start)
        }
        res({ code, seconds, rssMB: rssKiB / 1024, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
      });
    });
  };
}
