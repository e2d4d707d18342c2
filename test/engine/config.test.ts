// EngineConfig: BuildOptions resolved once — defaults, SOURCE_DATE_EPOCH from the option, a build
// arg or the environment, and every enum or number option checked for library callers too (the
// CLI checks its flags itself; a library caller gets the same one-line UsageError).
import { describe, expect, it } from "vitest";
import { forPlatform, resolveConfig } from "../../src/engine/config.js";
import type { BuildOptions } from "../../src/engine/options.js";
import { UsageError } from "../../src/errors.js";

const base: BuildOptions = { context: "/ctx", cacheDir: "/tmp/kiln-config-test" };

describe("resolveConfig", () => {
  it("fills in the defaults", () => {
    const c = resolveConfig({ ...base, platform: "linux/arm/v7" });
    expect(c).toMatchObject({ cacheDir: "/tmp/kiln-config-test", platformText: "linux/arm/v7", network: "host", isolation: "auto", snapshotter: "auto", pull: "missing", compressionLevel: undefined, secrets: {} });
    expect(c.jobs).toBeGreaterThanOrEqual(1);
    expect(c.cache).toEqual({ noCache: false, noCacheFilter: [], cacheFrom: [], cacheTo: [] });
    expect(c.registry).toEqual({});
  });

  it("parses --platform a,b into the target platforms (normalised, duplicates dropped); forPlatform picks one", () => {
    const c = resolveConfig({ ...base, platform: "linux/amd64, linux/arm64/v8,linux/aarch64,linux/arm" });
    expect(c.platforms).toEqual([{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "arm64" }, { os: "linux", architecture: "arm", variant: "v7" }]);
    expect(c.platformText).toBe("linux/amd64");
    const arm = forPlatform(c, c.platforms[2]!);
    expect(arm).toMatchObject({ platformText: "linux/arm/v7", platform: { architecture: "arm", variant: "v7" }, platforms: c.platforms, cacheDir: c.cacheDir });
    for (const [platform, message] of [
      ["linux/amd65", 'unknown architecture in platform "linux/amd65"'],
      ["windows/amd64", 'unsupported platform "windows/amd64": kiln builds linux images only'],
      ["linux/arm64,", "--platform linux/arm64,: empty platform in the list"],
      ["linux/arm/v9", 'unknown variant "v9" in platform "linux/arm/v9"'],
      ["linux//amd64", 'invalid platform "linux//amd64"'],
    ] as const) {
      const err = (() => {
        try {
          resolveConfig({ ...base, platform });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err, platform).toBeInstanceOf(UsageError);
      expect((err as Error).message).toContain(message);
    }
  });

  it("takes SOURCE_DATE_EPOCH from the option, else the build arg, and writes created from it", () => {
    expect(resolveConfig({ ...base, sourceDateEpoch: 1700000000, buildArgs: { SOURCE_DATE_EPOCH: "5" } })).toMatchObject({ sourceDateEpoch: 1700000000, created: "2023-11-14T22:13:20Z" });
    expect(resolveConfig({ ...base, buildArgs: { SOURCE_DATE_EPOCH: "0" } })).toMatchObject({ sourceDateEpoch: 0, created: "1970-01-01T00:00:00Z" });
    expect(() => resolveConfig({ ...base, buildArgs: { SOURCE_DATE_EPOCH: "yesterday" } })).toThrow('SOURCE_DATE_EPOCH must be a number of seconds, not "yesterday"');
  });

  it("passes the signal and the registry settings to every registry operation", () => {
    const signal = new AbortController().signal;
    const c = resolveConfig({ ...base, signal, insecureRegistries: ["localhost:5000"], registryCa: "/ca.pem" });
    expect(c.signal).toBe(signal);
    expect(c.registry).toEqual({ insecureRegistries: ["localhost:5000"], caFile: "/ca.pem", signal });
  });

  it("refuses values the CLI would refuse, naming the option", () => {
    const bad: Array<[Partial<BuildOptions>, string]> = [
      [{ isolation: "vm" as BuildOptions["isolation"] }, 'isolation must be one of auto, oci, chroot, plain-chroot, proot, not "vm"'],
      [{ snapshotter: "zfs" as BuildOptions["snapshotter"] }, 'snapshotter must be one of auto, overlay, dir, not "zfs"'],
      [{ network: "bridge" as BuildOptions["network"] }, 'network must be one of host, none, not "bridge"'],
      [{ pull: "sometimes" as BuildOptions["pull"] }, 'pull must be one of always, missing, never, not "sometimes"'],
      [{ format: "oci-v2" as BuildOptions["format"] }, 'format must be one of oci, docker, not "oci-v2"'],
      [{ compressionLevel: 10 }, "compressionLevel must be a whole number from 0 to 9, not 10"],
      [{ jobs: 1.5 }, "jobs must be a whole number from 0 to"],
    ];
    for (const [options, message] of bad) {
      let err: unknown;
      try {
        resolveConfig({ ...base, ...options });
      } catch (e) {
        err = e;
      }
      expect(err, message).toBeInstanceOf(UsageError);
      expect((err as Error).message).toContain(message);
    }
  });
});
