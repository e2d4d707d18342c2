// Go build info of executables of any size with flat memory: a sparse 1 GiB Go-like ELF whose
// .go.buildinfo section sits near the end of its data segment is found by positioned reads (the
// process's memory grows by far less than the file), by the build-context scan of a file over
// the old 256 MiB limit, and by the layer scan, which spools a large executable to a temporary
// file (removed afterwards); a truncated file is still "not a Go binary".
import { afterAll, describe, expect, it } from "vitest";
import { open, readdir, truncate } from "node:fs/promises";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import * as tar from "tar-stream";
import { readGoBuildInfoFile } from "../../src/attest/go-buildinfo.js";
import { findPackages } from "../../src/attest/packages.js";
import { scanDirectory } from "../../src/attest/scan-dir.js";
import { scanFiles } from "../../src/attest/scan-files.js";
import { sparseGoElf } from "../helpers/go-binary.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const modinfo = "path\texample.com/big/cmd\nmod\texample.com/big\tv1.0.0\th1:abc=\ndep\texample.com/dep\tv0.2.0\th1:def=\n";
const want = { goVersion: "go1.22.3", modinfo };

/** `fn`'s result and how far arrayBuffers and rss rose above their start while it ran (sampled every 5 ms). */
async function peakGrowth<T>(fn: () => Promise<T>): Promise<{ value: T; arrayBuffers: number; rss: number }> {
  const start = process.memoryUsage();
  let arrayBuffers = 0;
  let rss = 0;
  const sample = (): void => {
    const m = process.memoryUsage();
    arrayBuffers = Math.max(arrayBuffers, m.arrayBuffers - start.arrayBuffers);
    rss = Math.max(rss, m.rss - start.rss);
  };
  const timer = setInterval(sample, 5);
  try {
    const value = await fn();
    sample();
    return { value, arrayBuffers, rss };
  } finally {
    clearInterval(timer);
  }
}

describe("Go build info of large executables", () => {
  it("reads a sparse 1 GiB ELF's build info near the end of its data segment with flat memory", async () => {
    const path = join(await temps.make("kiln-go-large-"), "big");
    await sparseGoElf(path, GiB, want);
    const fh = await open(path, "r");
    try {
      const m = await peakGrowth(() => readGoBuildInfoFile(fh, GiB));
      expect(m.value).toEqual(want);
      console.log(`positioned scan of a 1 GiB ELF: peak arrayBuffers +${(m.arrayBuffers / MiB).toFixed(1)} MiB, rss +${(m.rss / MiB).toFixed(1)} MiB`);
      expect(m.arrayBuffers).toBeLessThan(32 * MiB);
      expect(m.rss).toBeLessThan(32 * MiB);
    } finally {
      await fh.close();
    }
  });

  it("a truncated large ELF (its section headers cut off, or its size larger than the file) is not a Go binary", async () => {
    const path = join(await temps.make("kiln-go-large-"), "cut");
    await sparseGoElf(path, GiB, want);
    await truncate(path, GiB - 4096); // the section headers are gone, the program header's segment past the end
    const fh = await open(path, "r");
    try {
      await expect(readGoBuildInfoFile(fh, GiB - 4096)).resolves.toBeUndefined();
      await expect(readGoBuildInfoFile(fh, GiB)).resolves.toBeUndefined(); // the file shorter than it was said to be
    } finally {
      await fh.close();
    }
  });

  it("the build-context scan finds a Go binary over 256 MiB", async () => {
    const dir = await temps.make("kiln-go-large-ctx-");
    await sparseGoElf(join(dir, "big"), 300 * MiB, want);
    const m = await peakGrowth(() => scanDirectory(dir));
    expect(findPackages(m.value).map((p) => p.purl)).toEqual(["pkg:golang/example.com/big@v1.0.0", "pkg:golang/example.com/dep@v0.2.0", "pkg:golang/stdlib@1.22.3"]);
    expect(m.arrayBuffers).toBeLessThan(32 * MiB);
  });

  it("the layer scan finds a Go binary over 256 MiB, spooled to a temporary file that is removed", async () => {
    const dir = await temps.make("kiln-go-large-layer-");
    const size = 300 * MiB;
    await sparseGoElf(join(dir, "big"), size, want);
    const spoolDir = await temps.make("kiln-go-spool-");
    let spooled = 0;
    const layer = {
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      open: () => {
        const pack = tar.pack();
        const entry = pack.entry({ name: "usr/local/bin/big", size, mode: 0o755 });
        pipeline(createReadStream(join(dir, "big")), entry).then(() => pack.finalize(), (err: Error) => pack.destroy(err));
        return pack;
      },
    };
    const m = await peakGrowth(() => scanFiles([layer], {
      tempPath: async () => {
        spooled++;
        return join(spoolDir, `spool-${spooled}`);
      },
    }));
    expect([...m.value.keys()]).toEqual(["usr/local/bin/big"]);
    expect(findPackages(m.value).map((p) => p.purl)).toEqual(["pkg:golang/example.com/big@v1.0.0", "pkg:golang/example.com/dep@v0.2.0", "pkg:golang/stdlib@1.22.3"]);
    expect(spooled).toBe(1);
    expect(await readdir(spoolDir)).toEqual([]);
    console.log(`layer scan of a ${size / MiB} MiB executable: peak arrayBuffers +${(m.arrayBuffers / MiB).toFixed(1)} MiB, rss +${(m.rss / MiB).toFixed(1)} MiB`);
    // Not the whole file held: the spool keeps at most 8 MiB and the rest is garbage of the stream
    // (tar-stream's and the read stream's chunks). V8 collects external memory only after it has
    // grown by about 64 MiB since the last collection, so the peak sampled here sits near 64 MiB
    // whatever the scan holds: the bound is half the file, which holding it would exceed.
    expect(m.arrayBuffers).toBeLessThan(size / 2);
  });
});
