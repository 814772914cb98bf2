// A fake PBX web server that serves call recordings (optionally behind a Bearer token).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { LocalServer } from './local-server.js';

export class FakePbx extends LocalServer {
  readonly files = new Map<string, Buffer>();
  readonly requests: { path: string; authorization: string | undefined }[] = [];
  /** Paths served chunked, without Content-Length (as a PBX streaming a file may). */
  readonly chunked = new Set<string>();

  constructor(private readonly bearer?: string) {
    super();
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
    if (this.bearer && req.headers.authorization !== `Bearer ${this.bearer}`) {
      res.writeHead(401).end();
      return;
    }
    const f = this.files.get(req.url ?? '');
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    if (this.chunked.has(req.url ?? '')) {
      res.writeHead(200, { 'content-type': 'audio/mpeg' });
      for (let at = 0; at < f.length; at += 1024) res.write(f.subarray(at, at + 1024));
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-length': String(f.length) });
    res.end(f);
  }
}
