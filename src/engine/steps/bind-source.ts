// Where `RUN --mount=type=bind[,from=...],source=P` reads from, and what its cache key says about
// it. P is resolved inside its tree's root as if that root were `/` (symlinks followed there,
// never on the host) for every kind of tree: the build context, a named context, another stage,
// an image. The key is a digest of the resolved subtree's content; for a stage or an image (whose
// identity fixes its content) that digest is remembered per (identity, source) in the store, so a
// fully cached build never has to assemble the source tree again.
import { createHash } from "node:crypto";
import { readFile, realpath } from "node:fs/promises";
import { join, posix } from "node:path";
import { StatCache, hashSources } from "../../cache/sources.js";
import type { DirContext } from "../../context/build-context.js";
import { selectSources } from "../../context/select.js";
import type { RunMount } from "../../frontend/mounts.js";
import { KilnError } from "../../errors.js";
import { resolveInRoot } from "../../snapshot/confine.js";
import { writeFileAtomic } from "../../store/atomic-file.js";
import type { StepContext } from "../step.js";

export interface BindSource {
  tree: DirContext;
  /** Path relative to the tree's root, every symlink on the way resolved inside it ("" = the root). */
  rel: string;
  /** The host path behind it: inside the tree's (real) root, with no symlink anywhere on the way. */
  host: string;
}

/** The tree a bind mount reads: `from=` a stage, image or named context, else the build context. */
function treeOf(ctx: StepContext, m: RunMount): Promise<DirContext> {
  return m.from !== undefined ? ctx.sources.tree(m.from) : ctx.sources.context();
}

/** Resolve the mount's `source` inside its tree. Throws a KilnError naming the mount when it is missing. */
export async function resolveBindSource(ctx: StepContext, m: RunMount): Promise<BindSource> {
  const tree = await treeOf(ctx, m);
  const root = await realpath(tree.root);
  const host = await resolveInRoot(root, m.source ?? "/", { followFinal: true });
  const rel = posix.relative(root, host);
  const entry = await tree.stat(rel);
  if (!entry) {
    const where = m.from !== undefined ? ` in ${m.from}` : "";
    throw new KilnError("RUN_MOUNT_INVALID", `--mount=${m.spec}: source "${m.source ?? "."}" not found${where}`);
  }
  return { tree, rel, host };
}

async function digestOf(ctx: StepContext, m: RunMount, persistStatCache: boolean): Promise<string> {
  const src = await resolveBindSource(ctx, m);
  const selected = await selectSources(src.tree, [src.rel === "" ? "." : src.rel], {});
  // A stage's or image's temporary tree gets a throw-away stat cache (nothing to reuse later).
  const statCache = persistStatCache ? await ctx.statCache(src.tree.root) : await StatCache.load(ctx.store, src.tree.root);
  return hashSources(selected, { statCache, ...(ctx.config.signal ? { signal: ctx.config.signal } : {}) });
}

/** The cache-key part of a bind mount: a digest of the content its source resolves to. */
export async function bindSourceDigest(ctx: StepContext, m: RunMount): Promise<string> {
  const identity = m.from !== undefined ? await ctx.sources.identity(m.from) : undefined;
  if (identity === undefined) return digestOf(ctx, m, true);
  const source = posix.normalize(`/${m.source ?? ""}`);
  const name = createHash("sha256").update(`kiln-bind-digest/1\n${identity}\n${source}`).digest("hex");
  const memo = join(ctx.store.root, "bind-digests", name);
  const known = (await readFile(memo, "utf8").catch(() => "")).trim();
  if (/^sha256:[0-9a-f]{64}$/.test(known)) return known;
  const digest = await digestOf(ctx, m, false);
  await writeFileAtomic(memo, `${digest}\n`, { mkdirMode: 0o755 }).catch(() => undefined);
  return digest;
}
