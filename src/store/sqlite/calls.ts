// The SQLite store's calls: refolding a call from its events (the domain decides, domain/refold.ts;
// this writes the record and makes its deliveries due in the same transaction) and the call views.

import type Database from 'better-sqlite3';
import type { CallEvent, CallRecord } from '../../domain/model.js';
import { channelsOf, legsOf, refoldCall, type EventRow } from '../../domain/refold.js';
import { callListSql, LEG_JOINED_SQL, type CallListDialect } from '../queries.js';
import type { CallKey, CallQuery, CallRow } from '../types.js';
import type { SqliteConnection } from './connection.js';

interface EventDbRow {
  inbox_id: number;
  idx: number;
  provider: string;
  received_at: string;
  key: string;
  body: string;
}

/** The call list in SQLite's words: the record is JSON text, its legs a JSON array. */
const SQLITE_CALL_LIST: CallListDialect = {
  style: 'sqlite',
  field: (name) => `json_extract(c.record, '$.${name}')`,
  legAgent: (param) =>
    `EXISTS (SELECT 1 FROM json_each(c.record, '$.legs') l
       WHERE json_extract(l.value, '$.agent') = ${param})`,
  // The list is a JSON array of strings; json_each makes it rows to look in.
  parties: (list) => {
    const among = (): string => `IN (SELECT value FROM json_each(${list()}))`;
    return `(json_extract(c.record, '$.agent') ${among()}
       OR EXISTS (SELECT 1 FROM json_each(c.record, '$.rang') r WHERE r.value ${among()})
       OR EXISTS (SELECT 1 FROM json_each(c.record, '$.legs') l
                  WHERE json_extract(l.value, '$.agent') ${among()}))`;
  },
  listValue: (values) => JSON.stringify(values),
  cast: () => '',
};

export class SqliteCalls {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(private readonly conn: SqliteConnection) {
    this.db = conn.db;
    const db = this.db;
    this.stmts = {
      eventsOfCall: db.prepare(
        `SELECT inbox_id, idx, provider, received_at, key, body FROM events WHERE source = ? AND call_id = ?`,
      ),
      originsOn: db.prepare(
        `SELECT inbox_id, idx, provider, received_at, key, body FROM events
         WHERE source = ? AND type = 'originated' AND channel_id IN (SELECT value FROM json_each(?))`,
      ),
      // Events that join the call by one of its legs, the earliest by arrival up to a limit.
      joinedOn: db.prepare(
        `SELECT inbox_id, idx, provider, received_at, key, body FROM events
         WHERE source = ? AND leg_id IN (SELECT value FROM json_each(?)) AND leg_id IS NOT NULL
           AND call_id IS NULL AND type IN (${LEG_JOINED_SQL})
         ORDER BY inbox_id, idx LIMIT ?`,
      ),
      droppedOf: db
        .prepare(`SELECT dropped FROM call_stats WHERE source = ? AND call_id = ?`)
        .pluck(),
      // NULL where a record predates fingerprints (migration 3): it is written once more.
      previous: db.prepare(
        `SELECT fingerprint, pruned_at FROM calls WHERE source = ? AND call_id = ?`,
      ),
      upsertCall: db
        .prepare(
          `INSERT INTO calls (source, call_id, channel_id, status, started_at, updated_at, revision, record, fingerprint)
         VALUES (@source, @callId, @channelId, @status, @startedAt, @now, 1, @record, @fingerprint)
         ON CONFLICT (source, call_id) DO UPDATE SET channel_id = excluded.channel_id, status = excluded.status,
           started_at = excluded.started_at, updated_at = excluded.updated_at, revision = calls.revision + 1,
           record = excluded.record, fingerprint = excluded.fingerprint
         RETURNING revision`,
        )
        .pluck(),
      // A change re-arms finished or dead work; work already due keeps its time (settle window,
      // backoff).
      dueDelivery: db.prepare(
        `INSERT INTO deliveries (target, source, call_id, state, due_at, want_rev, updated_at)
         VALUES (@target, @source, @callId, 'due', @dueAt, @rev, @now)
         ON CONFLICT (target, source, call_id) DO UPDATE SET want_rev = excluded.want_rev, updated_at = excluded.updated_at,
           due_at = CASE WHEN deliveries.state = 'due' THEN deliveries.due_at ELSE excluded.due_at END,
           attempts = CASE WHEN deliveries.state = 'due' THEN deliveries.attempts ELSE 0 END,
           first_failed_at = CASE WHEN deliveries.state = 'due' THEN deliveries.first_failed_at ELSE NULL END,
           state = 'due'`,
      ),
      deleteCall: db.prepare(`DELETE FROM calls WHERE source = ? AND call_id = ?`),
    };
  }

