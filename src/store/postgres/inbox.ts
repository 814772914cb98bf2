// The PostgreSQL store's inbox: filing received requests and their events (new, a copy of a stored
// one, or dropped over the call's limit) under per-call transaction locks taken in sorted order,
// so that two instances never file one call at once and cannot deadlock; claiming pending
// requests with FOR UPDATE SKIP LOCKED to fold them; replays; and reading the inbox back.

import pg from 'pg';
import {
  assumeNew,
  droppedFiling,
  type EventFiling,
  type EventPlace,
  fileRequest,
  type InboxState,
  isEarlier,
  keptPastLimit,
  overLimit,
} from '../../domain/inbox.js';
import type { CallEvent } from '../../domain/model.js';
import type { MapResult, RawRequest } from '../../domain/request.js';
import { Binder, whereOf } from '../queries.js';
import { EVENT_COLUMNS, eventValues, nativeReaders, toInboxRow } from '../rows.js';
import type { CallKey, InboxQuery, InboxRow, NewInbox } from '../types.js';
import { refoldAll } from './calls.js';
import { type Db, iso, type Q } from './db.js';

const eventsOf = (r: MapResult): CallEvent[] => (r.status === 'mapped' ? r.events : []);

/**
 * What an event's filing locks: its call, the channel of an origin, or the leg an event of no
 * call names (a recording joined by leg).
 */
export const lockKey = (
  source: string,
  callId: string | null,
  channelId: string | null,
  legId: string | null = null,
): string =>
  JSON.stringify(
    callId
      ? [source, callId]
      : !channelId && legId
        ? [source, '#leg', legId]
        : [source, '#channel', channelId ?? ''],
  );
const callLockKey = (source: string, e: CallEvent): string =>
  lockKey(source, e.callId ?? null, e.channelId ?? null, e.legId ?? null);

export async function insertInbox(db: Db, batch: NewInbox[]): Promise<number[]> {
  return db.tx(async (c) => {
    await lockCalls(
      c,
      batch.flatMap((n) => eventsOf(n.result).map((e) => callLockKey(n.req.source, e))),
    );
    const fast = batch.length > 1 ? await insertMany(db, c, batch) : undefined;
    if (fast) return fast;
    const ids: number[] = [];
    for (const n of batch) ids.push(await insertOne(db, c, n));
    return ids;
  });
}

/**
 * The common case of a batch, one statement per table rather than three round trips per
 * request: every event is new and no call goes over its limit, so each request is filed as
 * insertOne would first guess. Anything else (a repeat, a call near its limit) returns undefined
 * before writing, and insertOne files the batch one request at a time. The calls' filing locks
 * make the check hold until the commit; the savepoint guards it all the same.
 */
