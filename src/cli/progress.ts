// Progress rendering for `kiln build`, `kiln pull` and `kiln push`: `plain` prints one line per
// step with its time, layer size and digest (and RUN output prefixed by the step number) and one
// line per blob transferred; `auto` and `tty` on a terminal show the live multi-line view
// (live-progress.ts; not a terminal: plain); `rawjson` prints each build event as one JSON object
// per line (the library's events; RUN output base64 in `data`, plus `time`); `quiet` prints
// nothing but warnings.
import type { BuildEvent } from "../engine/events.js";
import type { TransferProgress } from "../registry/options.js";
import { formatBytes } from "../units.js";
import { createLiveProgress, type ClosableListener } from "./live-progress.js";

export type ProgressMode = "auto" | "plain" | "tty" | "rawjson" | "quiet";
export const PROGRESS_MODES: readonly ProgressMode[] = ["auto", "plain", "tty", "rawjson", "quiet"];
export type { ClosableListener } from "./live-progress.js";

/** The progress listener for `mode` on `out`; call its `close()` when the build ends. */
export function createProgress(mode: ProgressMode, out: NodeJS.WriteStream = process.stderr): ClosableListener {
  if ((mode === "auto" || mode === "tty") && out.isTTY === true) return createLiveProgress(out, stepHead);
  if (mode === "rawjson") return rawJsonProgress(out);
  const listener = plainProgress(mode === "quiet" ? "quiet" : "plain", out) as ClosableListener;
  listener.close = () => undefined;
  return listener;
}

/** `#3 [stage 2/5] RUN make` (with the platform in a multi-platform build, and emulation marked). */
function stepHead(event: Extract<BuildEvent, { type: "step-start" }>): string {
  return `#${event.id} [${event.platform ? `${event.platform} ` : ""}${event.stage} ${event.step}/${event.steps}] ${event.emulated ? event.text.replace(/^(\S+)/, `$1 (emulated ${event.emulated})`) : event.text}`;
}

/** One JSON object per event and line: the event's own fields, `data` (RUN output) as base64, and `time`. */
function rawJsonProgress(out: NodeJS.WriteStream): ClosableListener {
  const listener = ((event: BuildEvent) => {
    const record = event.type === "step-log" ? { ...event, data: event.data.toString("base64") } : event;
    out.write(JSON.stringify({ ...record, time: new Date().toISOString() }) + "\n");
  }) as ClosableListener;
  listener.close = () => undefined;
  return listener;
}

function plainProgress(effective: "plain" | "quiet", out: NodeJS.WriteStream): (event: BuildEvent) => void {
  const partial = new Map<number, string>();
  const write = (line: string): void => {
    out.write(line + "\n");
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
        if (event.state === "progress") break;
        const line = buildTransferLine(event);
        if (line) write(line);
        break;
      }
      case "step-start":
        write(stepHead(event));
        break;
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
        write(`#${event.id} ${parts.join("  ")}`);
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
