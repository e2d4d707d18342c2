// Progress rendering for `kiln build`: `plain` prints one line per step with its time, layer
// size and digest (and RUN output prefixed by the step number); `auto` on a TTY redraws the
// running step in place; `quiet` prints nothing but warnings.
import type { BuildEvent, BuildListener } from "../build/events.js";
import { formatBytes } from "../units.js";

export type ProgressMode = "auto" | "plain" | "quiet";


export function createProgress(mode: ProgressMode, out: NodeJS.WriteStream = process.stderr): BuildListener {
  const live = mode === "auto" && out.isTTY === true;
  const effective: ProgressMode = mode === "auto" ? "plain" : mode;
  const pending = new Map<number, string>();
  const partial = new Map<number, string>();
  let liveLine = "";

  const write = (line: string): void => {
    if (live && liveLine) out.write("\r\x1b[2K");
    out.write(line + "\n");
    if (live && liveLine) out.write(liveLine);
  };

  return (event: BuildEvent) => {
    if (event.type === "warning") {
      write(`WARNING: ${event.message}`);
      return;
    }
    if (effective === "quiet") return;
    switch (event.type) {
      case "info":
        write(event.message);
        break;
      case "step-start": {
        const head = `#${event.id} [${event.stage} ${event.step}/${event.steps}] ${event.text}`;
        pending.set(event.id, head);
        if (live) {
          liveLine = `\x1b[36m${truncate(head, (out.columns ?? 100) - 1)}\x1b[0m`;
          out.write("\r\x1b[2K" + liveLine);
        } else write(head);
        break;
      }
      case "step-log": {
        const text = (partial.get(event.id) ?? "") + event.data.toString("utf8");
        const lines = text.split("\n");
        partial.set(event.id, lines.pop() ?? "");
        for (const l of lines) write(`#${event.id} ${l}`);
        break;
      }
      case "step-done": {
        const rest = partial.get(event.id);
        if (rest) write(`#${event.id} ${rest}`);
        partial.delete(event.id);
        const parts = [event.cached ? "CACHED" : `DONE ${event.seconds.toFixed(1)}s`];
        if (event.snapshotSeconds !== undefined) parts.push(`snapshot ${event.snapshotSeconds.toFixed(2)}s`);
        if (event.layer) parts.push(formatBytes(event.layer.size), event.layer.digest.slice(0, 19));
        if (live) {
          liveLine = "";
          out.write("\r\x1b[2K");
          write(`${pending.get(event.id) ?? `#${event.id}`}  ${parts.join("  ")}`);
        } else write(`#${event.id} ${parts.join("  ")}`);
        pending.delete(event.id);
        break;
      }
    }
  };
}

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, Math.max(0, n - 1)) + "…" : s;
}
