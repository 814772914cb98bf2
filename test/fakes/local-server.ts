// What every fake server shares: listening on 127.0.0.1 on a free port, closing, and (for CRM
// fakes) the log of requests with the counts the tests ask for.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export abstract class LocalServer {
  url = '';
  private server!: Server;
  /** Appended to the base URL (e.g. "/events"). */
  protected readonly path: string = '';

  protected abstract handle(req: IncomingMessage, res: ServerResponse): void | Promise<void>;

  async start(): Promise<this> {
    // A client that aborts mid-request (the relay cutting an upload short) ends that exchange
    // only, as it would on a real server.
    this.server = createServer((req, res) => {
      Promise.resolve()
        .then(() => this.handle(req, res))
        .catch(() => res.destroy());
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${this.path}`;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A request read whole; `body` is its JSON when it parses, else its text (undefined if empty). */
export interface ReadRequest {
  method: string;
  url: URL;
  query: Record<string, string>;
  raw: string;
  body: unknown;
}

export async function readRequest(req: IncomingMessage): Promise<ReadRequest> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks).toString();
  const url = new URL(req.url ?? '/', 'http://x');
  let body: unknown;
  if (raw) {
    try {
      body = JSON.parse(raw);
    } catch {
      body = raw;
    }
  }
  return {
    method: req.method ?? 'GET',
    url,
    query: Object.fromEntries(url.searchParams),
    raw,
    body,
  };
}

export abstract class CrmFake extends LocalServer {
  /** Every request: method, path, and the status it was answered with. */
  readonly log: { method: string; path: string; status: number }[] = [];

  count(method: string, prefix: string): number {
    return this.log.filter((l) => l.method === method && l.path.startsWith(prefix)).length;
  }

  get tooManyRequests(): number {
    return this.log.filter((l) => l.status === 429).length;
  }
}

/**
 * mulberry32: a small seeded generator, so that a fake's random faults fall the same way on every
 * run of a test (and a failing run can be repeated).
 */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
