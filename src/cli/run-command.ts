// `kiln run [OPTIONS] IMAGE [COMMAND [ARG...]]` with docker's flag names: flags end at the image
// (the rest is the command), kiln's own failures exit 125 (as docker's do: src/cli/exit.ts), the process's exit
// status is kiln's otherwise, and SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 are forwarded.
// (The command table loads this module for `kiln run` alone, so the container code it needs is
// imported statically: one round of module loading instead of a chain of them.)
import { availableParallelism } from "node:os";
import { KilnError, UsageError } from "../errors.js";
import { parseSize } from "../units.js";
import type { Snapshotter } from "../snapshot/rootfs.js";
import { ISOLATIONS, type Isolation } from "../run/index.js";
import { defaultCacheDir } from "../store/cache-dir.js";
import { runContainer } from "../container/run.js";
import { intOption, many, one, type ParsedArgs } from "./args.js";
import { cacheDirOption, pullOption, pullPolicy, registryFrom, registryOptions, type Command } from "./command.js";

const FORWARDED: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];

export const runCommand: Command = {
  summary: "Run a command in a new container from an image (removed when it exits)",
  usage: "kiln run [OPTIONS] IMAGE [COMMAND [ARG...]]   (IMAGE: a stored name, oci-layout://DIR[:TAG] or a registry reference)",
  interspersed: false,
  options: [
    { name: "env", short: "e", type: "string", repeatable: true, valueName: "K=V", help: "set an environment variable (K alone takes kiln's value)" },
    { name: "env-file", type: "string", repeatable: true, valueName: "FILE", help: "read KEY=VALUE lines from FILE" },
    { name: "workdir", short: "w", type: "string", valueName: "DIR", help: "working directory inside the container" },
    { name: "user", short: "u", type: "string", valueName: "USER[:GROUP]", help: "user (name or uid, optional group) to run as" },
    { name: "entrypoint", type: "string", valueName: "CMD", help: "replace the image's ENTRYPOINT (and drop its CMD); \"\" clears it" },
    { name: "volume", short: "v", type: "string", repeatable: true, valueName: "HOST:CTR[:ro]", help: "bind-mount a host path (created when missing)" },
    { name: "mount", type: "string", repeatable: true, valueName: "SPEC", help: "type=bind,source=HOST,target=CTR[,readonly] | type=tmpfs,target=CTR" },
    { name: "network", type: "string", valueName: "MODE", help: "host (default) or none" },
    { name: "hostname", type: "string", valueName: "NAME", help: "container host name (default: random)" },
    { name: "add-host", type: "string", repeatable: true, valueName: "HOST:IP", help: "add a line to /etc/hosts (IP may be host-gateway: the host's loopback with --network host)" },
    { name: "cap-add", type: "string", repeatable: true, valueName: "CAP", help: "add a capability to Docker's default set (ALL: every one)" },
    { name: "cap-drop", type: "string", repeatable: true, valueName: "CAP", help: "drop a capability from Docker's default set (ALL: every one)" },
    { name: "memory", short: "m", type: "string", valueName: "SIZE", help: "memory limit (cgroups: oci isolation as root), e.g. 256m" },
    { name: "cpus", type: "string", valueName: "N", help: "CPU limit, e.g. 1.5 (cgroups: oci isolation as root)" },
    { name: "init", type: "boolean", help: "run a minimal init (tini) as the container's pid 1: it reaps zombies and forwards signals" },
    { name: "read-only", type: "boolean", help: "mount the root file system read-only" },
    { name: "interactive", short: "i", type: "boolean", help: "keep stdin open for the process" },
    { name: "tty", short: "t", type: "boolean", help: "give the process a pseudo-terminal" },
    { name: "rm", type: "boolean", help: "remove the container when it exits (always: kiln keeps no container state)" },
    { name: "stop-timeout", type: "string", valueName: "SECONDS", help: "after a forwarded SIGTERM/SIGINT, SIGKILL after this long (default 10)" },
    { name: "isolation", type: "string", valueName: "MODE", help: "auto, oci, chroot, plain-chroot or proot (as for RUN; default auto)" },
    { name: "snapshotter", type: "string", valueName: "MODE", help: "auto, overlay or dir (default auto)" },
    { name: "platform", type: "string", valueName: "OS/ARCH", help: "image platform (only the host's: no emulation)" },
    { name: "name", type: "string", valueName: "NAME", help: "not supported: kiln keeps no container state" },
    { name: "help", short: "h", type: "boolean", help: "show this help" },
    pullOption,
    cacheDirOption("local image store and work directory"),
    ...registryOptions,
  ],
  async run(args: ParsedArgs) {
    try {
      return await runIt(args);
    } catch (err) {
      // one line naming the command, as the issue's `kiln run: app:1: user "x" not found ...`
      if (err instanceof KilnError && !err.message.startsWith("kiln run")) throw new KilnError(err.code, `kiln run: ${err.message}`, { cause: err });
      throw err;
    }
  },
};

