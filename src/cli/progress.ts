// Progress rendering for `kiln build`, `kiln pull` and `kiln push`: `plain` prints one line per
// step with its time, layer size and digest (and RUN output prefixed by the step number) and one
// line per blob transferred; `auto` on a TTY redraws the running step (or the blob in flight,
// bytes done/total) in place; `quiet` prints nothing but warnings.
import type { BuildEvent, BuildListener } from "../engine/events.js";
import type { TransferProgress } from "../registry/options.js";
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
      case "pull-progress":
      case "push-progress": {
        if (event.state === "progress") {
          if (live) out.write("\r\x1b[2K" + truncate(transferInFlight(event), (out.columns ?? 100) - 1));
          break;
        }
        if (live) out.write("\r\x1b[2K" + liveLine);
        const line = buildTransferLine(event);
        if (line) write(line);
        break;
      }
      case "step-start": {
        const head = `#${event.id} [${event.platform ? `${event.platform} ` : ""}${event.stage} ${event.step}/${event.steps}] ${event.emulated ? event.text.replace(/^(\S+)/, `$1 (emulated ${event.emulated})`) : event.text}`;
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
        if (event.shared) parts.push("shared layer");
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

/** A build's line for a finished blob transfer (none for a pull the store already had). */
function buildTransferLine(ev: TransferProgress): string | undefined {
  if (ev.kind === "pull") return ev.state === "done" ? `pull ${ev.digest.slice(0, 19)}: pulled ${formatBytes(ev.total)} at ${formatBytes(ev.rate)}/s` : undefined;
  const what = ev.state === "exists" ? "already in the registry" : ev.state === "mounted" ? "mounted" : `pushed ${formatBytes(ev.total)} at ${formatBytes(ev.rate)}/s`;
  return `push ${ev.digest.slice(0, 19)}: ${what}`;
}

function transferInFlight(ev: TransferProgress): string {
  const pct = ev.total > 0 ? ` (${Math.floor((ev.bytes / ev.total) * 100)}%)` : "";
  return `${ev.kind} ${ev.digest.slice(0, 19)}: ${formatBytes(ev.bytes)} / ${formatBytes(ev.total)}${pct}`;
}

/**
 * Per-blob progress for `kiln pull` and `kiln push`: one line per finished blob
 * (`sha256:0123456789ab  pulled 3.1 MiB at 20 MiB/s`, `exists`, `mounted`), and on a TTY the
 * blob in flight redrawn in place with its bytes done/total.
 */
export function createTransferProgress(out: NodeJS.WriteStream = process.stderr): (ev: TransferProgress) => void {
  const live = out.isTTY === true;
  let drawn = false;
  return (ev) => {
    if (ev.state === "progress") {
      if (!live) return;
      out.write("\r\x1b[2K" + truncate(transferInFlight(ev), (out.columns ?? 100) - 1));
      drawn = true;
      return;
    }
    if (drawn) {
      out.write("\r\x1b[2K");
      drawn = false;
    }
    const verb = ev.kind === "pull" ? "pulled" : "pushed";
    const what = ev.state === "exists" ? "exists" : ev.state === "mounted" ? "mounted" : `${verb} ${formatBytes(ev.total)} at ${formatBytes(ev.rate)}/s`;
    out.write(`${ev.digest.slice(0, 19)}  ${what}\n`);
  };
}

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, Math.max(0, n - 1)) + "…" : s;
}
