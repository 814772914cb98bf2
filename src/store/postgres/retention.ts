// The PostgreSQL store's sweeps over old calls: closing calls that went quiet (a close request
// filed like any other), and retention, which deletes the raw requests of calls ended long ago
// (with the events that name only their legs), of leg-only events no call has, and old delivery
// attempts. Both take the filing locks (inbox.ts) so that a request filed meanwhile waits rather
// than races.

import pg from 'pg';
import { closeRequest } from '../../domain/close.js';
import {
  Binder,
  isoTime,
  legsBySource,
  PRUNE_ATTEMPTS_SQL,
  RETENTION_SQL,
  staleCallsSql,
  type LegOnlyEvents,
} from '../queries.js';
import { nativeReaders, toStaleCall } from '../rows.js';
import type { CallKey } from '../types.js';
import type { Db } from './db.js';
import { insertOne, lockCalls, lockKey } from './inbox.js';

export async function pruneRequests(
  db: Db,
  q: {
    before: string;
    limit: number;
  },
): Promise<{ calls: number; requests: number }> {
  return db.tx(async (c) => {
    const run = async (f: (b: Binder) => string): Promise<pg.QueryResult> => {
      const b = new Binder('postgres');
      const text = f(b);
      return c.query(text, b.values);
    };
    // Events that name only a leg, with their links, then their requests nothing else refers to.
    const pruneLegs = async (on: LegOnlyEvents): Promise<number> => {
      if (!on.legs.length) return 0;
      const ids = (await run((b) => RETENTION_SQL.requestsOfLegs(b, on))).rows.map(
        (r: { inbox_id: number }) => Number(r.inbox_id),
      );
      await run((b) => RETENTION_SQL.linksOfLegs(b, on));
      await run((b) => RETENTION_SQL.eventsOfLegs(b, on));
      return (await run((b) => RETENTION_SQL.orphans(b, ids, q.before))).rowCount ?? 0;
    };
    const now = new Date().toISOString();
    const calls = (await run((b) => RETENTION_SQL.calls(b, q.before, q.limit))).rows as {
      source: string;
      call_id: string;
    }[];
    const legsOf = new Map<(typeof calls)[number], string[]>();
    for (const call of calls)
      legsOf.set(
        call,
        (await run((b) => RETENTION_SQL.legsOf(b, call.source, call.call_id))).rows.map(
          (r: { leg_id: string }) => r.leg_id,
        ),
      );
    const stray = legsBySource(
      (await run((b) => RETENTION_SQL.strayLegs(b, q.before, q.limit))).rows,
    );
    // The calls' and legs' filing locks, all at once (in key order, as a filing takes them): a
    // request for one of them waits, and then refolds nothing; a repeat of a leg-only event
    // waits rather than link to an event being deleted.
    await lockCalls(c, [
      ...calls.map((r) => lockKey(r.source, r.call_id, null)),
      ...calls.flatMap((r) => legsOf.get(r)!.map((leg) => lockKey(r.source, null, null, leg))),
      ...[...stray].flatMap(([source, legs]) =>
        legs.map((leg) => lockKey(source, null, null, leg)),
      ),
    ]);
    let requests = 0;
    for (const call of calls) {
      const { source, call_id: callId } = call;
      const ids = (await run((b) => RETENTION_SQL.requestsOf(b, source, callId))).rows.map(
        (r: { inbox_id: number }) => Number(r.inbox_id),
      );
      await run((b) => RETENTION_SQL.eventsOf(b, source, callId));
      await run((b) => RETENTION_SQL.linksOf(b, source, callId));
      requests += (await run((b) => RETENTION_SQL.orphans(b, ids, q.before))).rowCount ?? 0;
      requests += await pruneLegs({ source, legs: legsOf.get(call)! });
      await run((b) => RETENTION_SQL.markPruned(b, source, callId, now));
    }
    for (const [source, legs] of stray)
      requests += await pruneLegs({ source, legs, before: q.before });
    requests += (await run((b) => RETENTION_SQL.loose(b, q.before, q.limit))).rowCount ?? 0;
    return { calls: calls.length, requests };
  });
}

export async function pruneAttempts(db: Db, before: string, limit: number): Promise<number> {
  const b = new Binder('postgres');
  return (await db.pool.query(PRUNE_ATTEMPTS_SQL(b, before, limit), b.values)).rowCount ?? 0;
}

export async function closeStaleCalls(
  db: Db,
  q: { before: string; at: string; limit: number },
): Promise<CallKey[]> {
  const at = isoTime(q.at);
  const before = isoTime(q.before);
  return db.tx(async (c) => {
    const b = new Binder('postgres');
    const found = (
      await c.query<{ source: string; call_id: string }>(staleCallsSql(b, q), b.values)
    ).rows;
    if (!found.length) return [];
    // The calls' filing locks (insertInbox), then the same question again: a statement sees what
    // committed before it began, so a close by another instance, or an event filed meanwhile,
    // rules a call out, and one filed from now on waits for this transaction.
    await lockCalls(
      c,
      found.map((r) => lockKey(r.source, r.call_id, null)),
    );
    const again = new Binder('postgres');
    const sql = staleCallsSql(again, {
      ...q,
      more: (m) =>
        `(c.source, c.call_id) IN (SELECT * FROM unnest(${m.bind(found.map((r) => r.source))}::text[], ` +
        `${m.bind(found.map((r) => r.call_id))}::text[]))`,
    });
    const closed: CallKey[] = [];
    for (const r of (await c.query(sql, again.values)).rows) {
      const call = toStaleCall(r, nativeReaders);
      await insertOne(db, c, closeRequest(call, at, before));
      closed.push({ source: call.source, callId: call.callId });
    }
    return closed;
  });
}
