// A tiny node:http file server on 127.0.0.1 for ADD <url> tests: serves fixed bodies with a
// Last-Modified header and records the paths requested.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ServedFile {
  body: string | Buffer;
  lastModified?: Date;
}

export interface FileServer {
  /** http://127.0.0.1:PORT (no trailing slash) */
  url: string;
  requests: string[];
  close(): Promise<void>;
}

export async function serveFiles(files: Record<string, ServedFile>): Promise<FileServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    requests.push(path);
    const f = files[path];
    if (!f) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
      return;
    }
    const body = typeof f.body === "string" ? Buffer.from(f.body) : f.body;
    const headers: Record<string, string> = { "content-type": "application/octet-stream", "content-length": String(body.length) };
    if (f.lastModified) headers["last-modified"] = f.lastModified.toUTCString();
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
