// A fake PBX web server that serves call recordings (optionally behind a Bearer token).

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export class FakePbx {
  readonly files = new Map<string, Buffer>();
  readonly requests: { path: string; authorization: string | undefined }[] = [];
  url = '';
  private server!: Server;

  constructor(private readonly bearer?: string) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
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
      res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-length': String(f.length) });
      res.end(f);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}
