// zstd layers on every supported Node.js: the `zstd` command as a streaming decoder where zlib
// has none (forced here whatever the runtime), clear errors for bad data and a missing command,
// and a build that extracts a zstd base layer with each snapshotter (zlib's decoder on Node 22.15+,
// the command on Node 20).
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createHash } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { zstdCommand } from "../../src/layer/zstd.js";
import { makeTar } from "../snapshot/helpers.js";
import { writeHandLayout } from "../helpers/hand-layout.js";
import { expectBuilt, kiln } from "../helpers/kiln.js";
import { TempDirs } from "../helpers/temp.js";
import { umociUnpack } from "../helpers/tools.js";

const temps = new TempDirs();
afterAll(() => temps.cleanup());

function sha(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

async function decodeWithCommand(input: Buffer, command?: string): Promise<{ hash: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  await pipeline(Readable.from([input]), zstdCommand("layer sha256:test", command), new Writable({
    write(chunk: Buffer, _e, cb) {
      h.update(chunk);
      size += chunk.length;
      cb();
    },
  }));
  return { hash: h.digest("hex"), size };
}

describe("zstd decoding through the zstd command", () => {
  it("streams a 24 MiB layer back byte for byte", async () => {
    const plain = Buffer.concat([randomBytes(8 << 20), Buffer.alloc(16 << 20, 7)]);
    const packed = execFileSync("zstd", ["-q", "-c", "-3"], { input: plain, maxBuffer: 1 << 30 });
    expect(packed.length).toBeLessThan(plain.length / 2);
    expect(await decodeWithCommand(packed)).toEqual({ hash: sha(plain), size: plain.length });
  });

  it("refuses data that is not zstd, naming the blob", async () => {
    await expect(decodeWithCommand(Buffer.from("this is not a zstd frame at all"))).rejects.toThrow(/^layer sha256:test: zstd data is invalid: /);
  });

  it("says what to install when the command is missing", async () => {
    await expect(decodeWithCommand(Buffer.from("x"), "kiln-no-such-zstd")).rejects.toThrow(
      /^layer sha256:test: zstd layers need Node\.js >= 22\.15 or the zstd command \(apt-get install zstd\)/,
    );
  });
});

describe("kiln build with a zstd base layer", () => {
  for (const snapshotter of ["overlay", "dir"]) {
    it(`${snapshotter}: extracts it (COPY --from the image) and keeps it as zstd in FROM`, async () => {
      const dir = await temps.make("kiln-zstd-");
      const base = await writeHandLayout(join(dir, "base"), [makeTar([{ name: "etc/app.conf", content: "from a zstd layer\n" }])], [], { compression: "zstd" });
      const ctx = join(dir, "ctx");
      await mkdir(ctx);
      const cache = join(dir, "cache");
      await writeFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY --from=base /etc/app.conf /seen.conf\n");
      const copied = await kiln(["build", "--progress", "quiet", "--snapshotter", snapshotter, "--cache-dir", cache, "--build-context", `base=oci-layout://${join(dir, "base")}:v1`, "-o", `type=oci,dest=${join(dir, "out")}`, "-t", "x:latest", ctx]);
      expectBuilt(copied);
      const rootfs = await umociUnpack(temps, join(dir, "out"), "latest");
      expect(await readFile(join(rootfs, "seen.conf"), "utf8")).toBe("from a zstd layer\n");

      await writeFile(join(ctx, "Dockerfile"), "FROM base\nLABEL x=y\n");
      expectBuilt(await kiln(["build", "--progress", "quiet", "--snapshotter", snapshotter, "--cache-dir", cache, "--build-context", `base=oci-layout://${join(dir, "base")}:v1`, "-o", `type=oci,dest=${join(dir, "out2")}`, "-t", "y:latest", ctx]));
      const verified = await kiln(["verify", join(dir, "out2")]);
      expect(verified.code, verified.stderr).toBe(0);
      const index = JSON.parse(await readFile(join(dir, "out2", "index.json"), "utf8")) as { manifests: { digest: string }[] };
      const manifest = JSON.parse(await readFile(join(dir, "out2", "blobs", "sha256", index.manifests[0]!.digest.slice(7)), "utf8")) as { layers: { mediaType: string; digest: string }[] };
      expect(manifest.layers).toEqual([expect.objectContaining({ mediaType: "application/vnd.oci.image.layer.v1.tar+zstd", digest: base.layers[0] })]);
    });
  }
});
