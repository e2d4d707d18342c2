// Local outputs of a multi-platform build, as buildx writes them: `type=local` gets one
// subdirectory per platform (linux_amd64, linux_arm64) holding that platform's files; `type=tar`
// takes one platform and says so (usage error, nothing written); `-t` records the index by name.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

describe("kiln build --platform a,b with local outputs", () => {
  it("type=local: one directory per platform; type=tar: one platform only", async () => {
    const dir = await temps.make("kiln-mp-local-");
    const ctx = join(dir, "ctx");
    await mkdir(ctx);
    await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nARG TARGETARCH\nCOPY <<EOF /arch.txt\n${TARGETARCH}\nEOF\n");
    const cache = join(dir, "cache");
    const out = join(dir, "out");
    const r = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--platform", "linux/amd64,linux/arm64", "-t", "mp:1", "--output", `type=local,dest=${out}`, ctx]);
    expectBuilt(r);
    expect(await readFile(join(out, "linux_amd64", "arch.txt"), "utf8")).toBe("amd64\n");
    expect(await readFile(join(out, "linux_arm64", "arch.txt"), "utf8")).toBe("arm64\n");
    const images = await kiln(["images", "--format", "json", "--cache-dir", cache]);
    expect(images.code, images.stderr).toBe(0);
    expect(images.stdout).toContain("mp:1");

    const tar = join(dir, "fs.tar");
    const refused = await kiln(["build", "--progress", "quiet", "--cache-dir", cache, "--platform", "linux/amd64,linux/arm64", "--output", `type=tar,dest=${tar}`, ctx]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim()).toBe("error: --output type=tar takes one platform, not 2; use type=local (a directory per platform)");
    expect(existsSync(tar)).toBe(false);
  });
});
