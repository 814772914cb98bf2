// The admin API under /api: read calls, stored requests and deliveries; replay a stored request
// after an adapter fix; retry dead deliveries. Every route needs the admin token as a Bearer.

import type { Context, Hono } from 'hono';
import { RelayError } from '../domain/errors.js';
import type { InboxState } from '../domain/inbox.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { CallRow, DeliveryRow, DeliveryState, InboxRow } from '../store/types.js';
import { bearer, tokenMatches } from './auth.js';

/** A call as the API shows it: the record, and what the store knows about it. */
const callView = (r: CallRow): Record<string, unknown> => ({
  ...r.record,
  updatedAt: r.updatedAt,
  revision: r.revision,
  droppedEvents: r.droppedEvents,
});

export interface AdminOptions {
  pipeline: Pipeline;
  /** Unset: the admin API answers RELAY_ERR_ADMIN_DISABLED. */
  adminToken: string | undefined;
  onDeliveriesDue?: () => void;
}

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

/** ?state=, one of `states` if given. */
function stateParam<S extends string>(c: Context, states: readonly S[]): S | undefined {
  const state = c.req.query('state') as S | undefined;
  if (state !== undefined && !states.includes(state))
    throw new RelayError('RELAY_ERR_BAD_REQUEST', `state must be one of ${states.join(', ')}`);
  return state;
}

/** ?limit= and ?after= (the last id of the previous page) of a listing. */
function page(c: Context): { limit: number; afterId: number } {
  return {
    limit: intParam(c, 'limit', 100, 1, 1000),
    afterId: intParam(c, 'after', 0, 0, Number.MAX_SAFE_INTEGER),
  };
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

export function mountAdmin(app: Hono, opts: AdminOptions): void {
  const { pipeline, adminToken } = opts;
  const store = pipeline.store;

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
    return c.json({ calls: rows.map(callView) });
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
    return c.json(callView(rows[0]!));
  });

  app.get('/api/inbox', async (c) => {
    const rows = await store.listInbox({ state: stateParam(c, INBOX_STATES), ...page(c) });
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
    const rows = await store.listDeliveries({ state: stateParam(c, DELIVERY_STATES), ...page(c) });
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
}
