// ensureEmulation's decisions before any work: native platforms need nothing, a foreign one needs
// qemu-user-static's binfmt definition and an enabled handler with the F flag; each way it cannot
// be had is one KilnError line with the fix. A directory stands in for binfmt_misc here (the real
// registration is in test/engine/e2e-emulation.test.ts); the definition is qemu-user-static's own.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { KilnError } from "../../src/errors.js";
import { ensureEmulation, handlerName, runsNatively, withFixBinary } from "../../src/run/emulation.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function temp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "kiln-emulation-"));
  dirs.push(d);
  return d;
}
const arm64 = { os: "linux", architecture: "arm64" };
const amd64 = { os: "linux", architecture: "amd64" };

async function failure(p: Promise<unknown>): Promise<KilnError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(KilnError);
  expect((err as KilnError).code).toBe("EMULATION_UNAVAILABLE");
  expect((err as Error).message.split("\n")).toHaveLength(1);
  return err as KilnError;
}

describe("emulation", () => {
  it("knows what runs natively and which qemu handler a platform needs", () => {
    expect(runsNatively(amd64, amd64)).toBe(true);
    expect(runsNatively({ os: "linux", architecture: "386" }, amd64)).toBe(true);
    expect(runsNatively(arm64, amd64)).toBe(false);
    expect(handlerName(arm64)).toBe("qemu-aarch64");
    expect(handlerName({ os: "linux", architecture: "arm", variant: "v7" })).toBe("qemu-arm");
    expect(handlerName({ os: "linux", architecture: "mips64le" })).toBe("qemu-mips64el");
    expect(withFixBinary(":qemu-aarch64:M::\\x7f:\\xff:/usr/bin/q:OP")).toBe(":qemu-aarch64:M::\\x7f:\\xff:/usr/bin/q:OPF");
    expect(withFixBinary(":qemu-aarch64:M::\\x7f:\\xff:/usr/bin/q:POF")).toBe(":qemu-aarch64:M::\\x7f:\\xff:/usr/bin/q:POF");
  });

  it("needs nothing for the host's own platform", async () => {
    expect(await ensureEmulation(amd64, { binfmtDir: "/nonexistent", definitionDirs: [] })).toBeUndefined();
  });

  it("refuses with the fix when qemu-user-static is missing, the handler is unregistered (not root), disabled or lacks F", async () => {
    const none = await temp();
    expect((await failure(ensureEmulation(arm64, { binfmtDir: none, definitionDirs: [none] }))).message).toBe(
      "RUN for linux/arm64 on a linux/amd64 machine needs emulation: no qemu-aarch64 binfmt definition; install it with: apt-get install qemu-user-static",
    );
    const defs = await temp();
    await copyFile("/usr/lib/binfmt.d/qemu-aarch64.conf", join(defs, "qemu-aarch64.conf"));
    const binfmt = await temp();
    await writeFile(join(binfmt, "register"), "");
    const notRoot = await failure(ensureEmulation(arm64, { binfmtDir: binfmt, definitionDirs: [defs], canRegister: false }));
    expect(notRoot.message).toMatch(new RegExp(`the binfmt_misc handler qemu-aarch64 is not registered; as root run: echo ':qemu-aarch64:M::.*:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:\\w*F\\w*' > ${binfmt}/register$`));
    await writeFile(join(binfmt, "qemu-aarch64"), "disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\n");
    expect((await failure(ensureEmulation(arm64, { binfmtDir: binfmt, definitionDirs: [defs] }))).message).toContain(`handler qemu-aarch64 is disabled; enable it with: echo 1 > ${binfmt}/qemu-aarch64`);
    await writeFile(join(binfmt, "qemu-aarch64"), "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PO\n");
    expect((await failure(ensureEmulation(arm64, { binfmtDir: binfmt, definitionDirs: [defs] }))).message).toContain(`lacks the F (fix-binary) flag, so it cannot work inside a container; re-register it: echo -1 > ${binfmt}/qemu-aarch64 && echo '`);
    await writeFile(join(binfmt, "qemu-aarch64"), "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\n");
    expect(await ensureEmulation(arm64, { binfmtDir: binfmt, definitionDirs: [defs] })).toBe("qemu-aarch64");
  });

  it("writes the definition with F to binfmt_misc's register file when it may", async () => {
    const defs = await temp();
    await copyFile("/usr/lib/binfmt.d/qemu-aarch64.conf", join(defs, "qemu-aarch64.conf"));
    const binfmt = await temp();
    await mkdir(binfmt, { recursive: true });
    await writeFile(join(binfmt, "register"), "");
    expect(await ensureEmulation(arm64, { binfmtDir: binfmt, definitionDirs: [defs], canRegister: true })).toBe("qemu-aarch64");
    expect(await readFile(join(binfmt, "register"), "utf8")).toMatch(/^:qemu-aarch64:M::.*:\/usr\/libexec\/qemu-binfmt\/aarch64-binfmt-P:\w*F\w*$/);
  });
});
