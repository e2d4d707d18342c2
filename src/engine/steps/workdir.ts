// The WORKDIR step: sets the config's WorkingDir (resolved against the current one) and creates
// the directory and its missing parents in a layer, owned by the current USER (looked up in the
// image's /etc/passwd and /etc/group, read from its layers without extraction). An existing
// directory gives no layer; an existing non-directory is an error. Keyed on the resolved path and
// the USER.
import { posix } from "node:path";
import { resolveChown } from "../../context/owner.js";
import type { WorkdirInstruction } from "../../frontend/instructions.js";
import { KilnError } from "../../errors.js";
import type { LayerEntry } from "../../layer/entry.js";
import { applyMetadata, resolveWorkdir } from "../image-config.js";
import { withConfig } from "../state.js";
import type { LayerStep, StepContext } from "../step.js";

export function workdirStep(t: WorkdirInstruction): LayerStep {
  const createdBy = (ctx: StepContext): string => `WORKDIR ${ctx.state.image.config.config?.WorkingDir}`;
  return {
    prepare: (state) => withConfig(state, (config) => applyMetadata(config, t, { shell: [...state.shell], cmdSet: state.cmdSet })),
    async keyParts(ctx) {
      const config = ctx.state.image.config.config;
      return { parent: ctx.state.cacheState, instruction: createdBy(ctx), platform: ctx.config.platformText, args: {}, extra: { user: config?.User ?? "" } };
    },
    createdBy,
    async produce(ctx) {
      return { entries: await workdirEntries(ctx, ctx.state.image.config.config?.WorkingDir ?? "/") };
    },
  };
}

async function workdirEntries(ctx: StepContext, dir: string): Promise<LayerEntry[]> {
  const view = await ctx.view();
  const target = view.resolve(dir);
  if (target?.type === "dir") return [];
  if (target) throw new KilnError("WORKDIR_NOT_DIRECTORY", `${dir} exists and is not a directory`);
  const user = ctx.state.image.config.config?.User;
  const owner = user ? resolveChown(user, view.readSmallFile("etc/passwd"), view.readSmallFile("etc/group")) : { uid: 0, gid: 0 };
  const mtime = ctx.config.sourceDateEpoch ?? Math.floor(Date.now() / 1000);
  const entries = new Map<string, LayerEntry>();
  let cur = "/";
  for (const part of resolveWorkdir("/", dir).split("/").filter(Boolean)) {
    const next = posix.join(cur, part);
    const real = view.resolvePath(next, true);
    const existing = view.lookup(real);
    if (existing?.type === "dir") {
      if (real !== "") entries.set(real, { path: real, type: "dir", mode: existing.mode, uid: existing.uid, gid: existing.gid, mtime: existing.mtime, size: 0 });
    } else {
      entries.set(real, { path: real, type: "dir", mode: 0o755, uid: owner.uid, gid: owner.gid, mtime, size: 0 });
    }
    cur = "/" + real;
  }
  return [...entries.values()];
}