async function insertMany(db: Db, c: Q, batch: NewInbox[]): Promise<number[] | undefined> {
  const rows = batch.flatMap((n, i) =>
    eventsOf(n.result).map((event, idx) => ({
      i,
      ...eventValues(
        {
          inboxId: 0,
          idx,
          source: n.req.source,
          provider: n.provider,
          receivedAt: n.req.receivedAt,
        },
        event,
      ),
      source: n.req.source,
    })),
  );
  const keys = new Set(rows.map((r) => JSON.stringify([r.source, r.key])));
  if (keys.size !== rows.length) return undefined; // a repeat within the batch
  const perCall = new Map<string, { source: string; callId: string; n: number }>();
  for (const r of rows) {
    if (r.callId === null) continue;
    const k = JSON.stringify([r.source, r.callId]);
    const seen = perCall.get(k) ?? { source: r.source, callId: r.callId, n: 0 };
    seen.n++;
    perCall.set(k, seen);
  }
  const calls = [...perCall.values()];
  if (rows.length) {
    const pairs = [rows.map((r) => r.source), rows.map((r) => r.key)];
    const stored = await c.query(
      `SELECT 1 FROM events WHERE (source, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
       LIMIT 1`,
      pairs,
    );
    if (stored.rowCount) return undefined; // a repeat of a stored event
  }
  if (calls.length) {
    const counts = await c.query<{ source: string; call_id: string; events: number }>(
      `SELECT source, call_id, events FROM call_stats
       WHERE (source, call_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      [calls.map((x) => x.source), calls.map((x) => x.callId)],
    );
    const stored = new Map(
      counts.rows.map((r) => [JSON.stringify([r.source, r.call_id]), r.events]),
    );
    // Stored events and the batch's together (a new call has only the batch's).
    for (const [k, x] of perCall)
      if (overLimit((stored.get(k) ?? 0) + x.n, db.maxEvents)) return undefined;
  }

  await c.query('SAVEPOINT many');
  // Ids in arrival order: the batch's order is the order of its requests.
  const ids = (
    await c.query<{ id: number }>(
      `SELECT nextval(pg_get_serial_sequence('inbox', 'id')) AS id FROM generate_series(1, $1)`,
      [batch.length],
    )
  ).rows
    .map((r) => r.id)
    .sort((x, y) => x - y);
  const col = <T>(f: (n: NewInbox) => T): T[] => batch.map(f);
  const filed = col((n) => fileRequest(n.result, assumeNew(n.result), db.maxEvents));
  await c.query(
    `INSERT INTO inbox (id, source, provider, kind, received_at, method, query, content_type, headers, body, state, rule, reason_code, reason, applied_at)
     SELECT u.*, CASE WHEN u.state = 'applied' THEN now() END FROM unnest($1::bigint[], $2::text[],
       $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::jsonb[],
       $10::bytea[], $11::text[], $12::text[], $13::text[], $14::text[])
       AS u (id, source, provider, kind, received_at, method, query, content_type, headers, body, state, rule, reason_code, reason)`,
    [
      ids,
      col((n) => n.req.source),
      col((n) => n.provider),
      col((n) => n.req.kind),
      col((n) => n.req.receivedAt),
      col((n) => n.req.method),
      col((n) => n.req.query),
      col((n) => n.req.contentType),
      col((n) => JSON.stringify(n.req.headers)),
      col((n) => n.req.body),
      filed.map((f) => f.state),
      filed.map((f) => f.rule),
      filed.map((f) => f.reasonCode),
      filed.map((f) => f.reason),
    ],
  );
  for (const r of rows) r.values[0] = ids[r.i];
  const column = (k: number): unknown[] => rows.map((r) => r.values[k]);
  const added = rows.length
    ? await c.query(
        `INSERT INTO events (${EVENT_COLUMNS}) SELECT * FROM unnest($1::bigint[], $2::integer[],
           $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
           $9::timestamptz[], $10::jsonb[], $11::text[])
         ON CONFLICT (source, key) DO NOTHING`,
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(column),
      )
    : { rowCount: 0 };
  const counted = calls.length
    ? await c.query<{ events: number }>(
        `INSERT INTO call_stats (source, call_id, events)
         SELECT * FROM unnest($1::text[], $2::text[], $3::integer[])
         ON CONFLICT (source, call_id) DO UPDATE SET events = call_stats.events + excluded.events
         RETURNING events`,
        [calls.map((x) => x.source), calls.map((x) => x.callId), calls.map((x) => x.n)],
      )
    : { rows: [] };
  if (
    added.rowCount !== rows.length ||
    counted.rows.some((r) => overLimit(r.events, db.maxEvents))
  ) {
    await c.query('ROLLBACK TO SAVEPOINT many');
    return undefined;
  }
  await c.query('RELEASE SAVEPOINT many');
  return ids;
}

/** One request and its events, under the calls' filing locks (which the caller holds). */
export async function insertOne(
  db: Db,
  c: Q,
  { req, result, provider }: NewInbox,
): Promise<number> {
  // Filed as if every event were new (the common case); corrected below if not.
  const guess = fileRequest(result, assumeNew(result), db.maxEvents);
  const r = await c.query<{ id: number }>(
    `INSERT INTO inbox (source, provider, kind, received_at, method, query, content_type, headers, body, state, rule, reason_code, reason, applied_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CASE WHEN $10 = 'applied' THEN now() END)
     RETURNING id`,
    [
      req.source,
      provider,
      req.kind,
      req.receivedAt,
      req.method,
      req.query,
      req.contentType,
      JSON.stringify(req.headers),
      req.body,
      guess.state,
      guess.rule,
      guess.reasonCode,
      guess.reason,
    ],
  );
  const id = r.rows[0]!.id;
  const f = fileRequest(result, await fileEvents(db, c, id, req, result, provider), db.maxEvents);
  if (f.state !== guess.state || f.reasonCode !== guess.reasonCode) {
    await c.query(
      `UPDATE inbox SET state = $2, reason_code = $3, reason = $4,
         applied_at = CASE WHEN $2 = 'applied' THEN now() END WHERE id = $1`,
      [id, f.state, f.reasonCode, f.reason],
    );
  }
  return id;
}

/**
 * Per-call locks for the rest of the transaction, in sorted order: instances filing events of
 * the same calls take turns (event keys, counts), and never deadlock. Folding has its own
 * (refoldAll), so a fold never delays a commit.
 */
export async function lockCalls(c: Q, keys: string[]): Promise<void> {
  const sorted = [...new Set(keys)].sort();
  if (!sorted.length) return;
  await c.query(
    'SELECT pg_advisory_xact_lock(hashtextextended(k, 1)) FROM unnest($1::text[]) AS k',
    [sorted],
  );
}

/** Store each event of a request as new, a copy of a stored one, or dropped over the limit. */
async function fileEvents(
  db: Db,
  c: Q,
  id: number,
  req: Pick<RawRequest, 'source' | 'receivedAt'>,
  result: MapResult,
  provider: string,
): Promise<EventFiling[]> {
  const out: EventFiling[] = [];
  for (const [idx, event] of eventsOf(result).entries()) {
    const at = { inboxId: id, idx, source: req.source, provider, receivedAt: req.receivedAt };
    const { key, callId, values } = eventValues(at, event);
    const link = (kind: 'copy' | 'dropped'): Promise<unknown> =>
      c.query(
        'INSERT INTO event_links (inbox_id, idx, source, call_id, key, kind) VALUES ($1, $2, $3, $4, $5, $6)',
        [id, idx, req.source, callId, key, kind],
      );
    const added = await c.query(
      `INSERT INTO events (${EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (source, key) DO NOTHING`,
      values,
    );
    if (!added.rowCount) {
      // Stored already: this request repeats it, unless it carries it from an earlier place.
      const owner = (
        await c.query<EventPlace>(
          'SELECT inbox_id AS "inboxId", idx FROM events WHERE source = $1 AND key = $2',
          [req.source, key],
        )
      ).rows[0]!;
      if (isEarlier({ inboxId: id, idx }, owner)) {
        await c.query(
          `UPDATE events SET inbox_id = $1, idx = $2, received_at = $3, provider = $4
           WHERE source = $5 AND key = $6`,
          [id, idx, req.receivedAt, provider, req.source, key],
        );
        await c.query(
          'INSERT INTO event_links (inbox_id, idx, source, call_id, key, kind) VALUES ($1, $2, $3, $4, $5, $6)',
          [owner.inboxId, owner.idx, req.source, callId, key, 'copy'],
        );
        out.push('new');
        continue;
      }
      await link('copy');
      out.push('copy');
      continue;
    }
    if (callId === null) {
      out.push('new');
      continue;
    }
    const count = await c.query<{ events: number }>(
      `INSERT INTO call_stats (source, call_id, events) VALUES ($1, $2, 1)
       ON CONFLICT (source, call_id) DO UPDATE SET events = call_stats.events + 1 RETURNING events`,
      [req.source, callId],
    );
    if (!overLimit(count.rows[0]!.events, db.maxEvents) || keptPastLimit(event)) {
      out.push('new');
      continue;
    }
    await c.query('DELETE FROM events WHERE inbox_id = $1 AND idx = $2', [id, idx]);
    const again = await c.query(
      `SELECT 1 FROM event_links WHERE source = $1 AND key = $2 AND kind = 'dropped' LIMIT 1`,
      [req.source, key],
    );
    await link('dropped');
    if (again.rowCount) {
      // A repeat of an event dropped before: dropped again, not counted again.
      await uncount(c, req.source, callId, 1, 0);
      out.push('dropped');
      continue;
    }
    const dropped = await c.query<{ dropped: number }>(
      `UPDATE call_stats SET events = events - 1, dropped = dropped + 1
       WHERE source = $1 AND call_id = $2 RETURNING dropped`,
      [req.source, callId],
    );
    out.push(droppedFiling(dropped.rows[0]!.dropped));
  }
  return out;
}

export async function applyPending(db: Db, limit: number): Promise<number> {
  return db.tx(async (c) => {
    const ids = (
      await c.query<{ id: number }>(
        `SELECT id FROM inbox WHERE state = 'pending' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      )
    ).rows.map((r) => r.id);
    if (!ids.length) return 0;
    const touched = await touchedBy(c, ids);
    const now = new Date().toISOString();
    await refoldAll(db, c, touched, now);
    await c.query(`UPDATE inbox SET state = 'applied', applied_at = $2 WHERE id = ANY($1)`, [
      ids,
      now,
    ]);
    return ids.length;
  });
}

