// COPY/ADD -> the LayerEntry list of one layer. Owns Docker's destination rules (trailing "/",
// existing directories, several sources, WORKDIR-relative dests, symlinks in the destination
// resolved inside the image), ownership (--chown or 0:0; context owners are not kept), --chmod,
// hard links among the copied files, xattrs of files copied from root file systems,
// the parent directories a snapshot diff would show, heredoc files, URL downloads and ADD's
// unpacking of local archives.
import { posix } from "node:path";
import { Readable } from "node:stream";
import { KilnError } from "../errors.js";
import type { LayerEntry } from "../layer/entry.js";
import { LayerView } from "../layer/view.js";
import { archiveEntries, detectArchive } from "./archive.js";
import type { ChmodFn } from "./chmod.js";
import type { SelectedSource } from "./select.js";
import type { DownloadedFile } from "./url.js";
import { createReadStream } from "node:fs";
import { readXattrs } from "../snapshot/xattr.js";

/** `COPY <<name /dest`: an inline file. */
export interface HeredocSource {
  kind: "heredoc";
  name: string;
  content: string | Buffer;
  /** Defaults to 0644 (BuildKit's inline documents). */
  mode?: number;
}

/** `ADD <url> /dest`: a downloaded file (see fetchUrl). Not unpacked unless `unpack` (ADD --unpack). */
export interface UrlSource {
  kind: "url";
  file: DownloadedFile;
  /** The URL as written (for errors and the multiple-sources rule). */
  url?: string;
}

export type CopySource = SelectedSource | HeredocSource | UrlSource;

export interface CopySpec {
  kind: "COPY" | "ADD";
  /** Matched context sources (selectSources), heredoc files and downloads, in instruction order. */
  sources: CopySource[];
  /** How many sources were written in the instruction (default: distinct sources given). */
  sourceCount?: number;
  /** Destination as written (already expanded); relative => against workdir. */
  dest: string;
  /** The stage's WORKDIR ("/" by default). */
  workdir: string;
  chown?: { uid: number; gid: number };
  chmod?: ChmodFn;
  /** The destination image's files. */
  view: LayerView;
  parents?: boolean;
  /** COPY --link: the layer is independent of the image below (no view lookups). */
  link?: boolean;
  /** ADD --unpack: undefined = Docker's default (local archives unpacked, URLs not). */
  unpack?: boolean;
  /** Temp dir (caller-owned, removed after the layer is written) for unpacked archive contents. */
  spoolDir?: string;
  /** Seconds since the epoch for directories COPY creates and heredoc files (default: now). */
  timestamp?: number;
}

