// The COPY and ADD steps, in two phases. `keyParts` gathers what the step reads (context or
// stage sources, URL downloads) and the cache-key parts that identify it; `produce` then builds
// the LayerEntry list of the step's layer — written straight from the sources, no root filesystem
// involved — resolving --chown/--chmod against the image. A cache hit skips the second phase.
import { parseChmod } from "../../context/chmod.js";
import { copyEntries, type CopySource } from "../../context/copy-entries.js";
import { resolveChown } from "../../context/owner.js";
import { selectSources, type SelectedSource } from "../../context/select.js";
import { DirContext } from "../../context/build-context.js";
import { checkoutGit, withoutGitDirs, type GitOptions, type ResolvedGit } from "../../context/git.js";
import { isGitUrl, parseGitUrl, redactUrl, type GitRef } from "../../context/git-url.js";
import { checkGitChecksum, recordGit, resolveGit } from "../git-sources.js";
import { join } from "node:path";
import type { DownloadedFile } from "../../context/url.js";
import { hashSources } from "../../cache/sources.js";
import type { AddInstruction, CopyInstruction } from "../../frontend/instructions.js";
import { KilnError } from "../../errors.js";
import type { Digest } from "../../image/oci.js";
import type { LayerEntry } from "../../layer/entry.js";
import { LayerView } from "../../layer/view.js";
import { instructionExtra } from "../step-extra.js";
import { oneLine, type LayerStep, type StepContext } from "../step.js";

export function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** `ADD <git-url>`: the source, the commit its ref resolved to, and how to fetch it on a miss. */
interface PreparedGit {
  src: GitRef;
  resolved: ResolvedGit;
  options: GitOptions;
  keepGitDir: boolean;
}

interface PreparedCopy {
  /** Selected sources for the second phase; undefined until needed when they come from a stage. */
  selected?: SelectedSource[];
  urls: Array<{ url: string; file: DownloadedFile }>;
  tmp: string;
  /** Cache-key parts: digest of context sources, or the source stage/image identity. */
  sourcesDigest?: Digest;
  fromIdentity?: Digest;
  extra: Record<string, string>;
  git?: PreparedGit;
}

export function copyStep(t: CopyInstruction | AddInstruction): LayerStep {
  let prepared: PreparedCopy | undefined;
  return {
    async keyParts(ctx) {
      prepared = await prepareCopy(ctx, t);
      return {
        parent: ctx.state.cacheState,
        instruction: t.kind,
        platform: ctx.config.platformText,
        args: {},
        ...(prepared.sourcesDigest ? { sources: prepared.sourcesDigest } : {}),
        ...(prepared.fromIdentity ? { fromStage: prepared.fromIdentity } : {}),
        extra: { ...instructionExtra(t), ...prepared.extra, workdir: ctx.state.image.config.config?.WorkingDir ?? "" },
      };
    },
    createdBy: () => `${t.kind.toUpperCase()} ${oneLine(t.original).replace(/^\S+\s+/, "")}`,
    async produce(ctx) {
      if (!prepared) throw new KilnError("INTERNAL", "internal: COPY produced before its key");
      return { entries: await copyLayerEntries(ctx, t, prepared) };
    },
  };
}