export async function remap(
  db: Db,
  id: number,
  result: MapResult,
  provider: string,
): Promise<void> {
  await db.tx(async (c) => {
    const row = (
      await c.query<{ source: string; received_at: Date }>(
        'SELECT source, received_at FROM inbox WHERE id = $1 FOR UPDATE',
        [id],
      )
    ).rows[0];
    if (!row) throw new Error(`no stored request ${id}`);
    // Lock what it holds now (events it owns or links to, calls or origin channels) and what
    // it will hold, before reading anything: ingest filing the same events waits.
    const held = await c.query<{
      call_id: string | null;
      channel_id: string | null;
      leg_id: string | null;
    }>(
      `SELECT call_id, channel_id, leg_id FROM events WHERE inbox_id = $1
       UNION SELECT coalesce(l.call_id, e.call_id), e.channel_id, e.leg_id FROM event_links l
         LEFT JOIN events e ON e.source = l.source AND e.key = l.key WHERE l.inbox_id = $1`,
      [id],
    );
    await lockCalls(c, [
      ...held.rows.map((h) => lockKey(row.source, h.call_id, h.channel_id, h.leg_id)),
      ...eventsOf(result).map((e) => callLockKey(row.source, e)),
    ]);
    const before = await touchedBy(c, [id]);
    await release(c, id);
    const req = { source: row.source, receivedAt: iso(row.received_at)! };
    const f = fileRequest(result, await fileEvents(db, c, id, req, result, provider), db.maxEvents);
    const after = await touchedBy(c, [id]);
    const now = new Date().toISOString();
    await refoldAll(db, c, new Map([...before, ...after]), now);
    // A replay folds at once: what would be pending is applied.
    const state = f.state === 'pending' ? 'applied' : f.state;
    await c.query(
      `UPDATE inbox SET state = $1, provider = $2, rule = $3, reason_code = $4, reason = $5, replays = replays + 1, applied_at = $6 WHERE id = $7`,
      [state, provider, f.rule, f.reasonCode, f.reason, state === 'applied' ? now : null, id],
    );
  });
}

