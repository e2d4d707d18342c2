// Which registries.conf files a pull reads when neither --registries-conf nor
// $CONTAINERS_REGISTRIES_CONF names one: containers-registries.conf(5)'s and .conf.d(5)'s files in
// their order, at injected paths (never the machine's /etc/containers or $HOME).
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadMirrors, readRegistriesConfs, registriesConfFiles, type RegistriesConfPaths } from "../../src/registry/mirrors.js";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { useRegistry } from "../helpers/registry.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
const registry = useRegistry();
afterAll(() => temps.cleanup());

const mirrorConf = (registry: string, ...mirrors: string[]): string =>
  `[[registry]]\nlocation = "${registry}"\n${mirrors.map((m) => `[[registry.mirror]]\nlocation = "${m}"\n`).join("")}`;

/** A fake root: etc/containers/registries.conf(.d) and home/.config/containers/registries.conf(.d). */
async function layout(files: Record<string, string>): Promise<RegistriesConfPaths> {
  const root = await temps.make("kiln-regconf-");
  for (const [rel, body] of Object.entries(files)) {
    await mkdir(join(root, rel, ".."), { recursive: true });
    await writeFile(join(root, rel), body);
  }
  return { system: join(root, "etc/containers/registries.conf"), systemDir: join(root, "etc/containers/registries.conf.d"), home: join(root, "home") };
}

