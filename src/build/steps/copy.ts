// The COPY and ADD steps: selects sources (build context, another stage, a named context, URLs,
// heredocs), resolves --chown/--chmod against the image, and produces the LayerEntry list that
// becomes the step's layer — written straight from the sources, no root filesystem involved.
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { parseChmod } from "../../context/chmod.js";
import { copyEntries, type CopySource } from "../../context/copy-entries.js";
import { resolveChown } from "../../context/owner.js";
import { selectSources } from "../../context/select.js";
import { fetchUrl } from "../../context/url.js";
import type { AddInstruction, CopyInstruction } from "../../dockerfile/instructions.js";
import { KilnError } from "../../errors.js";
import type { LayerEntry } from "../../layer/entry.js";
import { LayerView } from "../../layer/view.js";
import type { StageBuilder } from "../stage.js";

export function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** Git sources (ADD git@..., ADD https://....git) are not supported yet. */
export function isGitSource(source: string): boolean {
  return /^git@|^git:\/\/|^ssh:\/\//i.test(source) || (isUrl(source) && /\.git(#.*)?$/i.test(source));
}

export async function copyStep(sb: StageBuilder, t: CopyInstruction | AddInstruction): Promise<LayerEntry[]> {
  const session = sb.session;
  const link = t.link;
  const view = link ? LayerView.empty() : await sb.view();
  const from = t.kind === "copy" ? t.from : undefined;
  const ctx = from !== undefined ? await session.sourceTree(from, sb.stage.index) : await session.context();
  const tmp = await mkdtemp(join(await session.tmpRoot, "step-"));

  const sources: CopySource[] = [];
  const local: string[] = [];
  for (const s of t.sources) {
    if (t.kind === "add" && isUrl(s)) {
      if (isGitSource(s)) throw new KilnError(`git sources are not supported yet ("${s}")`);
      const file = await fetchUrl(s, { tmpDir: tmp, ...(t.checksum ? { checksum: t.checksum } : {}), ...(session.options.signal ? { signal: session.options.signal } : {}) });
      sources.push({ kind: "url", file, url: s });
    } else {
      if (t.kind === "add" && t.checksum) throw new KilnError(`--checksum can only be used with a URL source ("${s}")`);
      local.push(s);
    }
  }
  if (local.length > 0) {
    sources.push(...(await selectSources(ctx, local, { exclude: t.exclude, parents: t.kind === "copy" && t.parents })));
  }
  for (const h of t.inline) sources.push({ kind: "heredoc", name: h.path, content: h.data });

  const cfgView = link ? await sb.view() : view; // owners are names in the image even with --link
  const chown = t.chown
    ? resolveChown(t.chown, cfgView.readSmallFile("etc/passwd"), cfgView.readSmallFile("etc/group"))
    : undefined;
  const chmod = t.chmod ? parseChmod(t.chmod) : undefined;
  return copyEntries({
    kind: t.kind === "copy" ? "COPY" : "ADD",
    sources,
    sourceCount: t.sources.length + t.inline.length,
    dest: t.dest,
    workdir: sb.image.config.config?.WorkingDir || "/",
    ...(chown ? { chown } : {}),
    ...(chmod ? { chmod } : {}),
    view,
    parents: t.kind === "copy" && t.parents,
    link,
    ...(t.kind === "add" && t.unpack !== undefined ? { unpack: t.unpack } : {}),
    spoolDir: tmp,
    ...(session.sourceDateEpoch !== undefined ? { timestamp: session.sourceDateEpoch } : {}),
  });
}
