import { it } from "vitest";
import { mkdir, writeFile, mkdtemp } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DirContext } from "../../src/context/build-context.js";
import { selectSources } from "../../src/context/select.js";
import { StatCache, hashSources } from "../../src/cache/sources.js";
import { BlobStore } from "../../src/store/blob-store.js";
it("profile", async () => {
  const root = "/tmp/kprof/ctx";
  if (!existsSync(root)) {
    for (let d = 0; d < 100; d++) {
      const dir = join(root, "src", `d${d}`);
      await mkdir(dir, { recursive: true });
      await Promise.all(Array.from({ length: 200 }, (_, f) => writeFile(join(dir, `f${f}.txt`), `file ${d}/${f}\n`)));
    }
  }
  const store = new BlobStore("/tmp/kprof/store");
  const t = () => Number(process.hrtime.bigint()) / 1e9;
  for (let i = 0; i < 3; i++) {
    let t0 = t();
    const ctx = new DirContext(root);
    const sel = await selectSources(ctx, ["src"]);
    let n = 0;
    for await (const _ of ctx.walk("src")) n++;
    const tw = t() - t0; t0 = t();
    const cache = await StatCache.load(store, root);
    const tl = t() - t0; t0 = t();
    await hashSources(sel, { statCache: cache });
    const th = t() - t0; t0 = t();
    await cache.save();
    const ts = t() - t0;
    console.log({ n, walk: tw, load: tl, hash: th, save: ts, reads: cache.reads });
  }
});
