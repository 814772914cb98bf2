// The admin API under /api: read calls (with their deliveries and every attempt), stored requests
// and deliveries; replay a stored request after an adapter fix; retry or deliver again; backfill a
// target. Every route needs the admin token as a Bearer; every answer is scrubbed of secrets.

import type { Context, Hono } from 'hono';
import { deliveryBadge } from '../domain/delivery.js';
import type { LookupAnswer } from '../domain/callerid.js';
import type { DialRequest, DialResult } from '../domain/dial.js';
import { RelayError } from '../domain/errors.js';
import type { InboxState } from '../domain/inbox.js';
import type { Redactor } from '../lib/redact.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type {
  AttemptRow,
  CallQuery,
  CallRow,
  DeliveryRow,
  DeliveryState,
  InboxRow,
} from '../store/types.js';
import { backfillAll } from '../store/backfill.js';
import { deliveriesWithAttempts } from '../store/delivery-views.js';
import { bearer } from './auth.js';
import type { AuthGate } from './gate.js';
import type { ConsoleTarget } from './console/types.js';

/** A call as the API shows it: the record, and what the store knows about it. */
const callView = (r: CallRow): Record<string, unknown> => ({
  ...r.record,
  updatedAt: r.updatedAt,
  revision: r.revision,
  droppedEvents: r.droppedEvents,
});