async function runIt(args: ParsedArgs): Promise<number> {
  const [image, ...command] = args.positionals;
  if (image === undefined) throw new UsageError("USAGE", "kiln run: expected IMAGE [COMMAND [ARG...]] (see: kiln help run)");
  if (one(args, "name") !== undefined) throw new UsageError("FEATURE_UNSUPPORTED", "kiln run: --name is not supported (kiln keeps no container state; every container is removed when it exits)");
  const network = one(args, "network") ?? "host";
  if (network !== "host" && network !== "none") throw new UsageError("OPTION_INVALID", "--network must be host or none");
  const isolation = (one(args, "isolation") ?? "auto") as Isolation;
  if (!ISOLATIONS.includes(isolation)) throw new UsageError("OPTION_INVALID", `--isolation must be one of ${ISOLATIONS.join(", ")}`);
  const snapshotter = one(args, "snapshotter") ?? "auto";
  if (!["auto", "overlay", "dir"].includes(snapshotter)) throw new UsageError("OPTION_INVALID", "--snapshotter must be auto, overlay or dir");
  const stopTimeout = intOption(args, "stop-timeout", 0, 86400);
  const tty = args.flags.has("tty");
  if (tty && !process.stdin.isTTY) throw new UsageError("OPTION_INVALID", "kiln run: -t needs stdin to be a terminal (the input device is not a TTY)");
  const memory = one(args, "memory");
  const memoryBytes = memory === undefined ? undefined : parseSize(memory);
  if (memoryBytes !== undefined && memoryBytes < 6 * 1024 * 1024) throw new UsageError("OPTION_INVALID", `kiln run: --memory ${memory}: the minimum is 6MiB (as docker)`);
  const cpusText = one(args, "cpus");
  const cpus = cpusText === undefined ? undefined : Number(cpusText);
  if (cpus !== undefined && !(/^\d+(\.\d+)?$/.test(cpusText!) && cpus >= 0.01 && cpus <= availableParallelism())) {
    throw new UsageError("OPTION_INVALID", `kiln run: --cpus ${cpusText}: expected a number from 0.01 to ${availableParallelism()} (the CPUs available)`);
  }
  const workdir = one(args, "workdir");
  const user = one(args, "user");
  const entrypoint = one(args, "entrypoint");
  const hostname = one(args, "hostname");
  const platform = one(args, "platform");
  const handle = runContainer({
    image,
    args: command,
    ...(entrypoint !== undefined ? { entrypoint } : {}),
    env: many(args, "env"),
    envFiles: many(args, "env-file"),
    ...(workdir !== undefined ? { workdir } : {}),
    ...(user !== undefined ? { user } : {}),
    volumes: many(args, "volume"),
    mounts: many(args, "mount"),
    network,
    ...(hostname !== undefined ? { hostname } : {}),
    addHosts: many(args, "add-host"),
    capAdd: many(args, "cap-add"),
    capDrop: many(args, "cap-drop"),
    ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    ...(cpus !== undefined ? { cpus } : {}),
    init: args.flags.has("init"),
    readOnly: args.flags.has("read-only"),
    interactive: args.flags.has("interactive"),
    tty,
    isolation,
    snapshotter: snapshotter as Snapshotter,
    pull: pullPolicy(args),
    ...(platform !== undefined ? { platform } : {}),
    cacheDir: one(args, "cache-dir") ?? defaultCacheDir(),
    registry: registryFrom(args),
    ...(stopTimeout !== undefined ? { stopTimeout } : {}),
    onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
  });
  const forward = (sig: NodeJS.Signals): void => handle.signal(sig);
  for (const s of FORWARDED) process.on(s, forward);
  try {
    return await handle.exit;
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
  }
}
