// What `kiln run` starts, by Docker's rules: the image's ENTRYPOINT and CMD (exec form as stored;
// a shell-form instruction is stored as ["/bin/sh","-c","..."] already), arguments after the
// image replace CMD, `--entrypoint` replaces ENTRYPOINT and drops the image's CMD ("" clears it).
import { KilnError } from "../errors.js";
import type { ContainerConfig } from "../image/oci.js";

export interface CommandOverrides {
  /** Arguments after IMAGE (replace CMD when any are given). */
  args: string[];
  /** `--entrypoint`: undefined keeps the image's; "" clears it. */
  entrypoint?: string;
}

export function containerArgv(config: ContainerConfig | undefined, o: CommandOverrides, image: string): string[] {
  let entrypoint = config?.Entrypoint ?? [];
  let cmd = config?.Cmd ?? [];
  if (o.entrypoint !== undefined) {
    entrypoint = o.entrypoint === "" ? [] : [o.entrypoint];
    cmd = [];
  }
  if (o.args.length > 0) cmd = o.args;
  const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
  if (argv.length === 0) throw new KilnError("CONTAINER_COMMAND_NOT_FOUND", `${image}: no command specified (the image has no ENTRYPOINT or CMD; give one after the image name)`);
  return argv;
}