export async function copyEntries(spec: CopySpec): Promise<LayerEntry[]> {
  const view = spec.link ? LayerView.empty() : spec.view;
  const now = spec.timestamp ?? Math.floor(Date.now() / 1000);
  const owner = spec.chown ?? { uid: 0, gid: 0 };
  const entries = new Map<string, LayerEntry>();

  const rawDest = spec.dest;
  const trailingSlash = rawDest === "" || rawDest === "." || rawDest.endsWith("/") || rawDest.endsWith("/.");
  const destAbs = rawDest.startsWith("/") ? rawDest : posix.join("/", spec.workdir || "/", rawDest);
  const destReal = view.resolvePath(clean(destAbs), true);
  const existing = destReal === "" ? view.lookup("") : view.lookup(destReal);
  const destIsDir = trailingSlash || spec.parents === true || existing?.type === "dir";

  const written = spec.sourceCount ?? countWritten(spec.sources);
  if ((written > 1 || spec.sources.length > 1) && !trailingSlash && !spec.parents) {
    throw new KilnError("COPY_DESTINATION_INVALID", `When using ${spec.kind} with more than one source file, the destination must be a directory and end with a /`);
  }
  if (existing && existing.type !== "dir" && destIsDir && destReal !== "") {
    throw new KilnError("COPY_DESTINATION_INVALID", `cannot copy into "/${destReal}": not a directory`);
  }

  const put = (e: LayerEntry): void => {
    const prev = entries.get(e.path);
    if (prev && prev.type === "dir" && e.type !== "dir") {
      const prefix = `${e.path}/`;
      for (const k of [...entries.keys()]) if (k.startsWith(prefix)) entries.delete(k);
    }
    entries.set(e.path, e);
  };
  // Files the sources hold as hard links of one another stay linked in the layer (as BuildKit's
  // and buildah's COPY keep them): the first copied carries the content, the others link to it.
  const firstOfInode = new Map<string, LayerEntry>();
  const linked: Array<{ link: LayerEntry; file: LayerEntry; first: LayerEntry }> = [];
  // Files and directories copied from a root file system (another stage, an image) keep their
  // extended attributes, file capabilities above all, as BuildKit's copy does. Context files do
  // not: a host's own labels (security.selinux) have no place in an image.
  const withXattrs: Array<{ entry: LayerEntry; abs: string }> = [];
  const keepXattrs = (entry: LayerEntry, abs: string): void => {
    withXattrs.push({ entry, abs });
  };
  const putFile = (e: LayerEntry, inode: string | undefined): void => {
    const first = inode === undefined ? undefined : firstOfInode.get(inode);
    if (first === undefined || first.path === e.path) {
      if (inode !== undefined) firstOfInode.set(inode, e);
      put(e);
      return;
    }
    const link: LayerEntry = { ...e, type: "hardlink", linkname: first.path, size: 0, open: undefined };
    linked.push({ link, file: e, first });
    put(link);
  };
  const fileTarget = (name: string): string => (destIsDir ? join(destReal, name) : destReal);

  for (const src of spec.sources) {
    if (src.kind === "heredoc") {
      const buf = typeof src.content === "string" ? Buffer.from(src.content, "utf8") : src.content;
      const base = src.mode ?? 0o644;
      put({
        path: fileTarget(src.name),
        type: "file",
        mode: spec.chmod ? spec.chmod(base, false) : base,
        uid: owner.uid,
        gid: owner.gid,
        mtime: now,
        size: buf.length,
        open: () => Readable.from([buf]),
      });
      continue;
    }
    if (src.kind === "url") {
      const f = src.file;
      if (spec.kind === "ADD" && spec.unpack === true) {
        const open = () => createReadStream(f.path);
        const kind = await detectArchive(open);
        if (kind) {
          for await (const e of archiveEntries(open, kind, destReal, archiveOptions(spec))) put(e);
          continue;
        }
      }
      put({
        path: fileTarget(f.filename),
        type: "file",
        mode: spec.chmod ? spec.chmod(0o600, false) : 0o600,
        uid: owner.uid,
        gid: owner.gid,
        mtime: f.mtime,
        size: f.size,
        open: () => createReadStream(f.path),
      });
      continue;
    }
    await addContextSource(spec, src, view, destReal, destIsDir, owner, put, putFile, keepXattrs);
  }
  if (withXattrs.length > 0) {
    const found = await readXattrs(withXattrs.map((w) => w.abs));
    for (const { entry, abs } of withXattrs) {
      const x = found.get(abs);
      if (x) entry.xattrs = x;
    }
  }
  // a link whose first file was overwritten by a later source carries its own content again
  for (const { link, file, first } of linked) {
    if (entries.get(link.path) === link && entries.get(first.path) !== first) entries.set(link.path, file);
  }

  // Paths are real paths inside the image: follow the image's symlinks in parent components
  // (a write through /app -> /srv lands in /srv), then add the parent directories.
  const resolved = new Map<string, LayerEntry>();
  const realPath = parentResolver(view);
  for (const e of entries.values()) {
    let path = realPath(e.path);
    if (e.type === "dir") {
      const at = view.lookup(path);
      if (at?.type === "symlink" && view.resolve(path)?.type === "dir") path = view.resolvePath(path, true);
    }
    if (path === "") continue; // the root directory itself is never a layer entry here
    const out: LayerEntry = path === e.path ? e : { ...e, path };
    if (out.type === "hardlink" && out.linkname !== undefined) out.linkname = realPath(out.linkname);
    resolved.set(path, out);
  }
  for (const path of [...resolved.keys()]) {
    let parent = posix.dirname(path);
    while (parent !== "." && parent !== "" && !resolved.has(parent)) {
      const v = view.lookup(parent);
      if (v && v.type !== "dir") {
        throw new KilnError("COPY_DESTINATION_INVALID", `cannot copy to "/${path}": "/${parent}" is not a directory`);
      }
      resolved.set(
        parent,
        v
          ? { path: parent, type: "dir", mode: v.mode, uid: v.uid, gid: v.gid, mtime: v.mtime, size: 0 }
          : { path: parent, type: "dir", mode: 0o755, uid: owner.uid, gid: owner.gid, mtime: now, size: 0 },
      );
      parent = posix.dirname(parent);
    }
  }
  return [...resolved.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function addContextSource(
  spec: CopySpec,
  src: SelectedSource,
  view: LayerView,
  destReal: string,
  destIsDir: boolean,
  owner: { uid: number; gid: number },
  put: (e: LayerEntry) => void,
  putFile: (e: LayerEntry, inode: string | undefined) => void,
  keepXattrs: (e: LayerEntry, abs: string) => void,
): Promise<void> {
  const { ctx, entry } = src;
  const chmod = spec.chmod;
  /** Put an entry copied from `abs`, keeping its xattrs when the source is a root file system. */
  const putFrom = (e: LayerEntry, abs: string, inode?: string): void => {
    if (e.type === "file") putFile(e, inode);
    else put(e);
    if (ctx.keepOwners && e.type !== "symlink") keepXattrs(e, abs);
  };
  // COPY --from a root file system keeps owners (BuildKit); context files land as 0:0.
  const own = (e: { uid: number; gid: number }) => (spec.chown || !ctx.keepOwners ? owner : { uid: e.uid, gid: e.gid });
  if (spec.parents && src.parentsPath !== undefined && src.parentsPath.includes("/")) {
    // --parents copies the directories between the pivot and the source with their own metadata
    // (BuildKit copies from the pivot with an include pattern), unless they already exist.
    const parts = src.parentsPath.split("/");
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i).join("/");
      const target = join(destReal, rel);
      if (view.resolve(target)?.type === "dir") continue;
      const st = await ctx.stat(src.pivot ? `${src.pivot}/${rel}` : rel);
      if (!st || st.type !== "dir") continue;
      put({ path: target, type: "dir", mode: chmod ? chmod(st.mode, true) : st.mode, uid: own(st).uid, gid: own(st).gid, mtime: st.mtime, size: 0 });
    }
  }
  if (entry.type === "file") {
    if (src.exclude?.(src.name)) return;
    if (spec.kind === "ADD" && spec.unpack !== false) {
      const open = () => ctx.open(entry.path);
      const kind = await detectArchive(open);
      if (kind) {
        const into = spec.parents && src.parentsPath !== undefined ? join(destReal, posix.dirname(src.parentsPath)) : destReal;
        for await (const e of archiveEntries(open, kind, into, archiveOptions(spec))) put(e);
        return;
      }
    }
    const target = spec.parents && src.parentsPath !== undefined ? join(destReal, src.parentsPath) : destIsDir ? join(destReal, src.name) : destReal;
    putFrom(fileEntry(ctx, entry.path, entry, target, own(entry), chmod), entry.abs, entry.inode);
    return;
  }
  if (entry.type !== "dir") return;
  const targetDir = spec.parents && src.parentsPath !== undefined ? join(destReal, src.parentsPath) : destReal;
  // The directory itself: when COPY creates it, it gets the source directory's metadata; an
  // existing one keeps its own (BuildKit does not overwrite the top directory's metadata).
  const atTarget = targetDir === "" ? undefined : view.resolve(targetDir);
  if (atTarget && atTarget.type !== "dir") {
    throw new KilnError("COPY_DESTINATION_INVALID", `cannot copy directory "${src.source}" to "/${targetDir}": not a directory`);
  }
  const existingDir = targetDir === "" || atTarget !== undefined;
  if (!existingDir) {
    putFrom(
      { path: targetDir, type: "dir", mode: chmod ? chmod(entry.mode, true) : entry.mode, uid: own(entry).uid, gid: own(entry).gid, mtime: entry.mtime, size: 0 },
      entry.abs,
    );
  }
  for await (const e of ctx.walk(entry.path, src.exclude ? { exclude: src.exclude } : {})) {
    const rel = entry.path === "" ? e.path : e.path.slice(entry.path.length + 1);
    const target = join(targetDir, rel);
    const o = own(e);
    if (e.type === "file") putFrom(fileEntry(ctx, e.path, e, target, o, chmod), e.abs, e.inode);
    else if (e.type === "dir") {
      putFrom({ path: target, type: "dir", mode: chmod ? chmod(e.mode, true) : e.mode, uid: o.uid, gid: o.gid, mtime: e.mtime, size: 0 }, e.abs);
    } else {
      put({ path: target, type: "symlink", mode: 0o777, uid: o.uid, gid: o.gid, mtime: e.mtime, size: 0, linkname: e.linkname ?? "" });
    }
  }
}

