// The preflight report kept in the cache dir: a fresh record under this process's key is used as
// it is (no probing), a stale one or one under another key is not, and probing writes a record.
import { afterAll, describe, expect, it } from "vitest";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MAX_AGE_MS, cachedHostFact, cachedPreflight, preflightKey } from "../../src/run/preflight-cache.js";
import type { PreflightReport } from "../../src/run/preflight.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

const fake = (): PreflightReport => ({
  uid: 4242,
  capEff: [],
  capBnd: [],
  noNewPrivs: true,
  probes: Object.fromEntries(["unshare", "mount", "oci", "mknod", "chroot", "plainChroot", "proot"].map((k) => [k, { ok: false, reason: "fake" }])) as PreflightReport["probes"],
  modes: { oci: { ok: false, reason: "fake" }, chroot: { ok: false, reason: "fake" }, "plain-chroot": { ok: false, reason: "fake" }, proot: { ok: true, reason: "" } },
});

describe("cachedPreflight", () => {
  it("probes and records, then serves a fresh record under the same key only", async () => {
    const cache = await temps.make("kiln-preflight-cache-");
    const now = Date.now();
    const probed = await cachedPreflight(cache, now);
    expect(probed.uid).toBe(process.getuid?.());
    const file = join(cache, "preflight", `${preflightKey()}.json`);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ at: now, report: probed });

    await writeFile(file, JSON.stringify({ at: now, report: fake() }));
    expect(await cachedPreflight(cache, now + 1000)).toEqual(fake());
    // too old: probed again (and recorded again)
    expect((await cachedPreflight(cache, now + MAX_AGE_MS + 1)).uid).toBe(process.getuid?.());
    expect(JSON.parse(await readFile(file, "utf8")).at).toBe(now + MAX_AGE_MS + 1);
    // a record under another key (other capabilities, tools, boot) is never read
    await mkdir(join(cache, "preflight"), { recursive: true });
    await writeFile(file, "not json");
    await writeFile(join(cache, "preflight", `${"0".repeat(64)}.json`), JSON.stringify({ at: now, report: fake() }));
    expect((await cachedPreflight(cache, now)).uid).toBe(process.getuid?.());
    expect((await readdir(join(cache, "preflight"))).sort()).toEqual([`${"0".repeat(64)}.json`, `${preflightKey()}.json`].sort());
  });

  it("keeps any other host fact the same way, under its own name", async () => {
    const cache = await temps.make("kiln-host-fact-");
    let calls = 0;
    const compute = async (): Promise<string | null> => (calls++, calls === 1 ? null : "changed");
    const valid = (v: unknown): v is string | null => v === null || typeof v === "string";
    const now = Date.now();
    expect(await cachedHostFact(cache, "overlay:/x", compute, valid, now)).toBeNull();
    expect(await cachedHostFact(cache, "overlay:/x", compute, valid, now + 1)).toBeNull();
    expect(calls).toBe(1);
    expect(await cachedHostFact(cache, "overlay:/y", compute, valid, now)).toBe("changed");
    expect(await cachedHostFact(cache, "overlay:/x", compute, valid, now + MAX_AGE_MS)).toBe("changed");
    expect(calls).toBe(3);
  });
});
