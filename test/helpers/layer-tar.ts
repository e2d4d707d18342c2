// Reads the entries of a gzipped layer blob (with tar-stream, not kiln's code) and writes small
// tar archives by hand for tests — including hostile ones (../ names, absolute names, links).
import { createReadStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createGunzip } from "node:zlib";
import * as tar from "tar-stream";

export interface LayerTarEntry {
  name: string;
  type: string;
  linkname?: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
}

/** Every header in a gzipped tar blob, in order (contents are drained, not kept). */
export async function listLayer(blobPath: string): Promise<LayerTarEntry[]> {
  const entries: LayerTarEntry[] = [];
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (h, stream, next) => {
      entries.push({
        name: h.name,
        type: h.type ?? "file",
        ...(h.linkname ? { linkname: h.linkname } : {}),
        size: h.size ?? 0,
        mode: h.mode ?? 0,
        uid: h.uid ?? 0,
        gid: h.gid ?? 0,
      });
      stream.on("end", () => next());
      stream.resume();
    });
    extract.on("finish", resolve);
    extract.on("error", reject);
  });
  createReadStream(blobPath).pipe(createGunzip()).pipe(extract);
  await done;
  return entries;
}

export interface HandTarMember {
  name: string;
  type?: "file" | "directory" | "symlink" | "link";
  content?: string;
  linkname?: string;
  mode?: number;
}

/** Writes an uncompressed tar with exactly these headers (names are not sanitised). */
export async function writeTar(path: string, members: HandTarMember[]): Promise<void> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const m of members) {
    const type = m.type ?? "file";
    const content = Buffer.from(m.content ?? "");
    const header: Partial<tar.Header> & { name: string } = {
      name: m.name,
      type,
      size: type === "file" ? content.length : 0,
      mode: m.mode ?? (type === "directory" ? 0o755 : 0o644),
      mtime: new Date(1_600_000_000_000),
      uid: 0,
      gid: 0,
      ...(m.linkname ? { linkname: m.linkname } : {}),
    };
    if (type === "file") pack.entry(header, content);
    else pack.entry(header, "");
  }
  pack.finalize();
  await collected;
  await writeFile(path, Buffer.concat(chunks));
}
