// Limits below the app, on the Node server itself, so that slow or greedy clients cannot take
// the connections webhooks need (issue 20, item 5): at most server.maxConnectionsPerAddress open
// connections per client (an IPv4 address or an IPv6 /64; trusted proxies, which everyone comes
// through, are exempt and bounded by server.maxConnections only); with every connection taken, a
// newcomer takes the place of one that has held its place a while without a request (headers
// still dribbling in, or idle); the last server.webhookReserve connections serve webhooks (and
// health probes) only; and a request body that stops arriving for server.bodyIdleSec, or
// arrives slower than server.bodyMinRate on average, is cut with 408 rather than held until the
// whole request's deadline. Headers have their own deadline too (Node's headersTimeout, set in
// runtime.ts).

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { RelayError } from '../domain/errors.js';
import { clientKey } from '../lib/ips.js';

export type RefusedReason = 'per_address' | 'body_idle' | 'body_slow' | 'reserved' | 'evicted';

/** How long a socket may hold its place without a request before a newcomer may take it. */
const IDLE_EVICT_MS = 1000;

export interface ConnectionLimits {
  /** Open connections one client (IPv4 address, IPv6 /64) may hold. */
  perAddress: number;
  /** Peers exempt from perAddress (server.trustProxy). */
  trusted: (address: string) => boolean;
  /** How long a request body may go without a byte arriving; also the grace of bodyMinRate. */
  bodyIdleMs: number;
  /** Bytes a second a body must average after its grace (0: no minimum). */
  bodyMinRate: number;
  /** Open connections at most: a newcomer beyond takes an idle one's place, or is refused. */
  maxConnections: number;
  /** Of maxConnections, how many only webhooks (and health probes) may use. */
  reserve: number;
}

export interface ConnectionLimiter {
  /** New settings (a reload); connections already open keep how they were counted. */
  set(limits: Partial<ConnectionLimits>): void;
}

/** server.webhookReserve as a count: a number is one, "25%" a share of maxConnections. */
export function reserveCount(setting: number | string, maxConnections: number): number {
  const n =
    typeof setting === 'number'
      ? setting
      : Math.floor((maxConnections * Number(setting.replace('%', ''))) / 100);
  return Math.max(0, Math.min(maxConnections - 1, n));
}

