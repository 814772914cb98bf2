// The HTTP face of the relay, built without listening (tests and `start` both use it):
// webhook ingest on /hooks/<source>[/<token>], /healthz, /readyz and the admin API under /api.
// Every error leaves through onError as `{ error: { code, message } }` from the catalogue.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Hono, type Context } from 'hono';
import { RelayError } from '../domain/errors.js';
import type { RawRequest } from '../domain/request.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { DeliveryRow, DeliveryState, InboxRow } from '../store/types.js';
import { silentLogger, type Logger } from '../telemetry/log.js';
import type { InboxState } from '../domain/inbox.js';

export interface AppOptions {
  pipeline: Pipeline;
  bodyLimit: number;
  adminToken: string | undefined;
  log?: Logger;
  /** Set while shutting down: new webhooks get 503 so that the sender retries elsewhere. */
  isDraining?: () => boolean;
  /** Deliveries were made due (a retry): look for work now. */
  onDeliveriesDue?: () => void;
}

/** The few request headers worth keeping with a webhook (never Authorization). */
const KEPT_HEADERS = [
  'content-type',
  'content-length',
  'user-agent',
  'x-forwarded-for',
  'x-real-ip',
  'x-request-id',
];

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export function tokenMatches(given: string | undefined, expected: string): boolean {
  return given !== undefined && timingSafeEqual(digest(given), digest(expected));
}

function bearer(c: Context): string | undefined {
  const h = c.req.header('authorization');
  const m = h ? /^Bearer\s+(.+)$/i.exec(h) : null;
  return m?.[1]?.trim();
}

function decodeQueryPart(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s; // a malformed %-sequence stays as sent
  }
}

/** The raw query string without any `token` parameter, otherwise byte for byte. */
export function queryWithoutToken(url: string): { query: string; token: string | undefined } {
  const q = url.includes('?') ? url.slice(url.indexOf('?') + 1).split('#')[0]! : '';
  let token: string | undefined;
  const kept = q
    .split('&')
    .filter((part) => {
      if (!part) return false;
      const eq = part.indexOf('=');
      const key = decodeQueryPart(eq < 0 ? part : part.slice(0, eq));
      if (key !== 'token') return true;
      token = decodeQueryPart(eq < 0 ? '' : part.slice(eq + 1));
      return false;
    })
    .join('&');
  return { query: kept, token };
}

async function readBody(c: Context, limit: number): Promise<Buffer> {
  const declared = Number(c.req.header('content-length'));
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  // On @hono/node-server, read the Node stream itself: touching c.req.raw.body would build a web
  // Request, AbortSignal and ReadableStream per webhook, for nothing.
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming) return readNodeBody(incoming, limit);
  const body = c.req.raw.body;
  if (!body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}

function readNodeBody(incoming: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        // Stop reading but keep the socket, so that the 413 can still be sent.
        cleanup();
        incoming.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
    };
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
  });
}

const tooLarge = (limit: number): RelayError =>
  new RelayError(
    'RELAY_ERR_BODY_TOO_LARGE',
    `request body over the limit of ${limit} bytes (server.bodyLimit)`,
  );

function intParam(c: Context, name: string, dflt: number, min: number, max: number): number {
  const v = c.req.query(name);
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new RelayError(
      'RELAY_ERR_BAD_REQUEST',
      `${name} must be a whole number from ${min} to ${max}`,
    );
  return n;
}

function inboxSummary(r: InboxRow): Record<string, unknown> {
  return {
    id: r.id,
    source: r.source,
    kind: r.kind,
    receivedAt: r.receivedAt,
    method: r.method,
    contentType: r.contentType,
    size: r.body.length,
    state: r.state,
    rule: r.rule,
    reason: r.reasonCode ? { code: r.reasonCode, message: r.reason } : null,
    replays: r.replays,
  };
}

const INBOX_STATES: InboxState[] = ['pending', 'applied', 'unmapped', 'ignored'];
const DELIVERY_STATES: DeliveryState[] = ['due', 'done', 'dead'];

function deliveryView(d: DeliveryRow): Record<string, unknown> {
  return { ...d, id: `dl-${d.id}` };
}

