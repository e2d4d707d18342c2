// End-to-end: an image whose config claims another image's diff_id (issue #10, escape 5). The
// build that uses it fails with one line naming the layer and its image, and a later build of the
// legitimate image with the same cache directory gets the legitimate content, with each
// snapshotter (the overlay one keeps extractions per diffID across builds).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";
import { makeTar } from "../snapshot/helpers.js";
import { writeHandLayout } from "../helpers/hand-layout.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

/** A layout of one layer holding /app.conf; `claim` overrides its diff_id. */
async function handLayout(dir: string, content: string, claim?: string): Promise<{ diffID: string; layer: string }> {
  const l = await writeHandLayout(dir, [makeTar([{ name: "app.conf", content }])], [claim]);
  return { diffID: l.diffIDs[0]!, layer: l.layers[0]! };
}

describe("kiln build: a base layer whose content does not match its claimed diff_id", () => {
  for (const snapshotter of ["overlay", "dir"]) {
    it(`${snapshotter}: refuses the hostile image and keeps the legitimate one intact`, async () => {
      const dir = await temps.make("kiln-diffid-");
      const good = await handLayout(join(dir, "good"), "legitimate\n");
      const evil = await handLayout(join(dir, "evil"), "poisoned\n", good.diffID);
      const ctx = join(dir, "ctx");
      await mkdir(ctx);
      // no RUN (no shell in these images): COPY --from the image extracts its layers into a root filesystem
      await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY --from=base /app.conf /seen.conf\n");
      const cache = join(dir, "cache");
      const build = (layout: string, out: string) =>
        kiln(["build", "--progress", "quiet", "--snapshotter", snapshotter, "--cache-dir", cache, "--build-context", `base=oci-layout://${layout}:v1`, "-o", `type=oci,dest=${join(dir, out)}`, "-t", "x:latest", ctx]);

      const refused = await build(join(dir, "evil"), "evil-out");
      expect(refused.code, refused.stderr).toBe(1);
      const line = refused.stderr.trim().split("\n").find((l) => l.includes("diff_id")) ?? refused.stderr;
      expect(line).toMatch(new RegExp(`layer ${evil.layer}( of build context base)?: content does not match its diff_id \\(claimed ${good.diffID}, got sha256:[0-9a-f]{64}\\)`));

      expectBuilt(await build(join(dir, "good"), "good-out"));
      const rootfs = await umociUnpack(temps, join(dir, "good-out"), "latest");
      expect(await readFile(join(rootfs, "seen.conf"), "utf8")).toBe("legitimate\n");
    });
  }
});
