// `--add-host` for `kiln run` and for `kiln build`'s RUN steps, through the compiled CLI on the
// busybox base: the entries are in /etc/hosts (after the defaults, in order, host-gateway as the
// host's loopback under --network host), name resolution finds them, the file stays out of the
// layer, the entries are part of the RUN's cache key, and bad values are one line.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAddHost, resolveExtraHosts } from "../../src/run/hosts.js";
import { useBusyboxBase } from "../helpers/busybox.js";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const base = useBusyboxBase();
let cache: string;

beforeAll(async () => {
  cache = await temps.make("kiln-addhost-cache-");
  expect((await kiln(["tag", "--cache-dir", cache, `oci-layout://${base().layout}:${base().tag}`, "bb:1"])).code).toBe(0);
});
afterAll(() => temps.cleanup());

describe("--add-host parsing (one parser for run and build)", () => {
  it("takes HOST:IP, HOST=IP, IPv6 (bracketed or not) and host-gateway; refuses the rest in one line", () => {
    expect(parseAddHost("db:10.0.0.5")).toEqual({ host: "db", ip: "10.0.0.5" });
    expect(parseAddHost("db.local=10.0.0.5")).toEqual({ host: "db.local", ip: "10.0.0.5" });
    expect(parseAddHost("v6:fe80::1")).toEqual({ host: "v6", ip: "fe80::1" });
    expect(parseAddHost("v6:[::1]")).toEqual({ host: "v6", ip: "::1" });
    expect(resolveExtraHosts([parseAddHost("gw:host-gateway")], "host")).toEqual([{ host: "gw", ip: "127.0.0.1" }]);
    expect(() => resolveExtraHosts([parseAddHost("gw:host-gateway")], "none")).toThrow("--add-host gw:host-gateway: with --network none there is no host to reach");
    expect(() => parseAddHost("nocolon")).toThrow('--add-host "nocolon": expected HOST:IP');
    expect(() => parseAddHost("db:300.1.1.1")).toThrow('--add-host "db:300.1.1.1": "300.1.1.1" is not an IP address (nor host-gateway)');
    expect(() => parseAddHost("bad host:1.2.3.4")).toThrow('"bad host" is not a valid host name');
  });
});

describe("kiln run --add-host", () => {
  it.each(["oci", "chroot", "plain-chroot", "proot"])("appends the entries to /etc/hosts under --isolation %s", async (isolation) => {
    const r = await kiln(["run", "--cache-dir", cache, "--isolation", isolation, "--hostname", "box", "--add-host", "db:10.1.2.3", "--add-host", "gw:host-gateway", "--add-host", "v6=fd00::7", "bb:1", "sh", "-c", "tail -n 4 /etc/hosts; ping -c1 -W1 gw >/dev/null && echo gw-answers"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("127.0.1.1\tbox\n10.1.2.3\tdb\n127.0.0.1\tgw\nfd00::7\tv6\ngw-answers\n");
    expect(r.code).toBe(0);
  });

  it("bad values and host-gateway without a network exit 125 with one line", async () => {
    const bad = await kiln(["run", "--cache-dir", cache, "--add-host", "db", "bb:1", "true"]);
    expect(bad).toEqual({ code: 125, stdout: "", stderr: 'error: kiln run: --add-host "db": expected HOST:IP\n' });
    const none = await kiln(["run", "--cache-dir", cache, "--network", "none", "--add-host", "gw:host-gateway", "bb:1", "true"]);
    expect(none).toEqual({ code: 125, stdout: "", stderr: "error: kiln run: --add-host gw:host-gateway: with --network none there is no host to reach\n" });
  });
});

describe("kiln build --add-host", () => {
  it("RUN steps see the entries; /etc/hosts is not in the layer; the entries are part of the cache key", async () => {
    const ctx = await temps.make("kiln-addhost-ctx-");
    await writeFile(join(ctx, "Dockerfile"), "FROM bb:1\nRUN grep -E '\\s(db|gw)$' /etc/hosts > /seen\n");
    const out = join(ctx, "out");
    const build = (hosts: string[], dest: string) =>
      kiln(["build", "--progress", "plain", "--cache-dir", cache, ...hosts.flatMap((h) => ["--add-host", h]), "-o", `type=local,dest=${dest}`, ctx]);
    const first = await build(["db:10.9.8.7", "gw:host-gateway"], out);
    expectBuilt(first);
    const { readFile, stat } = await import("node:fs/promises");
    expect(await readFile(join(out, "seen"), "utf8")).toMatch(/^10\.9\.8\.7\tdb\n127\.0\.0\.1\tgw\n/);
    // the image's own /etc/hosts (none in the busybox base) is not replaced by the generated one
    await expect(stat(join(out, "etc", "hosts"))).rejects.toThrow();
    // same entries: cached; other entries: the RUN runs again
    const again = await build(["db:10.9.8.7", "gw:host-gateway"], join(ctx, "out2"));
    expectBuilt(again);
    expect(again.stderr).toMatch(/^#2 CACHED/m);
    const other = await build(["db:10.0.0.1"], join(ctx, "out3"));
    expectBuilt(other);
    expect(other.stderr).toMatch(/^#2 DONE/m);
    expect(await readFile(join(ctx, "out3", "seen"), "utf8")).toMatch(/^10\.0\.0\.1\tdb\n/);
  });

  it("a bad --add-host is one line, exit 2 (a usage error) before any work", async () => {
    const ctx = await temps.make("kiln-addhost-bad-");
    await writeFile(join(ctx, "Dockerfile"), "FROM bb:1\nRUN true\n");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--add-host", "x:nope", ctx]);
    expect(r.stderr).toBe('error: --add-host "x:nope": "nope" is not an IP address (nor host-gateway)\n');
    expect(r.code).toBe(2);
  });
});