describe("default registries.conf files", () => {
  it("the system file, then its drop-ins in alpha-numerical order (.conf only, no sub-directories), then the user's drop-ins", async () => {
    const paths = await layout({
      "etc/containers/registries.conf": mirrorConf("docker.io", "sys.example"),
      "etc/containers/registries.conf.d/20-quay.conf": mirrorConf("quay.io", "quay-mirror.example"),
      "etc/containers/registries.conf.d/10-hub.conf": mirrorConf("docker.io", "dropin.example"),
      "etc/containers/registries.conf.d/30-notes.txt": "not toml at all",
      "etc/containers/registries.conf.d/sub.conf/x.conf": mirrorConf("ghcr.io", "never.example"),
      "home/.config/containers/registries.conf.d/50-user.conf": mirrorConf("ghcr.io", "user-ghcr.example"),
    });
    const root = join(paths.system, "../../..");
    await symlink(join(root, "etc/containers/registries.conf.d/20-quay.conf"), join(root, "etc/containers/registries.conf.d/25-link.conf"));
    const files = registriesConfFiles({}, {}, paths);
    expect(files.map((f) => f.slice(root.length))).toEqual([
      "/etc/containers/registries.conf",
      "/etc/containers/registries.conf.d/10-hub.conf",
      "/etc/containers/registries.conf.d/20-quay.conf",
      "/etc/containers/registries.conf.d/25-link.conf",
      "/home/.config/containers/registries.conf.d/50-user.conf",
    ]);
    // a later file's [[registry]] for the same registry replaces the earlier one's, new ones are added
    expect(loadMirrors({}, {}, paths)).toEqual({
      "docker.io": [{ location: "dropin.example" }],
      "quay.io": [{ location: "quay-mirror.example" }],
      "ghcr.io": [{ location: "user-ghcr.example" }],
    });
  });

  it("a drop-in naming a registry without mirrors clears the mirrors an earlier file gave it", async () => {
    const paths = await layout({
      "etc/containers/registries.conf": mirrorConf("docker.io", "sys.example") + mirrorConf("quay.io", "q.example"),
      "etc/containers/registries.conf.d/99-off.conf": mirrorConf("docker.io"),
    });
    expect(loadMirrors({}, {}, paths)).toEqual({ "quay.io": [{ location: "q.example" }] });
  });

  it("the user's registries.conf, when it exists, replaces the system file and the system drop-ins", async () => {
    const paths = await layout({
      "etc/containers/registries.conf": mirrorConf("docker.io", "sys.example"),
      "etc/containers/registries.conf.d/10-hub.conf": mirrorConf("quay.io", "sys-quay.example"),
      "home/.config/containers/registries.conf": mirrorConf("docker.io", "user.example"),
      "home/.config/containers/registries.conf.d/10-more.conf": mirrorConf("ghcr.io", "user-ghcr.example"),
    });
    expect(loadMirrors({}, {}, paths)).toEqual({ "docker.io": [{ location: "user.example" }], "ghcr.io": [{ location: "user-ghcr.example" }] });
  });

  it("--registries-conf, then $CONTAINERS_REGISTRIES_CONF, take precedence and are read alone", async () => {
    const paths = await layout({
      "etc/containers/registries.conf": mirrorConf("docker.io", "sys.example"),
      "etc/containers/registries.conf.d/10-quay.conf": mirrorConf("quay.io", "sys-quay.example"),
      "home/.config/containers/registries.conf": mirrorConf("docker.io", "user.example"),
      "flag.conf": mirrorConf("docker.io", "flag.example"),
      "env.conf": mirrorConf("docker.io", "env.example"),
    });
    const root = join(paths.system, "../../..");
    const env = { CONTAINERS_REGISTRIES_CONF: join(root, "env.conf") };
    expect(loadMirrors({ registriesConf: join(root, "flag.conf") }, env, paths)).toEqual({ "docker.io": [{ location: "flag.example" }] });
    expect(loadMirrors({}, env, paths)).toEqual({ "docker.io": [{ location: "env.example" }] });
    expect(loadMirrors({}, { CONTAINERS_REGISTRIES_CONF: "" }, paths)).toEqual({ "docker.io": [{ location: "user.example" }] });
    // an explicit file that is missing is an error naming it; missing default files are not looked for further
    expect(() => loadMirrors({ registriesConf: join(root, "nope.conf") }, {}, paths)).toThrow(/^cannot read registries config .*nope\.conf: ENOENT$/);
  });

  it("no files: no mirrors; --registry-mirror values follow the files' docker.io mirrors", async () => {
    const none = await layout({});
    expect(registriesConfFiles({}, {}, none)).toEqual([]);
    expect(loadMirrors({}, {}, none)).toBeUndefined();
    expect(loadMirrors({}, {}, { ...none, home: undefined })).toBeUndefined();
    const paths = await layout({ "etc/containers/registries.conf": mirrorConf("docker.io", "sys.example") });
    expect(loadMirrors({ registryMirrors: ["kaniko.example"] }, {}, paths)).toEqual({ "docker.io": [{ location: "sys.example" }, { location: "kaniko.example" }] });
  });

  it("reads a distribution's stock files (v2 search registries, short-name aliases) as naming no mirror; a malformed one names its file and line", async () => {
    const paths = await layout({
      "etc/containers/registries.conf": 'unqualified-search-registries = ["docker.io", "quay.io"]\nshort-name-mode = "enforcing"\n',
      "etc/containers/registries.conf.d/shortnames.conf": '[aliases]\n  # docker\n  "alpine" = "docker.io/library/alpine"\n  "fedora" = "registry.fedoraproject.org/fedora"\n',
    });
    expect(loadMirrors({}, {}, paths)).toBeUndefined();
    const bad = await layout({ "etc/containers/registries.conf.d/bad.conf": "[[registry]]\nlocation = nope\n" });
    expect(() => readRegistriesConfs(registriesConfFiles({}, {}, bad))).toThrow(/bad\.conf:2: unsupported value nope/);
  });

  it("kiln pull reads the user's registries.conf by default: its mirror is tried first, then the origin", async () => {
    const host = registry().host;
    const ctx = await temps.make("kiln-regconf-ctx-");
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY f /f\n");
    await writeFile(join(ctx, "f"), "conf\n");
    const ref = `${host}/regconf/app:1`;
    const pushed = expectBuilt(await kiln(["build", "--progress", "quiet", "--cache-dir", await temps.make("kiln-regconf-c1-"), "--provenance=false", "--push", "-t", ref, ctx]));
    const home = await temps.make("kiln-regconf-home-");
    await mkdir(join(home, ".config/containers"), { recursive: true });
    // a mirror nothing listens on: the pull warns about it and falls back to the origin
    await writeFile(join(home, ".config/containers/registries.conf"), `${mirrorConf(host, "127.0.0.1:1")}insecure = true\n`);
    const env = { HOME: home, CONTAINERS_REGISTRIES_CONF: undefined };
    const pull = await kiln(["pull", "-q", "--cache-dir", await temps.make("kiln-regconf-c2-"), "--insecure-registry", host, ref], { env });
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stdout.trim()).toBe(pushed);
    expect(pull.stderr).toMatch(new RegExp(`^WARNING: mirror 127\\.0\\.0\\.1:1 failed for regconf/app \\(.+\\); using the origin ${host.replaceAll(".", "\\.")}$`, "m"));
    // --registries-conf still wins: a file without mirrors means no warning
    await writeFile(join(home, "none.conf"), "");
    const flagged = await kiln(["pull", "-q", "--cache-dir", await temps.make("kiln-regconf-c3-"), "--insecure-registry", host, "--registries-conf", join(home, "none.conf"), ref], { env });
    expect(flagged.code, flagged.stderr).toBe(0);
    expect(flagged.stderr).toBe("");
  });
});