  async listCalls(q: CallQuery): Promise<CallRow[]> {
    const { sql, values } = callListSql(q, SQLITE_CALL_LIST);
    return (this.db.prepare(sql).all(...values) as CallDbRow[]).map(toCallRow);
  }

  async getCalls(callId: string, source?: string): Promise<CallRow[]> {
    const rows = this.db
      .prepare(
        `SELECT c.record, c.updated_at, c.revision, s.dropped FROM calls c
         LEFT JOIN call_stats s ON s.source = c.source AND s.call_id = c.call_id
         WHERE c.call_id = @callId AND (@source IS NULL OR c.source = @source) ORDER BY c.source`,
      )
      .all({ callId, source: source ?? null }) as CallDbRow[];
    return rows.map(toCallRow);
  }

  /**
   * Read the call's rows, let the domain decide (domain/refold.ts), write what it says. Inside the
   * caller's transaction (the inbox's fold or replay).
   */
  refold({ source, callId }: CallKey, now: string): void {
    const prev = this.stmts.previous.get(source, callId) as
      { fingerprint: string | null; pruned_at: string | null } | undefined;
    // Its raw requests are gone (retention): what is left would rebuild a wrong record.
    if (prev?.pruned_at) return;
    const events = (this.stmts.eventsOfCall.all(source, callId) as EventDbRow[]).map(toEventRow);
    const channels = channelsOf(events);
    const origins = channels.length
      ? (this.stmts.originsOn.all(source, JSON.stringify(channels)) as EventDbRow[]).map(toEventRow)
      : [];
    // At most the per-call limit of them (one more read says whether there were more), so that
    // a runaway leg cannot slow the call's every refold either.
    const legs = legsOf(events);
    const max = this.conn.maxEvents;
    const joined = legs.length
      ? (this.stmts.joinedOn.all(source, JSON.stringify(legs), max + 1) as EventDbRow[]).map(
          toEventRow,
        )
      : [];
    const d = refoldCall(
      {
        source,
        callId,
        events,
        origins,
        joined: joined.slice(0, max),
        truncated:
          ((this.stmts.droppedOf.get(source, callId) as number | undefined) ?? 0) > 0 ||
          joined.length > max,
        previous: prev?.fingerprint ?? undefined,
      },
      this.conn.routing,
      new Date(now),
    );
    if (d.kind === 'unchanged') return;
    if (d.kind === 'delete') {
      this.stmts.deleteCall.run(source, callId);
      return;
    }
    const rev = this.stmts.upsertCall.get({
      source,
      callId,
      channelId: d.record.channelId,
      status: d.record.status,
      startedAt: d.record.startedAt,
      now,
      record: d.json,
      fingerprint: d.fingerprint,
    }) as number;
    for (const t of d.due) {
      this.stmts.dueDelivery.run({ target: t.target, source, callId, dueAt: t.dueAt, rev, now });
    }
  }
}

interface CallDbRow {
  record: string;
  updated_at: string;
  revision: number;
  dropped: number | null;
}

function toCallRow(r: CallDbRow): CallRow {
  return {
    record: JSON.parse(r.record) as CallRecord,
    updatedAt: r.updated_at,
    revision: r.revision,
    droppedEvents: r.dropped ?? 0,
  };
}

function toEventRow(r: EventDbRow): EventRow {
  return {
    inboxId: r.inbox_id,
    idx: r.idx,
    provider: r.provider,
    receivedAt: r.received_at,
    key: r.key,
    event: JSON.parse(r.body) as CallEvent,
  };
}
