// kiln's command line: dispatches `kiln build|push|pull|lint|verify|du|prune|doctor|login|logout|help` and
// the local store's images|tag|rmi|inspect|history (image-commands.ts), attestations (attestations-command.ts), run (run-command.ts) and
// manifest create|inspect (manifest-command.ts),
// turns flags into library calls and renders progress; failures print as one line with the exit
// code and hints of src/cli/exit.ts (0 success, 1 build or input error, 2 usage error; a build
// interrupted by SIGINT/SIGTERM prints "interrupted" and exits 130/143; kiln run: 125).
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../store/atomic-file.js";
import { buffer } from "node:stream/consumers";
import { AbortError, KilnError, UsageError } from "../errors.js";
import { VERSION } from "../version.js";
import { describeError, exitCodeFor } from "./exit.js";
import { formatOptionHelp, intOption, keyValues, many, one, parseArgs, parseCsv, type OptionSpec, type ParsedArgs } from "./args.js";
import { buildRequest, type BuildRequest } from "./build-args.js";
import { BUILD_FLAG_HINTS, compatBuildOptions } from "./compat-flags.js";
import { createProgress, createTransferProgress } from "./progress.js";
import { formatBytes } from "../units.js";
import { imageCommands, pushStored } from "./image-commands.js";
import { attestationsCommand } from "./attestations-command.js";
import { runCommand } from "./run-command.js";
import { manifestCommand } from "./manifest-command.js";
import { cacheDirOption, credentialOptions, registryFrom, registryOptions, type Command } from "./command.js";
import { parseOutput } from "../engine/options.js";