function fileEntry(
  ctx: SelectedSource["ctx"],
  rel: string,
  st: { mode: number; mtime: number; size: number },
  target: string,
  owner: { uid: number; gid: number },
  chmod: ChmodFn | undefined,
): LayerEntry {
  return {
    path: target,
    type: "file",
    mode: chmod ? chmod(st.mode, false) : st.mode,
    uid: owner.uid,
    gid: owner.gid,
    mtime: st.mtime,
    size: st.size,
    open: ctx.opener(rel),
  };
}

function archiveOptions(spec: CopySpec): { spoolDir: string; chown?: { uid: number; gid: number } } {
  if (!spec.spoolDir) throw new KilnError("INTERNAL", `internal error: a spool directory is needed to unpack archives`);
  return spec.chown ? { spoolDir: spec.spoolDir, chown: spec.chown } : { spoolDir: spec.spoolDir };
}

function countWritten(sources: CopySource[]): number {
  const seen = new Set<string>();
  for (const s of sources) {
    if (s.kind === "context") seen.add(`c:${s.source}`);
    else if (s.kind === "heredoc") seen.add(`h:${s.name}`);
    else seen.add(`u:${s.url ?? s.file.path}`);
  }
  return seen.size;
}

/**
 * `view.resolvePath(path, false)` for clean relative paths, with each parent directory resolved
 * once: resolving a/b/c without following c is resolving a/b fully, then appending c.
 */
function parentResolver(view: LayerView): (path: string) => string {
  const dirs = new Map<string, string>();
  return (path: string): string => {
    const slash = path.lastIndexOf("/");
    if (slash < 0) return view.resolvePath(path, false);
    const dir = path.slice(0, slash);
    const base = path.slice(slash + 1);
    if (base === "" || base === "." || base === "..") return view.resolvePath(path, false);
    let real = dirs.get(dir);
    if (real === undefined) {
      real = view.resolvePath(dir, true);
      dirs.set(dir, real);
    }
    return real === "" ? base : `${real}/${base}`;
  };
}

function clean(p: string): string {
  let n = posix.normalize(`/${p}`).slice(1);
  if (n.endsWith("/")) n = n.slice(0, -1);
  return n === "." ? "" : n;
}

function join(dir: string, name: string): string {
  const n = clean(name);
  if (dir === "") return n;
  return n === "" ? dir : `${dir}/${n}`;
}