export interface AdminOptions {
  pipeline: Pipeline;
  /** The admin token (unset: RELAY_ERR_ADMIN_DISABLED) and the throttle for wrong ones. */
  gate: AuthGate;
  /** Click-to-call (runtime.ts): asks the PBX, stores its answer as the call's origin. */
  dial?: (req: DialRequest) => Promise<DialResult>;
  /** What 3CX's CRM lookup answers a source for a number (sources[].crm; callerid/). */
  crmLookup?: (source: string, number: string) => Promise<LookupAnswer>;
  onDeliveriesDue?: () => void;
  redact: Redactor;
  targets: ConsoleTarget[];
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
const DELIVERY_STATES: (DeliveryState | 'retrying')[] = ['due', 'retrying', 'done', 'dead'];
const DIRECTIONS = ['inbound', 'outbound'] as const;
const OUTCOMES = ['answered', 'missed', 'busy', 'failed'] as const;

function attemptView(a: AttemptRow): Record<string, unknown> {
  return { ...a, id: `at-${a.id}`, deliveryId: `dl-${a.deliveryId}` };
}

/** ?name= as an ISO time, if given. */
function timeParam(c: Context, name: string): string | undefined {
  const v = c.req.query(name);
  if (v === undefined || v === '') return undefined;
  if (Number.isNaN(Date.parse(v)))
    throw new RelayError('RELAY_ERR_BAD_REQUEST', `${name} must be an ISO-8601 time`);
  return new Date(v).toISOString();
}

function oneOf<T extends string>(c: Context, name: string, values: readonly T[]): T | undefined {
  const v = c.req.query(name);
  if (v === undefined || v === '') return undefined;
  if (!values.includes(v as T))
    throw new RelayError('RELAY_ERR_BAD_REQUEST', `${name} must be one of ${values.join(', ')}`);
  return v as T;
}

/** The call list's filters from the query string (the console's form uses the same names). */
export function callQuery(c: Context, maxLimit = 500): CallQuery {
  const before = c.req.query('before');
  let cursor: CallQuery['before'];
  if (before) {
    const [updatedAt, source, callId] = before.split('|');
    if (!updatedAt || Number.isNaN(Date.parse(updatedAt)) || !source || callId === undefined)
      throw new RelayError(
        'RELAY_ERR_BAD_REQUEST',
        'before must be the `next` cursor of the previous page',
      );
    cursor = { updatedAt, source, callId };
  }
  const text = (name: string): string | undefined => c.req.query(name)?.trim() || undefined;
  return {
    limit: intParam(c, 'limit', 50, 1, maxLimit),
    since: timeParam(c, 'since'),
    source: text('source'),
    direction: oneOf(c, 'direction', DIRECTIONS),
    outcome: oneOf(c, 'outcome', OUTCOMES),
    agent: text('agent'),
    number: text('number')?.replace(/\D/g, '') || undefined,
    from: timeParam(c, 'from'),
    to: timeParam(c, 'to'),
    before: cursor,
  };
}

/** The cursor of the page after `rows` (null: this was the last page). */
export function nextCursor(rows: CallRow[], limit: number): string | null {
  const last = rows.at(-1);
  return rows.length === limit && last
    ? `${last.updatedAt}|${last.record.source}|${last.record.callId}`
    : null;
}

/** A CRM lookup as 3CX would show it: the caller's name, company and contact link, and how. */
export interface CrmProbeView {
  number: string;
  e164: string | null;
  found: boolean;
  shown: { name: string; company: string; contactUrl: string } | null;
  target: string | null;
  result: LookupAnswer['result'];
  cached: boolean;
  ms: number;
  contact: LookupAnswer['contacts'][number] | null;
}

export function crmProbeView(number: string, a: LookupAnswer): CrmProbeView {
  const c = a.contacts[0];
  const name = c ? [c.firstName, c.lastName].filter(Boolean).join(' ') : '';
  return {
    number,
    e164: a.e164 ?? null,
    found: !!c,
    shown: c ? { name: name || c.company, company: c.company, contactUrl: c.url } : null,
    target: a.target,
    result: a.result,
    cached: a.cached,
    ms: a.ms,
    contact: c ?? null,
  };
}

export function mountAdmin(app: Hono, opts: AdminOptions): void {
  const { pipeline, gate, redact } = opts;
  const store = pipeline.store;
  // Looked up per answer: a reload replaces the list's entries.
  const targets = { get: (name: string) => opts.targets.find((t) => t.name === name) };
  // Every answer leaves scrubbed: a CRM may echo a token into an error that is stored.
  const send = (c: Context, body: unknown): Response => c.json(redact.value(body));

  const deliveryView = (d: DeliveryRow): Record<string, unknown> => ({
    ...d,
    id: `dl-${d.id}`,
    retrying: deliveryBadge(d).kind === 'retrying',
    badge: deliveryBadge(d),
    // A dry run's copy is the sandbox's: no CRM has it (splitRemote keeps the real ids apart).
    crm: (!d.dryRun && targets.get(d.target)?.link(d.remote)) || null,
  });

  app.use('/api/*', async (c, next) => {
    // Answers carry calls, numbers and stored requests: no browser or proxy keeps them, errors
    // included.
    c.header('cache-control', 'no-store');
    const token = gate.settings.adminToken;
    if (!token) throw new RelayError('RELAY_ERR_ADMIN_DISABLED');
    // The right token always gets in; wrong ones are counted, slowed, then refused for a while.
    if (!(await gate.check(c, 'api', bearer(c), token)))
      throw new RelayError(
        'RELAY_ERR_UNAUTHORIZED',
        'the admin API needs Authorization: Bearer <admin.token>',
      );
    await next();
    c.res.headers.set('cache-control', 'no-store');
  });

  app.get('/api/calls', async (c) => {
    const q = callQuery(c);
    const rows = await store.listCalls(q);
    const deliveries = await store.deliveriesOf(
      rows.map((r) => ({ source: r.record.source, callId: r.record.callId })),
    );
    const of = (r: CallRow): Record<string, unknown>[] =>
      deliveries
        .filter((d) => d.source === r.record.source && d.callId === r.record.callId)
        .map(deliveryView);
    return send(c, {
      calls: rows.map((r) => ({ ...callView(r), deliveries: of(r) })),
      next: nextCursor(rows, q.limit),
    });
  });

  const oneCall = async (c: Context): Promise<CallRow> => {
    const rows = await store.getCalls(c.req.param('callId')!, c.req.query('source'));
    if (!rows.length)
      throw new RelayError('RELAY_ERR_CALL_NOT_FOUND', `no call "${c.req.param('callId')}"`);
    if (rows.length > 1) {
      throw new RelayError(
        'RELAY_ERR_AMBIGUOUS_CALL',
        `sources ${rows.map((r) => r.record.source).join(', ')} each have call "${c.req.param('callId')}"; add ?source=`,
      );
    }
    return rows[0]!;
  };

  app.get('/api/calls/:callId', async (c) => send(c, callView(await oneCall(c))));

  app.get('/api/calls/:callId/deliveries', async (c) => {
    const call = await oneCall(c);
    const rows = await deliveriesWithAttempts(
      store,
      [{ source: call.record.source, callId: call.record.callId }],
      intParam(c, 'attempts', 50, 0, 1000),
    );
    const out = rows.map((r) => ({
      ...deliveryView(r.delivery),
      attempts: r.attempts.map(attemptView),
    }));
    return send(c, { deliveries: out });
  });

  app.get('/api/inbox', async (c) => {
    const rows = await store.listInbox({
      state: stateParam(c, INBOX_STATES),
      source: c.req.query('source') || undefined,
      ...page(c),
    });
    return send(c, { requests: rows.map(inboxSummary), counts: await store.countInbox() });
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
    return send(c, {
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
    return send(c, {
      id: row.id,
      status: result.status,
      rule: result.rule ?? null,
      reason: result.status === 'unmapped' ? { code: result.code, message: result.message } : null,
    });
  });

  app.get('/api/deliveries', async (c) => {
    const rows = await store.listDeliveries({
      state: stateParam(c, DELIVERY_STATES),
      target: c.req.query('target') || undefined,
      ...page(c),
    });
    return send(c, { deliveries: rows.map(deliveryView) });
  });

  app.get('/api/stats', async (c) => send(c, await store.stats()));

  // Click-to-call: the PBX rings the agent, then dials the number; the call's webhooks follow.
  app.post('/api/dial', async (c) => {
    if (!opts.dial) throw new RelayError('RELAY_ERR_NOT_FOUND', 'click-to-call is not wired here');
    let body: Record<string, unknown>;
    try {
      body = (await c.req.json()) as Record<string, unknown>;
    } catch {
      throw new RelayError(
        'RELAY_ERR_BAD_REQUEST',
        'send JSON: {"source": "3cx", "agent": "102", "number": "+420774852629"}',
      );
    }
    const text = (k: string): string => {
      const v = body[k];
      if (typeof v !== 'string' || !v.trim())
        throw new RelayError('RELAY_ERR_BAD_REQUEST', `"${k}" is required (a string)`);
      return v.trim();
    };
    const by =
      typeof body.by === 'string' && body.by.trim() ? body.by.trim().slice(0, 64) : 'admin';
    const placed = await opts.dial({
      source: text('source'),
      agent: text('agent'),
      number: text('number'),
      by: `api:${by}`,
    });
    return c.json(redact.value({ ok: true, ...placed }), 202);
  });

  // What 3CX would show for a number (the console's Setup page asks the same).
  app.get('/api/sources/:name/crm/lookup', async (c) => {
    if (!opts.crmLookup)
      throw new RelayError('RELAY_ERR_NOT_FOUND', "3CX's CRM lookups are not wired here");
    const number = c.req.query('number')?.trim();
    if (!number) throw new RelayError('RELAY_ERR_BAD_REQUEST', '?number= is required');
    return send(c, crmProbeView(number, await opts.crmLookup(c.req.param('name'), number)));
  });

  app.post('/api/deliveries/retry', async (c) => {
    const retried = await store.retryDeliveries('dead');
    opts.onDeliveriesDue?.();
    return send(c, { retried });
  });

  const deliveryId = async (c: Context): Promise<number> => {
    const id = Number(c.req.param('id')!.replace(/^dl-/, ''));
    const row = Number.isInteger(id) ? await store.getDelivery(id) : undefined;
    if (!row)
      throw new RelayError('RELAY_ERR_DELIVERY_NOT_FOUND', `no delivery ${c.req.param('id')}`);
    return id;
  };

  app.get('/api/deliveries/:id/attempts', async (c) => {
    const id = await deliveryId(c);
    const rows = await store.listAttempts({
      deliveryId: id,
      limit: intParam(c, 'limit', 100, 1, 1000),
      beforeId: intParam(c, 'before', 0, 0, Number.MAX_SAFE_INTEGER) || undefined,
    });
    return send(c, { attempts: rows.map(attemptView) });
  });

  // Retry now (a dead delivery, or one waiting for its next try) and deliver again (a delivered
  // one: the CRM's copy is updated in place).
  for (const [path, act] of [
    ['retry', (id: number) => store.retryDeliveries([id])],
    ['redeliver', (id: number) => store.redeliver([id])],
  ] as const) {
    app.post(`/api/deliveries/:id/${path}`, async (c) => {
      const id = await deliveryId(c);
      const n = await act(id);
      opts.onDeliveriesDue?.();
      return send(c, {
        [path === 'retry' ? 'retried' : 'redelivered']: n,
        delivery: deliveryView((await store.getDelivery(id))!),
      });
    });
  }

  // Deliver calls stored before a target was added: a count first (the default), then the real
  // run with "dryRun": false. Either way the same rule and loop as `callrelay backfill`.
  app.post('/api/targets/:name/backfill', async (c) => {
    const target = c.req.param('name');
    if (!opts.targets.some((t) => t.name === target))
      throw new RelayError('RELAY_ERR_NOT_FOUND', `no target "${target}" in relay.yaml`);
    let body: { since?: unknown; until?: unknown; dryRun?: unknown };
    try {
      body = (await c.req.json()) as typeof body;
    } catch {
      throw new RelayError(
        'RELAY_ERR_BAD_REQUEST',
        'send JSON: {"since": "2026-11-01", "until"?: ..., "dryRun"?: false}',
      );
    }
    const time = (v: unknown, name: string): string | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || Number.isNaN(Date.parse(v)))
        throw new RelayError('RELAY_ERR_BAD_REQUEST', `${name} must be an ISO-8601 date or time`);
      return new Date(Date.parse(v)).toISOString();
    };
    const since = time(body.since, 'since');
    if (!since) throw new RelayError('RELAY_ERR_BAD_REQUEST', 'since is required');
    const until = time(body.until, 'until');
    if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean')
      throw new RelayError('RELAY_ERR_BAD_REQUEST', 'dryRun must be true or false');
    const dryRun = body.dryRun !== false;
    const sandboxTarget = targets.get(target)?.dryRun ?? false;
    const totals = await backfillAll(store, { target, since, until, dryRun, sandboxTarget });
    if (!dryRun) opts.onDeliveriesDue?.();
    return send(c, { target, since, until: until ?? null, dryRun, ...totals });
  });
}