const buildOptions: OptionSpec[] = [
  { name: "file", short: "f", type: "string", valueName: "PATH", help: "Dockerfile (default CONTEXT/Dockerfile; - reads stdin)" },
  { name: "tag", short: "t", type: "string", repeatable: true, valueName: "NAME", help: "name the image in the local store (repeatable; also its tag in layouts)" },
  { name: "load", type: "boolean", help: "only store the image by its -t names (no default ./kiln-out layout)" },
  { name: "build-arg", type: "string", repeatable: true, valueName: "K=V", help: "set a build argument (K alone takes it from the environment)" },
  { name: "target", type: "string", valueName: "STAGE", help: "build this stage (and what it needs)" },
  { name: "platform", type: "string", valueName: "OS/ARCH", help: "target platforms, e.g. linux/amd64 or linux/amd64,linux/arm64 (several: an image index)" },
  { name: "label", type: "string", repeatable: true, valueName: "K=V", help: "add a label to the image config" },
  { name: "annotation", type: "string", repeatable: true, valueName: "K=V", help: "add an annotation to the manifest" },
  { name: "build-context", type: "string", repeatable: true, valueName: "NAME=VALUE", help: "named context: DIR, oci-layout:///path[:tag|@digest], docker-image://REF, a git URL (https://host/repo.git#ref:subdir, git@host:repo.git#ref)" },
  { name: "output", short: "o", type: "string", repeatable: true, valueName: "SPEC", help: "type=oci,dest=DIR[,tar=true] | type=docker,dest=FILE | type=image,name=REF,push=true | type=local,dest=DIR | type=tar,dest=FILE" },
  { name: "push", type: "boolean", help: "push the image to the -t references (same as --output type=image,push=true)" },
  { name: "format", type: "string", valueName: "oci|docker", help: "media types of the image (default oci)" },
  { name: "iidfile", type: "string", valueName: "FILE", help: "write the image (manifest) digest to FILE" },
  { name: "metadata-file", type: "string", valueName: "FILE", help: "write build metadata JSON (as buildx) to FILE" },
  { name: "progress", type: "string", valueName: "MODE", help: "auto, tty, plain, rawjson or quiet (default auto: the live view on a terminal, else plain)" },
  cacheDirOption("blob store and work directory"),
  { name: "isolation", type: "string", valueName: "MODE", help: "RUN isolation: auto, oci, chroot, plain-chroot or proot (default auto: the strongest the preflight finds working)" },
  { name: "snapshotter", type: "string", valueName: "MODE", help: "RUN root filesystems: auto, overlay or dir (default auto: overlay when root and overlayfs work)" },
  { name: "network", type: "string", valueName: "MODE", help: "RUN network: host or none (default host)" },
  { name: "add-host", type: "string", repeatable: true, valueName: "HOST:IP", help: "add a line to RUN steps' /etc/hosts (IP may be host-gateway)" },
  { name: "jobs", type: "string", valueName: "N", help: "stages built at once (default: number of cores)" },
  { name: "compression-level", type: "string", valueName: "0-9", help: "gzip level for new layers (default 6)" },
  { name: "pull", type: "string", valueName: "POLICY", bare: { value: "always", accepts: ["always", "missing", "never", "true", "false"] }, help: "base images: always, missing or never (default missing; --pull alone: always, as buildx)" },
  { name: "secret", type: "string", repeatable: true, valueName: "id=ID,src=FILE", help: "a secret for RUN --mount=type=secret (src=FILE or env=VAR); GIT_AUTH_TOKEN / GIT_AUTH_HEADER authenticate HTTPS git sources" },
  { name: "ssh", type: "string", repeatable: true, valueName: "default|ID=PATH[,PATH]", help: "an ssh agent for RUN --mount=type=ssh and SSH git sources: default ($SSH_AUTH_SOCK), an agent socket, or key files (kiln runs an ssh-agent for the build)" },
  { name: "no-cache", type: "boolean", help: "run every step (results are still cached)" },
  { name: "no-cache-filter", type: "string", repeatable: true, valueName: "STAGE", help: "never reuse the cache for this stage" },
  { name: "cache-from", type: "string", repeatable: true, valueName: "SPEC", help: "type=registry,ref=REF | type=local,src=DIR" },
  { name: "cache-to", type: "string", repeatable: true, valueName: "SPEC", help: "type=registry,ref=REF[,mode=min|max] | type=local,dest=DIR[,mode=...]" },
  { name: "provenance", type: "string", valueName: "VALUE", help: "SLSA provenance attestation: true, false or mode=min|max (default: min when pushing, else none; BUILDX_NO_DEFAULT_ATTESTATIONS=1 turns the default off)" },
  { name: "sbom", type: "string", valueName: "BOOL", help: "SPDX SBOM attestation of the final image: true or false (default none)" },
  { name: "attest", type: "string", repeatable: true, valueName: "SPEC", help: "type=provenance[,mode=min|max] | type=sbom (repeatable)" },
  { name: "attest-referrers", type: "boolean", help: "also push each attestation as an OCI 1.1 artifact whose subject is its image (referrers API, or the sha256-<hex> tag)" },
  ...registryOptions,
  ...compatBuildOptions,
];