/**
 * Take a request's events and links away before it is mapped again. An event another request
 * repeats passes to the earliest such request, so that the call keeps it.
 */
async function release(c: Q, id: number): Promise<void> {
  const own = await c.query<{ idx: number; source: string; call_id: string | null; key: string }>(
    'SELECT idx, source, call_id, key FROM events WHERE inbox_id = $1',
    [id],
  );
  for (const e of own.rows) {
    const heir = (
      await c.query<{ inbox_id: number; idx: number; received_at: Date; provider: string }>(
        `SELECT l.inbox_id, l.idx, i.received_at, i.provider FROM event_links l JOIN inbox i ON i.id = l.inbox_id
         WHERE l.source = $1 AND l.key = $2 AND l.kind = 'copy' AND l.inbox_id <> $3
         ORDER BY l.inbox_id, l.idx LIMIT 1`,
        [e.source, e.key, id],
      )
    ).rows[0];
    if (heir) {
      await c.query(
        `UPDATE events SET inbox_id = $1, idx = $2, received_at = $3, provider = $4
         WHERE inbox_id = $5 AND idx = $6`,
        [heir.inbox_id, heir.idx, heir.received_at, heir.provider, id, e.idx],
      );
      await c.query('DELETE FROM event_links WHERE inbox_id = $1 AND idx = $2', [
        heir.inbox_id,
        heir.idx,
      ]);
      continue;
    }
    await c.query('DELETE FROM events WHERE inbox_id = $1 AND idx = $2', [id, e.idx]);
    if (e.call_id !== null) await uncount(c, e.source, e.call_id, 1, 0);
  }
  const links = await c.query<{ source: string; call_id: string | null; kind: string }>(
    'DELETE FROM event_links WHERE inbox_id = $1 RETURNING source, call_id, kind',
    [id],
  );
  for (const l of links.rows) {
    if (l.kind === 'dropped' && l.call_id !== null) await uncount(c, l.source, l.call_id, 0, 1);
  }
}

