import { it } from "vitest";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { tarStream } from "../../src/layer/tar-writer.js";
it("perf", async () => {
  const n = 100_000;
  const b = Buffer.from("hello world\n");
  const entries = Array.from({ length: n }, (_, i) => ({ path: `d${i % 100}/f${i}`, type: "file" as const, mode: 0o644, uid: 0, gid: 0, mtime: 1, size: b.length, open: () => Readable.from([b]) }));
  for (let i = 0; i < 100; i++) entries.push({ path: `d${i}`, type: "dir" as any, mode: 0o755, uid: 0, gid: 0, mtime: 1, size: 0, open: undefined as any });
  for (let r = 0; r < 3; r++) {
  const t = Date.now();
  let bytes = 0;
  await pipeline(tarStream(entries), new Writable({ write(c, _e, cb) { bytes += c.length; cb(); } }));
  console.log("100k files", Date.now() - t, "ms", bytes, process.cpuUsage().user/1000);
  }
}, 120000);
