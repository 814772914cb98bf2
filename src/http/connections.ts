// Limits below the app, on the Node server itself, so that slow or greedy clients cannot take
// the connections webhooks need (issue 20, item 5): at most server.maxConnectionsPerAddress open
// connections per peer address (trusted proxies, which everyone comes through, are exempt and
// bounded by server.maxConnections only), and a request body that stops arriving for
// server.bodyIdleSec is cut with 408 rather than held until the whole request's deadline.
// Headers have their own deadline already (Node's headersTimeout, set in runtime.ts).

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { RelayError } from '../domain/errors.js';
import { plainAddress } from '../lib/ips.js';

export interface ConnectionLimits {
  /** Open connections one peer address may hold. */
  perAddress: number;
  /** Peers exempt from perAddress (server.trustProxy). */
  trusted: (address: string) => boolean;
  /** How long a request body may go without a byte arriving. */
  bodyIdleMs: number;
  /** A connection was refused or a request cut, by why (for a metric). */
  onRefused?: (reason: 'per_address' | 'body_idle') => void;
}

/**
 * Node's own 408 (requestTimeout) is a bare status line; this one says why, in the catalogue's
 * words. Written to the socket directly: the app is still waiting for the body and has answered
 * nothing.
 */
function bodyTimeoutResponse(): string {
  const body = JSON.stringify(new RelayError('RELAY_ERR_BODY_INCOMPLETE').toJSON());
  return (
    'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

export function limitConnections(server: Server, limits: ConnectionLimits): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = plainAddress(socket.remoteAddress ?? '');
    if (limits.trusted(address)) return;
    const n = open.get(address) ?? 0;
    if (n >= limits.perAddress) {
      limits.onRefused?.('per_address');
      socket.destroy();
      return;
    }
    open.set(address, n + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
  });

  // Bodies under way, looked at a few times per idle period by one timer (none while there are
  // none): what counts is the socket's bytes, which Node's parser reads whether or not the app has
  // read the body yet.
  interface Watched {
    req: IncomingMessage;
    res: ServerResponse;
    last: number;
    lastAt: number;
  }
  const watched = new Set<Watched>();
  let timer: NodeJS.Timeout | undefined;
  const sweep = (): void => {
    const now = Date.now();
    for (const w of watched) {
      const socket = w.req.socket;
      if (w.req.complete || w.res.writableEnded || socket.destroyed) watched.delete(w);
      else if (socket.bytesRead !== w.last) {
        w.last = socket.bytesRead;
        w.lastAt = now;
      } else if (now - w.lastAt >= limits.bodyIdleMs) {
        watched.delete(w);
        limits.onRefused?.('body_idle');
        if (!w.res.headersSent) socket.write(bodyTimeoutResponse());
        socket.destroy();
      }
    }
    if (!watched.size) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  const step = Math.max(50, Math.min(1000, Math.floor(limits.bodyIdleMs / 4)));
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // No body to wait for (most GETs, HEADs): nothing to watch.
    if (!req.headers['transfer-encoding'] && !Number(req.headers['content-length'])) return;
    watched.add({ req, res, last: req.socket.bytesRead, lastAt: Date.now() });
    if (!timer) {
      timer = setInterval(sweep, step);
      timer.unref();
    }
  });
}
