// The PostgreSQL store's call records: folding a call's events into its record (one call at a
// time across instances, under an advisory lock), arming its deliveries, and the call list.

import type { CallEvent, CallRecord } from '../../domain/model.js';
import { channelsOf, type EventRow, legsOf, refoldCall } from '../../domain/refold.js';
import { callListSql, LEG_JOINED_SQL, type CallListDialect } from '../queries.js';
import type { CallKey, CallQuery, CallRow } from '../types.js';
import { type Db, iso, type Q } from './db.js';
import { CALLS_CHANNEL } from './watch.js';

interface EventDbRow {
  inbox_id: number;
  idx: number;
  provider: string;
  received_at: Date;
  key: string;
  body: CallEvent;
}

const toEventRow = (r: EventDbRow): EventRow => ({
  inboxId: r.inbox_id,
  idx: r.idx,
  provider: r.provider,
  receivedAt: iso(r.received_at)!,
  key: r.key,
  event: r.body,
});

interface CallDbRow {
  record: CallRecord;
  updated_at: Date;
  revision: number;
  dropped: number | null;
}

const toCallRow = (x: CallDbRow): CallRow => ({
  record: x.record,
  updatedAt: iso(x.updated_at)!,
  revision: x.revision,
  droppedEvents: x.dropped ?? 0,
});

/** One call at a time across instances: advisory locks in key order, then refold. */
export async function refoldAll(
  db: Db,
  c: Q,
  touched: Map<string, CallKey>,
  now: string,
): Promise<void> {
  for (const key of [...touched.keys()].sort()) {
    await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key]);
    await refold(db, c, touched.get(key)!, now);
  }
  // Other instances' live views hear of it (watch.ts): one notification a commit, however many
  // calls it folded, delivered only if it commits.
  if (touched.size) await c.query('SELECT pg_notify($1, $2)', [CALLS_CHANNEL, db.instance]);
}