const commands: Record<string, Command> = {
  build: {
    summary: "Build an image from a Dockerfile",
    usage: "kiln build [OPTIONS] CONTEXT   (CONTEXT: a directory, - for a tar on stdin, or a git URL: https://host/repo.git#ref:subdir, git@host:repo.git#ref)",
    options: buildOptions,
    hints: BUILD_FLAG_HINTS,
    async run(args) {
      const { options, progress } = buildRequest(args);
      const { build } = await import("../engine/build.js");
      const listener = createProgress(progress);
      // SIGINT/SIGTERM abort the build (it cleans up, then rejects with an AbortError): exit
      // 128+signal with one line, as a shell reports an interrupted command. A second signal
      // kills kiln at once; the step's processes die with it.
      const controller = new AbortController();
      let interruptedBy: "SIGINT" | "SIGTERM" | undefined;
      const onSignal = (sig: "SIGINT" | "SIGTERM"): void => {
        interruptedBy = sig;
        controller.abort(new AbortError(new Error(`interrupted (${sig})`)));
      };
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        const result = await build({
          ...options,
          onEvent: listener,
          signal: controller.signal,
        });
        const tags = options.tags ?? [];
        const where = [...result.outputs.map((o) => (o.type === "image" ? o.names.join(",") || tags.join(",") : o.dest)), ...(tags.length > 0 ? ["local store"] : [])].join(", ");
        listener.close("done");
        if (progress !== "quiet" && progress !== "rawjson") process.stderr.write(`built ${result.digest} -> ${where}\n`);
        process.stdout.write(`${result.digest}\n`);
        return 0;
      } catch (err) {
        listener.close(interruptedBy ? "interrupted" : "failed");
        if (interruptedBy && err instanceof AbortError) {
          process.stderr.write(`error: interrupted (${interruptedBy})\n`);
          return interruptedBy === "SIGINT" ? 130 : 143;
        }
        throw err;
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    },
  },
  push: {
    summary: "Push a stored image or an OCI image layout to a registry",
    usage: "kiln push [OPTIONS] NAME [REF...] | LAYOUT[:TAG|@DIGEST] REF [REF...]   (LAYOUT: a directory or oci-layout://DIR)",
    options: [
      { name: "chunk-size", type: "string", valueName: "BYTES", help: "upload blobs in PATCH chunks of this size" },
      { name: "digest-file", type: "string", valueName: "FILE", help: "write the pushed digest to FILE" },
      { name: "metadata-file", type: "string", valueName: "FILE", help: "write push metadata JSON to FILE" },
      { name: "quiet", short: "q", type: "boolean", help: "no progress output" },
      cacheDirOption("local image store (and pull records for cross-repo mounts)"),
      ...registryOptions,
      ...credentialOptions,
    ],
    async run(args) {
      if (args.positionals.length < 1) throw new UsageError("USAGE", "kiln push: expected NAME or LAYOUT[:TAG] (see: kiln help push)");
      const [src, ...refs] = args.positionals as [string, ...string[]];
      const chunk = intOption(args, "chunk-size", 1, Number.MAX_SAFE_INTEGER);
      const quiet = args.flags.has("quiet");
      const { BlobStore, defaultCacheDir } = await import("../store/blob-store.js");
      const pushOptions = {
        ...registryFrom(args, refs.length > 0 ? refs : [src]),
        ...(chunk !== undefined ? { chunkSize: chunk } : {}),
        ...(quiet ? {} : { onProgress: createTransferProgress() }),
      };
      const { isLayoutArgument, splitLayoutArgument } = await import("../images/resolve.js");
      // a layout (oci-layout://DIR, or a directory holding one), else a stored name
      const asLayout = splitLayoutArgument(src);
      const layoutDir = isLayoutArgument(src) || (await isLayoutDir(asLayout.dir)) ? asLayout : undefined;
      let digest: string;
      let to = refs;
      if (layoutDir) {
        if (refs.length === 0) throw new UsageError("USAGE", "kiln push: pushing a layout needs at least one REF");
        const { pushLayout } = await import("../registry/push.js");
        digest = (await pushLayout(layoutDir.dir, layoutDir.selector, refs, { store: new BlobStore(one(args, "cache-dir") ?? defaultCacheDir()), ...pushOptions })).digest;
      } else {
        ({ digest, refs: to } = await pushStored(args, src, refs, pushOptions));
      }
      await writeDigestFiles(args, digest, to);
      process.stdout.write(`${digest}\n`);
      return 0;
    },
  },
  pull: {
    summary: "Pull an image from a registry into the local store (or an OCI layout)",
    usage: "kiln pull [OPTIONS] REF [--output type=oci,dest=DIR]",
    options: [
      { name: "output", short: "o", type: "string", valueName: "SPEC", help: "type=oci,dest=DIR[,tar=true] (default: store only)" },
      { name: "platform", type: "string", valueName: "OS/ARCH", help: "platform to pick from an index (default: host)" },
      { name: "quiet", short: "q", type: "boolean", help: "no progress output" },
      cacheDirOption(),
      ...registryOptions,
      ...credentialOptions,
    ],
    async run(args) {
      if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln pull: expected one REF");
      const ref = args.positionals[0]!;
      const { pullImage } = await import("../registry/pull.js");
      const { BlobStore, defaultCacheDir } = await import("../store/blob-store.js");
      const { hostPlatform, parsePlatform } = await import("../image/platform.js");
      const store = new BlobStore(one(args, "cache-dir") ?? defaultCacheDir());
      const platform = one(args, "platform") ? parsePlatform(one(args, "platform")!) : hostPlatform();
      const outputs = many(args, "output").map((o) => {
        const spec = parseOutput(parseCsv(o, "output"), o);
        if (spec.type !== "oci") throw new UsageError("USAGE", "kiln pull: only --output type=oci is supported");
        return spec;
      });
      const r = await pullImage(ref, { store, platform, pull: "always", ...registryFrom(args, [ref]), ...(args.flags.has("quiet") ? {} : { onProgress: createTransferProgress() }) });
      if (outputs.length === 0 && !r.reference.digest) {
        // no --output: the image is kept in the local store under its name (kiln images, kiln run)
        const { setName } = await import("../store/names.js");
        const { familiarName } = await import("../image/reference.js");
        const { resolve } = await import("node:path");
        await setName(resolve(store.root), familiarName(r.reference), r.manifestDescriptor);
      }
      for (const spec of outputs) {
        const { writeOciLayout } = await import("../output/oci-layout.js");
        await writeOciLayout(r.source, { dest: spec.dest, tar: spec.tar, tags: [ref] });
      }
      process.stdout.write(`${r.manifestDescriptor.digest}\n`);
      return 0;
    },
  },
  lint: {
    summary: "Check a Dockerfile without building (parse, type, plan)",
    usage: "kiln lint [-f] DOCKERFILE",
    options: [
      { name: "file", short: "f", type: "string", valueName: "PATH", help: "the Dockerfile (or give it as the argument; - reads stdin)" },
      { name: "build-arg", type: "string", repeatable: true, valueName: "K=V", help: "build arguments to check against" },
      { name: "target", type: "string", valueName: "STAGE", help: "target stage" },
    ],
    async run(args) {
      const path = one(args, "file") ?? args.positionals[0] ?? "Dockerfile";
      const text = path === "-" ? (await buffer(process.stdin)).toString("utf8") : await readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => {
        throw new KilnError("DOCKERFILE_READ", `cannot read ${path}: ${e.code ?? e.message}`);
      });
      const { lintDockerfile } = await import("../frontend/lint.js");
      const diags = lintDockerfile(text, {
        file: path === "-" ? "Dockerfile" : path,
        buildArgs: keyValues(many(args, "build-arg"), "build-arg", (k) => process.env[k]),
        ...(one(args, "target") ? { target: one(args, "target")! } : {}),
      });
      for (const d of diags) {
        process.stdout.write(`${d.file}${d.line > 0 ? `:${d.line}` : ""}: ${d.severity}: ${d.message} [${d.rule}]\n`);
      }
      const errors = diags.filter((d) => d.severity === "error").length;
      process.stderr.write(`${errors} error(s), ${diags.length - errors} warning(s)\n`);
      return errors > 0 ? 1 : 0;
    },
  },
  verify: {
    summary: "Check an OCI image layout: blobs, digests, diff_ids, history, attestation subjects",
    usage: "kiln verify LAYOUT",
    options: [],
    async run(args) {
      if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln verify: expected one LAYOUT directory");
      const { verifyLayout } = await import("../output/verify.js");
      const r = await verifyLayout(args.positionals[0]!);
      process.stdout.write(`ok: ${r.manifests} manifest(s), ${r.blobs} blob(s) verified\n`);
      return 0;
    },
  },
  du: {
    summary: "Show the blob store's disk usage and cache records",
    usage: "kiln du [--cache-dir DIR]",
    options: [cacheDirOption()],
    async run(args) {
      const { diskUsage } = await import("../cache/prune.js");
      const { BlobStore, defaultCacheDir } = await import("../store/blob-store.js");
      const u = await diskUsage(new BlobStore(one(args, "cache-dir") ?? defaultCacheDir()));
      process.stdout.write(
        `blobs: ${u.blobs} (${formatBytes(u.bytes)})\ncache records: ${u.cacheRecords}\nreclaimable: ${formatBytes(u.reclaimable)}\n` +
          `extracted layers: ${u.extractedLayers} (${formatBytes(u.extractedBytes)})\n`,
      );
      return 0;
    },
  },
  prune: {
    summary: "Remove cache records and the blobs only they use",
    usage: "kiln prune [--keep-storage SIZE] [--filter until=DURATION] [--cache-dir DIR]",
    options: [
      { name: "keep-storage", type: "string", valueName: "SIZE", help: "keep up to SIZE (e.g. 10GB), removing least recently used first" },
      { name: "filter", type: "string", repeatable: true, valueName: "until=DURATION", help: "only remove what was last used more than DURATION ago (e.g. 24h)" },
      cacheDirOption(),
    ],
    async run(args) {
      const { prune, parseSize, parseDuration } = await import("../cache/prune.js");
      const { BlobStore, defaultCacheDir } = await import("../store/blob-store.js");
      let until: number | undefined;
      for (const f of many(args, "filter")) {
        const m = /^until=(.+)$/.exec(f);
        if (!m) throw new UsageError("USAGE", `--filter ${f}: kiln prune supports until=DURATION`);
        until = parseDuration(m[1]!);
      }
      const keep = one(args, "keep-storage");
      const r = await prune(new BlobStore(one(args, "cache-dir") ?? defaultCacheDir()), {
        ...(keep !== undefined ? { keepStorage: parseSize(keep) } : {}),
        ...(until !== undefined ? { until } : {}),
      });
      process.stdout.write(`removed ${r.removed} item(s), freed ${formatBytes(r.freed)}\n`);
      return 0;
    },
  },
  login: {
    summary: "Log in to a registry (writes Docker's config.json)",
    usage: "kiln login REGISTRY -u USER --password-stdin",
    options: [
      { name: "username", short: "u", type: "string", valueName: "USER", help: "user name" },
      { name: "password-stdin", type: "boolean", help: "read the password from stdin" },
      ...registryOptions,
    ],
    async run(args) {
      if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln login: expected one REGISTRY");
      const user = one(args, "username");
      if (!user) throw new UsageError("USAGE", "kiln login: -u USER is required");
      if (!args.flags.has("password-stdin")) throw new UsageError("USAGE", "kiln login: give the password with --password-stdin");
      const password = (await buffer(process.stdin)).toString("utf8").replace(/\r?\n$/, "");
      const { login } = await import("../registry/login.js");
      await login(args.positionals[0]!, user, password, registryFrom(args));
      process.stderr.write("Login Succeeded\n");
      return 0;
    },
  },
  doctor: {
    summary: "Check what this host offers kiln: isolation modes, tools, and how to install what is missing",
    usage: "kiln doctor [--format text|json] [--cache-dir DIR]",
    options: [
      { name: "format", type: "string", valueName: "FORMAT", help: "text (default) or json" },
      cacheDirOption("where builds would work (the overlay probe runs there)"),
    ],
    async run(args) {
      const format = one(args, "format") ?? "text";
      if (format !== "text" && format !== "json") throw new UsageError("USAGE", "--format must be text or json");
      const { doctor, formatDoctor } = await import("../doctor/doctor.js");
      const { defaultCacheDir } = await import("../store/blob-store.js");
      const report = await doctor(one(args, "cache-dir") ?? defaultCacheDir());
      process.stdout.write(format === "json" ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report));
      return report.runIsolation ? 0 : 1;
    },
  },
  logout: {
    summary: "Remove a registry's credentials from Docker's config.json",
    usage: "kiln logout REGISTRY",
    options: [],
    async run(args) {
      if (args.positionals.length !== 1) throw new UsageError("USAGE", "kiln logout: expected one REGISTRY");
      const { logout } = await import("../registry/login.js");
      await logout(args.positionals[0]!);
      process.stderr.write(`Removed login credentials for ${args.positionals[0]}\n`);
      return 0;
    },
  },
};

