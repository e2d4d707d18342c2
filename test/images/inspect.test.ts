// `kiln inspect` and `kiln history` on a stored name and on an oci-layout:// path of the same
// build: the manifest and config kiln prints are the blobs skopeo reads from the layout, and the
// history pairs each non-empty entry with its layer, newest first.
import { afterAll, describe, expect, it } from "vitest";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { skopeoInspect, skopeoRaw, ociRef } from "../helpers/tools.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

describe("kiln inspect and kiln history", () => {
  it("print the manifest, config and layer history of a stored name and of a layout alike", async () => {
    const cache = await temps.make("kiln-inspect-cache-");
    const layout = join(await temps.make("kiln-inspect-out-"), "layout");
    const ctx = await temps.make("kiln-inspect-ctx-");
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY a /a\nENV X=1\nCOPY b /b\nCMD [\"/a\"]\n");
    await writeFile(join(ctx, "a"), "a".repeat(5000));
    await writeFile(join(ctx, "b"), "b");
    const digest = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "-t", "meta:1", "-o", `type=oci,dest=${layout}`, ctx]));
    const stored = await kiln(["inspect", "--cache-dir", cache, "meta:1"]);
    expect(stored.code, stored.stderr).toBe(0);
    const fromLayout = await kiln(["inspect", "--cache-dir", cache, `oci-layout://${layout}:1`]);
    const a = JSON.parse(stored.stdout) as { name: string; digest: string; manifest: unknown; config: { history: Array<{ created_by: string; empty_layer?: boolean }> } };
    const b = JSON.parse(fromLayout.stdout) as typeof a;
    expect(a.name).toBe("meta:1");
    expect(a.digest).toBe(digest);
    expect({ ...b, name: "" }).toEqual({ ...a, name: "" });
    expect(a.manifest).toEqual(await skopeoRaw(ociRef(layout, "1")));
    expect(a.config).toEqual((await skopeoInspect(layout, "1")).config);

    const h = await kiln(["history", "--cache-dir", cache, "--format", "json", "meta:1"]);
    expect(h.code, h.stderr).toBe(0);
    const rows = JSON.parse(h.stdout) as Array<{ layer?: string; createdBy: string; size: number }>;
    const history = [...a.config.history].reverse();
    expect(rows.map((r) => r.createdBy)).toEqual(history.map((x) => x.created_by));
    const layers = (a.manifest as { layers: Array<{ digest: string; size: number }> }).layers;
    expect(rows.filter((r) => r.layer).map((r) => [r.layer, r.size])).toEqual([...layers].reverse().map((l) => [l.digest, l.size]));
    expect(rows.filter((r) => !r.layer).length).toBe(history.filter((x) => x.empty_layer).length);
    expect(rows.map((r) => [r.createdBy, !!r.layer])).toEqual([['CMD ["/a"]', false], ["COPY b /b", true], ["ENV X=1", false], ["COPY a /a", true]]);
    const table = await kiln(["history", "--cache-dir", cache, "meta:1"]);
    expect(table.stdout.split("\n")[0]).toMatch(/^LAYER\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
    expect(table.stdout.trim().split("\n")).toHaveLength(rows.length + 1);

    const missing = await kiln(["inspect", "--cache-dir", cache, "--pull", "never", "nope:1"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`error: image nope:1 is not in the local store (pull policy "never")\n`);
  });
});
