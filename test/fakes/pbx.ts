// A fake PBX web server that serves call recordings (optionally behind a Bearer token).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { LocalServer } from './local-server.js';

export class FakePbx extends LocalServer {
  readonly files = new Map<string, Buffer>();
  readonly requests: {
    path: string;
    authorization: string | undefined;
    range: string | undefined;
  }[] = [];
  /** Paths served chunked, without Content-Length (as a PBX streaming a file may). */
  readonly chunked = new Set<string>();
  /**
   * Answer a single byte range with 206, one starting past the end with 416 (off: Range is
   * ignored, as some PBX servers do).
   */
  ranges = false;
  /** The WebAPI key makecall answers to, the calls it was asked to place, and its next answer. */
  makecallKey = 'webapi-key-0000';
  readonly placed: { first: string | null; second: string | null; query: string }[] = [];
  makecallAnswer: { status: number; body: string } | undefined;

  constructor(private readonly bearer?: string) {
    super();
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push({
      path: req.url ?? '',
      authorization: req.headers.authorization,
      range: req.headers.range,
    });
    // 3CX WebAPI click-to-call: GET /webapi/<key>/makecall?first=<ext>&second=<number>.
    const mk = /^\/webapi\/([^/]+)\/makecall\?(.*)$/.exec(req.url ?? '');
    if (mk) {
      if (decodeURIComponent(mk[1]!) !== this.makecallKey) {
        res.writeHead(401, { 'content-type': 'text/plain' }).end('Invalid key');
        return;
      }
      const q = new URLSearchParams(mk[2]);
      this.placed.push({ first: q.get('first'), second: q.get('second'), query: mk[2]! });
      const a = this.makecallAnswer ?? {
        status: 200,
        body: JSON.stringify({
          chid: `00000000-01dc-${String(this.placed.length).padStart(4, '0')}-0bdb-88fd0000002f`,
        }),
      };
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
      return;
    }
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
    const m = this.ranges ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '') : null;
    if (m && Number(m[1]) >= f.length) {
      // As a server that answers ranges does: 416, with the size.
      res.writeHead(416, { 'content-range': `bytes */${f.length}` }).end();
      return;
    }
    if (m && Number(m[1]) < f.length) {
      const start = Number(m[1]);
      const end = Math.min(m[2] ? Number(m[2]) : f.length - 1, f.length - 1);
      res.writeHead(206, {
        'content-type': 'audio/mpeg',
        'content-length': String(end - start + 1),
        'content-range': `bytes ${start}-${end}/${f.length}`,
      });
      res.end(f.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { 'content-type': 'audio/mpeg', 'content-length': String(f.length) });
    res.end(f);
  }
}