/** What may use the reserved connections: webhooks, and the probes that route them. */
function reservedFor(url: string | undefined): boolean {
  // Origin-form ("/hooks/...") as every client sends; an absolute form is looked at by its path.
  const path = url?.startsWith('/') ? url : url ? new URL(url, 'http://relay').pathname : '';
  return path.startsWith('/hooks/') || /^\/(healthz|readyz)(\?|$)/.test(path);
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

const BUSY = new RelayError('RELAY_ERR_BUSY');
const BUSY_BODY = JSON.stringify(BUSY.toJSON());

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export function limitConnections(
  server: Server,
  initial: ConnectionLimits,
  onRefused?: (reason: RefusedReason) => void,
): ConnectionLimiter {
  const limits = { ...initial };
  // Node's own ceiling would drop a newcomer before anyone sees it; the ceiling is kept here
  // instead, so that a newcomer can take the place of a socket that holds one without using it.
  server.maxConnections = Number.POSITIVE_INFINITY;
  const live = new Set<Socket>();
  // Sockets with no request under way (headers not yet in, or idle between requests), oldest
  // first, and since when; a TLS request's socket is found by its peer's address and port.
  const waiting = new Map<Socket, number>();
  const byPeer = new Map<string, Socket>();
  const peerOf = (s: Socket): string => `${s.remoteAddress}|${s.remotePort}`;
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    // Over its client's share: refused before it counts for anything (or takes anyone's place).
    const address = socket.remoteAddress ?? '';
    const key = limits.trusted(address) ? undefined : clientKey(address);
    if (key !== undefined && (open.get(key) ?? 0) >= limits.perAddress) {
      onRefused?.('per_address');
      socket.destroy();
      return;
    }
    if (live.size >= limits.maxConnections && !evictIdle()) {
      socket.destroy();
      return;
    }
    live.add(socket);
    waiting.set(socket, Date.now());
    const peer = peerOf(socket);
    byPeer.set(peer, socket);
    if (key !== undefined) open.set(key, (open.get(key) ?? 0) + 1);
    socket.once('close', () => {
      live.delete(socket);
      waiting.delete(socket);
      if (byPeer.get(peer) === socket) byPeer.delete(peer);
      if (key === undefined) return;
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
    });
  });
  /**
   * Every connection is taken: close the one that has waited longest without a request under
   * way, if that is over a second (a sender sends its headers at once; a slowloris dribbling
   * them, from however many addresses, holds its place only until someone needs it).
   */
  const evictIdle = (): boolean => {
    const now = Date.now();
    for (const [socket, since] of waiting) {
      if (now - since < IDLE_EVICT_MS) return false;
      waiting.delete(socket);
      live.delete(socket);
      onRefused?.('evicted');
      socket.destroy();
      return true;
    }
    return false;
  };
  const busy = (req: IncomingMessage, res: ServerResponse): void => {
    const raw = live.has(req.socket) ? req.socket : byPeer.get(peerOf(req.socket));
    if (!raw) return;
    waiting.delete(raw);
    res.once('finish', () => {
      if (live.has(raw)) waiting.set(raw, Date.now());
    });
  };

  // The app's own listener (hono's) gets a request only if it may have a connection: a request
  // refused here is answered without the app ever seeing it, so it does nothing.
  const app = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  // Requests other than webhooks under way: they may hold maxConnections - reserve at most.
  // (Sockets without a request under way give up their place anyway, above.)
  let others = 0;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const other = !reservedFor(req.url);
    if (other && limits.reserve > 0 && others >= limits.maxConnections - limits.reserve) {
      onRefused?.('reserved');
      // Connection: close makes Node close the socket once this is written, body read or not.
      res.writeHead(BUSY.status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(BUSY_BODY),
        'retry-after': '5',
        connection: 'close',
      });
      res.end(BUSY_BODY);
      return;
    }
    if (other) {
      others++;
      res.once('close', () => others--);
    }
    busy(req, res);
    watch(req, res);
    for (const listener of app) listener.call(server, req, res);
  });

  // Bodies under way, looked at a few times per idle period by one timer (none while there are
  // none): what counts is the socket's bytes, which Node's parser reads whether or not the app has
  // read the body yet.
  interface Watched {
    req: IncomingMessage;
    res: ServerResponse;
    startBytes: number;
    startAt: number;
    last: number;
    lastAt: number;
  }
  const watched = new Set<Watched>();
  let timer: NodeJS.Timeout | undefined;
  const cut = (w: Watched, reason: 'body_idle' | 'body_slow'): void => {
    watched.delete(w);
    onRefused?.(reason);
    if (!w.res.headersSent) w.req.socket.write(bodyTimeoutResponse());
    w.req.socket.destroy();
  };
  const sweep = (): void => {
    const now = Date.now();
    for (const w of watched) {
      const socket = w.req.socket;
      if (w.req.complete || w.res.writableEnded || socket.destroyed) {
        watched.delete(w);
        continue;
      }
      if (socket.bytesRead !== w.last) {
        w.last = socket.bytesRead;
        w.lastAt = now;
      } else if (now - w.lastAt >= limits.bodyIdleMs) {
        cut(w, 'body_idle');
        continue;
      }
      // As Apache's mod_reqtimeout (body=N,MinRate=R): a grace of bodyIdleSec, then one more
      // second for every bodyMinRate bytes that arrived. A byte a second keeps the idle deadline
      // away for ever, but not this one.
      if (
        limits.bodyMinRate > 0 &&
        now - w.startAt > limits.bodyIdleMs + ((w.last - w.startBytes) / limits.bodyMinRate) * 1000
      )
        cut(w, 'body_slow');
    }
    if (!watched.size) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  const watch = (req: IncomingMessage, res: ServerResponse): void => {
    // No body to wait for (most GETs, HEADs): nothing to watch.
    if (!req.headers['transfer-encoding'] && !Number(req.headers['content-length'])) return;
    const now = Date.now();
    const bytes = req.socket.bytesRead;
    watched.add({ req, res, startBytes: bytes, startAt: now, last: bytes, lastAt: now });
    if (!timer) {
      const step = Math.max(50, Math.min(1000, Math.floor(limits.bodyIdleMs / 4)));
      timer = setInterval(sweep, step);
      timer.unref();
    }
  };

  return {
    set(next) {
      Object.assign(limits, next);
    },
  };
}