async function prepareCopy(ctx: StepContext, t: CopyInstruction | AddInstruction): Promise<PreparedCopy> {
  const tmp = await ctx.tmpDir("step-");
  const urls: PreparedCopy["urls"] = [];
  const local: string[] = [];
  const extra: Record<string, string> = {};
  let gitSource: PreparedGit | undefined;
  for (const s of t.sources) {
    if (t.kind === "add" && isGitUrl(s)) {
      // keyed by the commit the ref names now (ls-remote): a hit fetches nothing
      const src = parseGitUrl(s);
      const { resolved, options } = await resolveGit(ctx.config, src);
      const checksum = t.checksum ?? src.checksum;
      if (checksum !== undefined) checkGitChecksum(src, resolved, checksum);
      const keepGitDir = t.keepGitDir || src.keepGitDir === true;
      extra[`git:${redactUrl(src.remote)}`] = `${resolved.commit} ${src.subdir ?? ""} keep-git-dir=${keepGitDir} submodules=${src.submodules}`;
      recordGit(ctx.config, { use: `ADD line ${t.line}`, remote: redactUrl(src.remote), ...(src.ref ? { ref: src.ref } : {}), ...(src.subdir ? { subdir: src.subdir } : {}), commit: resolved.commit });
      gitSource = { src, resolved, options, keepGitDir };
    } else if (t.kind === "add" && isUrl(s)) {
      const { fetchUrl } = await import("../../context/url.js"); // undici loads only for ADD <url>
      const file = await fetchUrl(s, {
        tmpDir: tmp,
        ...(t.checksum ? { checksum: t.checksum } : {}),
        ...(ctx.config.signal ? { signal: ctx.config.signal } : {}),
      });
      urls.push({ url: s, file });
      ctx.sources.recordDownload(s, file.digest);
      extra[`url:${s}`] = `${file.digest} ${file.mtime} ${file.filename}`;
    } else {
      if (t.kind === "add" && t.checksum) throw new KilnError("DOCKERFILE_INSTRUCTION", `--checksum can only be used with a URL source ("${s}")`);
      local.push(s);
    }
  }
  const prepared: PreparedCopy = { urls, tmp, extra, ...(gitSource ? { git: gitSource } : {}) };
  if (local.length === 0) return prepared;
  const from = t.kind === "copy" ? t.from : undefined;
  if (from !== undefined) {
    // Another stage's or image's files: its identity keys the step; its tree is only read on a miss.
    const id = await ctx.sources.identity(from);
    if (id) {
      prepared.fromIdentity = id;
      return prepared;
    }
  }
  const tree = from !== undefined ? await ctx.sources.tree(from) : await ctx.sources.context();
  prepared.selected = await selectSources(tree, local, { exclude: t.exclude, parents: t.kind === "copy" && t.parents });
  prepared.sourcesDigest = await hashSources(prepared.selected, { statCache: await ctx.statCache(tree.root), ...(ctx.config.signal ? { signal: ctx.config.signal } : {}) });
  return prepared;
}

async function copyLayerEntries(ctx: StepContext, t: CopyInstruction | AddInstruction, prepared: PreparedCopy): Promise<LayerEntry[]> {
  const local = t.sources.filter((s) => !(t.kind === "add" && (isUrl(s) || isGitUrl(s))));
  let selected = prepared.selected;
  if (!selected && local.length > 0) {
    const tree = await ctx.sources.tree((t as CopyInstruction).from!);
    selected = await selectSources(tree, local, { exclude: t.exclude, parents: t.kind === "copy" && t.parents });
  }
  const sources: CopySource[] = [...(selected ?? [])];
  for (const u of prepared.urls) sources.push({ kind: "url", file: u.file, url: u.url });
  if (prepared.git) sources.push(...(await gitSources(ctx, prepared.git, t.exclude)));
  for (const h of t.inline) sources.push({ kind: "heredoc", name: h.path, content: h.data });

  const image = await ctx.view();
  const view = t.link ? LayerView.empty() : image;
  const chown = t.chown
    ? resolveChown(t.chown, image.readSmallFile("etc/passwd"), image.readSmallFile("etc/group"))
    : undefined;
  const chmod = t.chmod ? parseChmod(t.chmod) : undefined;
  return copyEntries({
    kind: t.kind === "copy" ? "COPY" : "ADD",
    sources,
    sourceCount: t.sources.length + t.inline.length,
    dest: t.dest,
    workdir: ctx.state.image.config.config?.WorkingDir || "/",
    ...(chown ? { chown } : {}),
    ...(chmod ? { chmod } : {}),
    view,
    parents: t.kind === "copy" && t.parents,
    link: t.link,
    ...(t.kind === "add" && t.unpack !== undefined ? { unpack: t.unpack } : {}),
    spoolDir: prepared.tmp,
    ...(ctx.config.sourceDateEpoch !== undefined ? { timestamp: ctx.config.sourceDateEpoch } : {}),
  });
}

/** The checked-out repository (fetched now unless that commit is in the cache) as the step's sources: its whole tree, `.git` only when kept. */
async function gitSources(ctx: StepContext, g: PreparedGit, exclude: string[]): Promise<SelectedSource[]> {
  const checkout = await checkoutGit(g.src, g.resolved, ctx.config.cacheDir, g.options);
  const dir = g.src.subdir ? join(checkout, g.src.subdir) : checkout;
  const tree = new DirContext(dir, withoutGitDirs(() => false, g.keepGitDir));
  return selectSources(tree, ["."], { exclude }).catch((err: unknown) => {
    throw new KilnError("CONTEXT_SOURCE_NOT_FOUND", `git source ${g.src.display}: ${(err as Error).message}`);
  });
}
