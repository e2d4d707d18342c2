// `kiln build`: its options (kiln's own, the registry flags and the docker/buildah/kaniko
// compatibility flags of compat-flags.ts), the build run with live progress, and SIGINT/SIGTERM
// turned into an aborted build (exit 130/143 with one line).
import { AbortError } from "../errors.js";
import type { OptionSpec } from "./args.js";
import { buildRequest } from "./build-args.js";
import { BUILD_FLAG_HINTS, compatBuildOptions } from "./compat-flags.js";
import { createProgress } from "./progress.js";
import { cacheDirOption, registryOptions, type Command } from "./command.js";

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

export const buildCommand: Command = {
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
};
