// The live view of `kiln build --progress auto|tty` on a terminal, in the spirit of buildx's: a
// block at the bottom of the screen redrawn in place (at most 10 times a second) with every
// running step and its own timer (parallel stages are visible at once) and every blob in flight
// (bytes done/total and rate); a finished step leaves the block and is printed once above it as one
// line (time, layer size, digest, or CACHED); RUN output and warnings scroll above the block. At
// the end (success, failure or Ctrl-C) the block is erased, leaving a clean screen: the finished
// lines, the steps cut short (ERROR / CANCELED) and a total. Lines are cut to the terminal's width, read again on every redraw (resize).
import type { BuildEvent, BuildListener } from "../engine/events.js";
import type { TransferProgress } from "../registry/options.js";
import { formatBytes } from "../units.js";

/** A build listener that also ends the view (erasing the live block; `summary` is printed last). */
export interface ClosableListener extends BuildListener {
  close(summary?: string): void;
}

interface Running {
  head: string;
  started: number;
}

const REDRAW_MS = 100;

export function createLiveProgress(out: NodeJS.WriteStream, head: (e: Extract<BuildEvent, { type: "step-start" }>) => string, now: () => number = Date.now): ClosableListener {
  const running = new Map<number, Running>();
  const transfers = new Map<string, TransferProgress>();
  const partial = new Map<number, string>();
  const started = now();
  let steps = 0;
  let cached = 0;
  /** Visible lengths of the block's lines as last drawn (a narrower terminal rewraps them). */
  let drawn: number[] = [];
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let lastDraw = -Infinity;

  const visibleLength = (s: string): number => s.replace(/\x1b\[[0-9;]*m/g, "").length;
  const width = (): number => Math.max(20, (out.columns ?? 100) - 1);
  const cut = (s: string): string => (s.length > width() ? s.slice(0, width() - 1) + "…" : s);
  const erase = (): void => {
    if (drawn.length === 0) return;
    // the size as the terminal has it now: Node updates `columns` only once it has handled the
    // resize's SIGWINCH, and a redraw in between would count rows at the old width (tty's
    // _refreshSize reads it with TIOCGWINSZ, synchronously; absent on other streams)
    (out as NodeJS.WriteStream & { _refreshSize?: () => void })._refreshSize?.();
    // the rows the block takes now: a terminal made narrower since (tmux, VTE, kitty...) has
    // rewrapped each line that no longer fits onto several rows
    const cols = Math.max(1, out.columns ?? 100);
    const rows = drawn.reduce((n, len) => n + Math.max(1, Math.ceil(len / cols)), 0);
    out.write(`\r\x1b[${rows}A\x1b[J`);
    drawn = [];
  };
  const block = (): string[] => {
    const t = now();
    const lines: string[] = [];
    for (const r of running.values()) lines.push(`\x1b[36m${cut(`${r.head}  ${((t - r.started) / 1000).toFixed(1)}s`)}\x1b[0m`);
    for (const x of transfers.values()) {
      const pct = x.total > 0 ? ` ${Math.floor((x.bytes / x.total) * 100)}%` : "";
      lines.push(cut(`  ${x.kind} ${x.digest.slice(0, 19)}: ${formatBytes(x.bytes)} / ${formatBytes(x.total)}${pct} ${formatBytes(x.rate)}/s`));
    }
    const rows = Math.max(3, (out.rows ?? 24) - 2);
    return lines.length > rows ? [...lines.slice(0, rows - 1), cut(`  … and ${lines.length - rows + 1} more`)] : lines;
  };
  const draw = (): void => {
    if (closed) return;
    lastDraw = now();
    erase();
    const lines = block();
    if (lines.length > 0) out.write(lines.join("\n") + "\n");
    drawn = lines.map(visibleLength);
  };
  /** Print lines above the block (they stay), then redraw the block. */
  const print = (...lines: string[]): void => {
    erase();
    out.write(lines.map(cut).join("\n") + "\n");
    draw();
  };
  const schedule = (): void => {
    if (timer || closed) return;
    timer = setInterval(draw, REDRAW_MS);
    timer.unref();
  };

  const listener = ((event: BuildEvent) => {
    if (closed) return;
    switch (event.type) {
      case "warning":
        print(`WARNING: ${event.message}`);
        break;
      case "info":
        print(event.message);
        break;
      case "step-start":
        running.set(event.id, { head: head(event), started: now() });
        schedule();
        draw();
        break;
      case "step-log": {
        const text = (partial.get(event.id) ?? "") + event.data.toString("utf8");
        const lines = text.split("\n");
        partial.set(event.id, lines.pop() ?? "");
        if (lines.length > 0) print(...lines.map((l) => `#${event.id} ${l}`));
        break;
      }
      case "step-done": {
        const r = running.get(event.id);
        running.delete(event.id);
        const rest = partial.get(event.id);
        partial.delete(event.id);
        steps++;
        if (event.cached) cached++;
        const parts = [event.cached ? "CACHED" : `DONE ${event.seconds.toFixed(1)}s`];
        if (event.layer) parts.push(formatBytes(event.layer.size), event.layer.digest.slice(0, 19));
        print(...(rest ? [`#${event.id} ${rest}`] : []), `${r?.head ?? `#${event.id}`}  ${parts.join("  ")}`);
        break;
      }
      case "pull-progress":
      case "push-progress": {
        const key = `${event.kind} ${event.digest}`;
        if (event.state === "progress") {
          transfers.set(key, event);
          schedule();
          if (now() - lastDraw >= REDRAW_MS) draw(); // bytes move often: at most 10 redraws a second
          break;
        }
        transfers.delete(key);
        if (event.kind === "pull" && event.state !== "done") break;
        const what = event.state === "exists" ? "already in the registry" : event.state === "mounted" ? "mounted" : `${event.kind === "pull" ? "pulled" : "pushed"} ${formatBytes(event.total)} at ${formatBytes(event.rate)}/s`;
        print(`${event.kind} ${event.digest.slice(0, 19)}: ${what}`);
        break;
      }
    }
  }) as ClosableListener;

  listener.close = (summary?: string) => {
    if (closed) return;
    if (timer) clearInterval(timer);
    erase();
    closed = true;
    // steps still running when the build ended: marked as buildx marks them
    const mark = summary === "interrupted" ? "CANCELED" : "ERROR";
    for (const r of running.values()) out.write(cut(`${r.head}  ${mark} ${((now() - r.started) / 1000).toFixed(1)}s`) + "\n");
    const total = `${steps} step${steps === 1 ? "" : "s"} (${cached} cached) in ${((now() - started) / 1000).toFixed(1)}s`;
    out.write(`${summary ? `${summary}: ` : ""}${total}\n`);
  };
  return listener;
}