// the local image store's commands, listed after the built-in ones
Object.assign(commands, imageCommands, { run: runCommand, attestations: attestationsCommand, manifest: manifestCommand });

async function isLayoutDir(dir: string): Promise<boolean> {
  const { stat } = await import("node:fs/promises");
  return stat(`${dir}/oci-layout`).then((st) => st.isFile(), () => false);
}


async function writeDigestFiles(args: ParsedArgs, digest: string, refs: string[]): Promise<void> {
  const df = one(args, "digest-file");
  if (df) await writeFileAtomic(df, digest);
  const mf = one(args, "metadata-file");
  if (mf) await writeFileAtomic(mf, JSON.stringify({ "containerimage.digest": digest, "image.name": refs.join(",") }, null, 2) + "\n");
}

function help(name?: string): string {
  if (name && commands[name]) {
    const c = commands[name];
    return `${c.summary}\n\nUsage: ${c.usage}\n${c.options.length > 0 ? `\nOptions:\n${formatOptionHelp(c.options)}\n` : ""}`;
  }
  const width = Math.max(8, ...Object.keys(commands).map((n) => n.length));
  const rows = [...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(width)} ${c.summary}`), `  ${"help".padEnd(width)} Show help for a command`];
  return `kiln ${VERSION}: a daemonless container image builder\n\nUsage: kiln COMMAND [OPTIONS]\n\nCommands:\n${rows.join("\n")}\n\nRun 'kiln help COMMAND' for a command's options.\n`;
}