export function createApp(opts: AppOptions): Hono {
  const { pipeline, bodyLimit, adminToken } = opts;
  const log = opts.log ?? silentLogger;
  const store = pipeline.store;
  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof RelayError) {
      if (err.headers) for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return c.json(err.toJSON(), err.status as 400);
    }
    log.error({ err: err.message, path: c.req.path }, 'unexpected error');
    return c.json(new RelayError('RELAY_ERR_INTERNAL').toJSON(), 500);
  });
  app.notFound(() => {
    throw new RelayError('RELAY_ERR_NOT_FOUND');
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    if (opts.isDraining?.()) throw new RelayError('RELAY_ERR_STORE_UNAVAILABLE', 'shutting down');
    try {
      await store.checkWritable();
    } catch (err) {
      throw new RelayError(
        'RELAY_ERR_STORE_UNAVAILABLE',
        `the store is not writable: ${(err as Error).message}`,
      );
    }
    return c.json({ status: 'ready', store: store.backend });
  });

  const hook = async (c: Context): Promise<Response> => {
    const name = c.req.param('source')!;
    const src = pipeline.sources.get(name);
    if (!src) throw new RelayError('RELAY_ERR_UNKNOWN_SOURCE', `no source "${name}" in relay.yaml`);
    const { query, token: queryToken } = queryWithoutToken(c.req.url);
    const given = c.req.param('token') ?? bearer(c) ?? queryToken;
    if (!tokenMatches(given, src.token)) {
      throw new RelayError(
        'RELAY_ERR_UNAUTHORIZED',
        given === undefined
          ? 'missing token: put it in the URL path, as Authorization: Bearer, or as ?token='
          : 'wrong token',
      );
    }
    if (opts.isDraining?.())
      throw new RelayError('RELAY_ERR_STORE_UNAVAILABLE', 'shutting down; retry', {
        headers: { 'retry-after': '1' },
      });
    const body = c.req.method === 'GET' ? Buffer.alloc(0) : await readBody(c, bodyLimit);
    const headers: Record<string, string> = {};
    for (const h of KEPT_HEADERS) {
      const v = c.req.header(h);
      if (v !== undefined) headers[h] = v;
    }
    const req: RawRequest = {
      source: name,
      kind: 'webhook',
      receivedAt: new Date().toISOString(),
      method: c.req.method,
      query,
      contentType: c.req.header('content-type') ?? null,
      headers,
      body,
    };
    const { id, result } = await pipeline.ingest(req);
    if (result.status === 'mapped') {
      return c.json({
        ok: true,
        id,
        status: 'mapped',
        rule: result.rule,
        events: result.events.map((e) => ({ type: e.type, callId: e.callId ?? null })),
      });
    }
    if (result.status === 'ignored')
      return c.json({ ok: true, id, status: 'ignored', rule: result.rule });
    log.warn(
      { id, source: name, code: result.code, reason: result.message },
      'stored an unmapped request',
    );
    return c.json({
      ok: true,
      id,
      status: 'unmapped',
      reason: { code: result.code, message: result.message },
    });
  };
  app.on(['GET', 'POST'], ['/hooks/:source', '/hooks/:source/:token'], hook);
  app.all('/hooks/*', (c) => {
    c.header('allow', 'GET, POST');
    throw new RelayError(
      'RELAY_ERR_METHOD_NOT_ALLOWED',
      `${c.req.method} is not accepted on webhooks; use GET or POST`,
    );
  });

  // Admin API: read calls and stored requests, replay after an adapter fix.
  app.use('/api/*', async (c, next) => {
    if (!adminToken) throw new RelayError('RELAY_ERR_ADMIN_DISABLED');
    if (!tokenMatches(bearer(c), adminToken))
      throw new RelayError(
        'RELAY_ERR_UNAUTHORIZED',
        'the admin API needs Authorization: Bearer <admin.token>',
      );
    await next();
  });

  app.get('/api/calls', async (c) => {
    const limit = intParam(c, 'limit', 50, 1, 500);
    const since = c.req.query('since');
    if (since !== undefined && Number.isNaN(Date.parse(since)))
      throw new RelayError('RELAY_ERR_BAD_REQUEST', 'since must be an ISO-8601 time');
    const rows = await store.listCalls({
      limit,
      since: since && new Date(since).toISOString(),
      source: c.req.query('source'),
    });
    return c.json({
      calls: rows.map((r) => ({ ...r.record, updatedAt: r.updatedAt, revision: r.revision })),
    });
  });

  app.get('/api/calls/:callId', async (c) => {
    const rows = await store.getCalls(c.req.param('callId'), c.req.query('source'));
    if (!rows.length)
      throw new RelayError('RELAY_ERR_CALL_NOT_FOUND', `no call "${c.req.param('callId')}"`);
    if (rows.length > 1) {
      throw new RelayError(
        'RELAY_ERR_AMBIGUOUS_CALL',
        `sources ${rows.map((r) => r.record.source).join(', ')} each have call "${c.req.param('callId')}"; add ?source=`,
      );
    }
    const r = rows[0]!;
    return c.json({ ...r.record, updatedAt: r.updatedAt, revision: r.revision });
  });

  app.get('/api/inbox', async (c) => {
    const state = c.req.query('state') as InboxState | undefined;
    if (state !== undefined && !INBOX_STATES.includes(state))
      throw new RelayError(
        'RELAY_ERR_BAD_REQUEST',
        `state must be one of ${INBOX_STATES.join(', ')}`,
      );
    const rows = await store.listInbox({
      state,
      limit: intParam(c, 'limit', 100, 1, 1000),
      afterId: intParam(c, 'after', 0, 0, Number.MAX_SAFE_INTEGER),
    });
    return c.json({ requests: rows.map(inboxSummary), counts: await store.countInbox() });
  });

  const inboxRow = async (c: Context): Promise<InboxRow> => {
    const id = Number(c.req.param('id'));
    const row = Number.isInteger(id) ? await store.getInbox(id) : undefined;
    if (!row)
      throw new RelayError('RELAY_ERR_INBOX_NOT_FOUND', `no stored request ${c.req.param('id')}`);
    return row;
  };

  app.get('/api/inbox/:id', async (c) => {
    const row = await inboxRow(c);
    const text = row.body.toString('utf8');
    const isText = Buffer.from(text, 'utf8').equals(row.body);
    return c.json({
      ...inboxSummary(row),
      query: row.query,
      headers: row.headers,
      body: isText ? text : null,
      bodyBase64: isText ? null : row.body.toString('base64'),
    });
  });

  app.post('/api/inbox/:id/replay', async (c) => {
    const row = await inboxRow(c);
    const result = await pipeline.replay(row);
    return c.json({
      id: row.id,
      status: result.status,
      rule: result.rule ?? null,
      reason: result.status === 'unmapped' ? { code: result.code, message: result.message } : null,
    });
  });

  app.get('/api/deliveries', async (c) => {
    const state = c.req.query('state') as DeliveryState | undefined;
    if (state !== undefined && !DELIVERY_STATES.includes(state))
      throw new RelayError(
        'RELAY_ERR_BAD_REQUEST',
        `state must be one of ${DELIVERY_STATES.join(', ')}`,
      );
    const rows = await store.listDeliveries({
      state,
      limit: intParam(c, 'limit', 100, 1, 1000),
      afterId: intParam(c, 'after', 0, 0, Number.MAX_SAFE_INTEGER),
    });
    return c.json({ deliveries: rows.map(deliveryView) });
  });

  app.post('/api/deliveries/retry', async (c) => {
    const retried = await store.retryDeliveries('dead');
    opts.onDeliveriesDue?.();
    return c.json({ retried });
  });

  app.post('/api/deliveries/:id/retry', async (c) => {
    const id = Number(c.req.param('id').replace(/^dl-/, ''));
    const row = Number.isInteger(id) ? await store.getDelivery(id) : undefined;
    if (!row)
      throw new RelayError('RELAY_ERR_DELIVERY_NOT_FOUND', `no delivery ${c.req.param('id')}`);
    const retried = await store.retryDeliveries([id]);
    opts.onDeliveriesDue?.();
    return c.json({ retried, delivery: deliveryView((await store.getDelivery(id))!) });
  });

  return app;
}