/** Read the call's rows, let the domain decide (domain/refold.ts), write what it says. */
async function refold(db: Db, c: Q, { source, callId }: CallKey, now: string): Promise<void> {
  const events = (
    await c.query<EventDbRow>(
      'SELECT inbox_id, idx, provider, received_at, key, body FROM events WHERE source = $1 AND call_id = $2',
      [source, callId],
    )
  ).rows.map(toEventRow);
  const channels = channelsOf(events);
  const origins = channels.length
    ? (
        await c.query<EventDbRow>(
          `SELECT inbox_id, idx, provider, received_at, key, body FROM events
           WHERE source = $1 AND type = 'originated' AND channel_id = ANY($2)`,
          [source, channels],
        )
      ).rows.map(toEventRow)
    : [];
  // Events that join the call by one of its legs, the earliest by arrival, at most the per-call
  // limit of them (one more read says whether there were more), so that a runaway leg cannot
  // slow the call's every refold either.
  const legs = legsOf(events);
  const joined = legs.length
    ? (
        await c.query<EventDbRow>(
          `SELECT inbox_id, idx, provider, received_at, key, body FROM events
           WHERE source = $1 AND leg_id = ANY($2) AND leg_id IS NOT NULL AND call_id IS NULL
             AND type IN (${LEG_JOINED_SQL})
           ORDER BY inbox_id, idx LIMIT $3`,
          [source, legs, db.maxEvents + 1],
        )
      ).rows.map(toEventRow)
    : [];
  // No fingerprint where a record predates them (migration 2): it is written once more.
  const prev = (
    await c.query<{
      fingerprint: string | null;
      dropped: number | null;
      pruned_at: Date | null;
    }>(
      `SELECT (SELECT fingerprint FROM calls WHERE source = $1 AND call_id = $2) AS fingerprint,
         (SELECT pruned_at FROM calls WHERE source = $1 AND call_id = $2) AS pruned_at,
         (SELECT dropped FROM call_stats WHERE source = $1 AND call_id = $2) AS dropped`,
      [source, callId],
    )
  ).rows[0]!;
  // Its raw requests are gone (retention): what is left would rebuild a wrong record.
  if (prev.pruned_at) return;
  const d = refoldCall(
    {
      source,
      callId,
      events,
      origins,
      joined: joined.slice(0, db.maxEvents),
      truncated: (prev.dropped ?? 0) > 0 || joined.length > db.maxEvents,
      previous: prev.fingerprint ?? undefined,
    },
    db.routing,
    new Date(now),
  );
  if (d.kind === 'unchanged') return;
  if (d.kind === 'delete') {
    await c.query('DELETE FROM calls WHERE source = $1 AND call_id = $2', [source, callId]);
    return;
  }
  const up = await c.query<{ revision: number }>(
    `INSERT INTO calls (source, call_id, channel_id, status, started_at, updated_at, revision, record, fingerprint)
     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)
     ON CONFLICT (source, call_id) DO UPDATE SET channel_id = excluded.channel_id, status = excluded.status,
       started_at = excluded.started_at, updated_at = excluded.updated_at, revision = calls.revision + 1,
       record = excluded.record, fingerprint = excluded.fingerprint
     RETURNING revision`,
    [
      source,
      callId,
      d.record.channelId,
      d.record.status,
      d.record.startedAt,
      now,
      d.json,
      d.fingerprint,
    ],
  );
  const rev = up.rows[0]!.revision;
  for (const t of d.due) {
    // A change re-arms finished or dead work; work already due keeps its time (settle window,
    // backoff).
    await c.query(
      `INSERT INTO deliveries (target, source, call_id, state, due_at, want_rev, updated_at) VALUES ($1, $2, $3, 'due', $4, $5, $6)
       ON CONFLICT (target, source, call_id) DO UPDATE SET want_rev = excluded.want_rev, updated_at = excluded.updated_at,
         due_at = CASE WHEN deliveries.state = 'due' THEN deliveries.due_at ELSE excluded.due_at END,
         attempts = CASE WHEN deliveries.state = 'due' THEN deliveries.attempts ELSE 0 END,
         first_failed_at = CASE WHEN deliveries.state = 'due' THEN deliveries.first_failed_at ELSE NULL END,
         state = 'due'`,
      [t.target, source, callId, t.dueAt, rev, now],
    );
  }
}

/** The call list in PostgreSQL's words: jsonb, with containment for the legs' agents. */
const POSTGRES_CALL_LIST: CallListDialect = {
  style: 'postgres',
  field: (name) => `(c.record->>'${name}')`,
  legAgent: (param) =>
    `c.record->'legs' @> jsonb_build_array(jsonb_build_object('agent', ${param}::text))`,
  // rang is an array of strings: ?| asks whether any of the list is one of its elements. The legs,
  // the dearest look, come last (the planner keeps the order written).
  parties: (list) =>
    `((c.record->>'agent') = ANY(${list()}::text[])
       OR (c.record->'rang') ?| ${list()}::text[]
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(c.record->'legs') l
                  WHERE (l->>'agent') = ANY(${list()}::text[])))`,
  listValue: (values) => values,
  cast: (type) => `::${type}`,
};

export async function listCalls(db: Db, q: CallQuery): Promise<CallRow[]> {
  const { sql, values } = callListSql(q, POSTGRES_CALL_LIST);
  return (await db.pool.query<CallDbRow>(sql, values)).rows.map(toCallRow);
}

export async function getCalls(db: Db, callId: string, source?: string): Promise<CallRow[]> {
  const r = await db.pool.query<CallDbRow>(
    `SELECT c.record, c.updated_at, c.revision, s.dropped FROM calls c
     LEFT JOIN call_stats s ON s.source = c.source AND s.call_id = c.call_id
     WHERE c.call_id = $1 AND ($2::text IS NULL OR c.source = $2) ORDER BY c.source`,
    [callId, source ?? null],
  );
  return r.rows.map(toCallRow);
}