/**
 * Checks a command line as `main` would read it, without running anything: the command exists,
 * its options parse, and for `kiln build` every value the command line alone decides (see
 * build-args.ts). Throws the UsageError `main` would print; used to check example and CI files.
 * Returns what a `kiln build` line asks for.
 */
export function checkCommandLine(argv: string[]): BuildRequest | undefined {
  const [name, ...rest] = argv;
  if (name === undefined) throw new UsageError("USAGE", "kiln: no command (see: kiln help)");
  if (["help", "--help", "-h", "--version", "version"].includes(name)) return undefined;
  const cmd = commands[name];
  if (!cmd) throw new UsageError("USAGE", `kiln: unknown command "${name}" (see: kiln help)`);
  const args = parseArgs(rest, cmd.options, name, { ...(cmd.hints ? { hints: cmd.hints } : {}) });
  return name === "build" ? buildRequest(args) : undefined;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === "help" || name === "--help" || name === "-h") {
      const topic = name === "help" ? rest[0] : undefined;
      if (topic && !commands[topic]) throw new UsageError("USAGE", `kiln help: unknown command "${topic}"`);
      process.stdout.write(help(topic));
      return name === undefined ? 2 : 0;
    }
    if (name === "--version" || name === "version") {
      process.stdout.write(`kiln ${VERSION}\n`);
      return 0;
    }
    const cmd = commands[name];
    if (!cmd) throw new UsageError("USAGE", `kiln: unknown command "${name}" (see: kiln help)`);
    if (cmd.interspersed !== false && (rest.includes("--help") || rest.includes("-h"))) {
      process.stdout.write(help(name));
      return 0;
    }
    const args = parseArgs(rest, cmd.options, name, { stopAtPositional: cmd.interspersed === false, ...(cmd.hints ? { hints: cmd.hints } : {}) });
    if (cmd.interspersed === false && args.flags.has("help")) {
      process.stdout.write(help(name));
      return 0;
    }
    return await cmd.run(args);
  } catch (err) {
    process.stderr.write(`error: ${describeError(err)}\n`);
    if (!(err instanceof KilnError) && process.env.KILN_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ""}\n`);
    return exitCodeFor(err, name !== undefined && commands[name] ? name : undefined);
  }
}