async function uncount(c: Q, source: string, callId: string, events: number, dropped: number) {
  await c.query(
    `UPDATE call_stats SET events = events - $3, dropped = dropped - $4
     WHERE source = $1 AND call_id = $2`,
    [source, callId, events, dropped],
  );
}

/**
 * The calls these requests touch: those of their events and links, every call with an event on a
 * channel they originated (by event, so that any of a call's channels finds it), and every call
 * with an event on a leg one of their events names without a call (domain/refold.ts joinsByLeg
 * decides which of those join).
 */
async function touchedBy(c: Q, ids: number[]): Promise<Map<string, CallKey>> {
  const r = await c.query<CallKey>(
    `SELECT source, call_id AS "callId" FROM events WHERE inbox_id = ANY($1) AND call_id IS NOT NULL
     UNION SELECT source, call_id FROM event_links WHERE inbox_id = ANY($1) AND call_id IS NOT NULL
     UNION SELECT c.source, c.call_id FROM events o
       JOIN events c ON c.source = o.source AND c.channel_id = o.channel_id AND c.call_id IS NOT NULL
       WHERE o.inbox_id = ANY($1) AND o.type = 'originated'
     UNION SELECT c.source, c.call_id FROM events o
       JOIN events c ON c.source = o.source AND c.leg_id = o.leg_id AND c.leg_id IS NOT NULL
         AND c.call_id IS NOT NULL
       WHERE o.inbox_id = ANY($1) AND o.call_id IS NULL AND o.leg_id IS NOT NULL`,
    [ids],
  );
  return new Map(r.rows.map((k) => [JSON.stringify([k.source, k.callId]), k]));
}

export async function getInbox(db: Db, id: number): Promise<InboxRow | undefined> {
  const r = await db.pool.query('SELECT * FROM inbox WHERE id = $1', [id]);
  return r.rows[0] && toInboxRow(r.rows[0], nativeReaders);
}

export async function listInbox(db: Db, q: InboxQuery): Promise<InboxRow[]> {
  const b = new Binder('postgres');
  const where = [`id > ${b.bind(q.afterId ?? 0)}`];
  if (q.state) where.push(`state = ${b.bind(q.state)}`);
  if (q.ids) where.push(`id = ANY(${b.bind(q.ids)}::bigint[])`);
  if (q.source !== undefined) where.push(`source = ${b.bind(q.source)}`);
  const r = await db.pool.query(
    `SELECT * FROM inbox ${whereOf(where)} ORDER BY id LIMIT ${b.bind(q.limit)}`,
    b.values,
  );
  return r.rows.map((x) => toInboxRow(x, nativeReaders));
}

export async function countInbox(db: Db): Promise<Record<InboxState, number>> {
  return countInboxOn(db.pool);
}

export async function countInboxOn(c: Q | pg.Pool): Promise<Record<InboxState, number>> {
  const out: Record<InboxState, number> = { pending: 0, applied: 0, unmapped: 0, ignored: 0 };
  for (const r of (
    await c.query<{ state: InboxState; n: number }>(
      'SELECT state, count(*)::int AS n FROM inbox GROUP BY state',
    )
  ).rows)
    out[r.state] = r.n;
  return out;
}
