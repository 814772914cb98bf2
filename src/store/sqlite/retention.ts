// The SQLite store's retention and housekeeping: pruning the raw requests of old calls and old
// delivery attempts, and closing the calls the PBX went silent on (a close is filed as a request,
// through the inbox).

import type Database from 'better-sqlite3';
import { closeRequest } from '../../domain/close.js';
import {
  PRUNE_ATTEMPTS_SQL,
  Binder,
  RETENTION_SQL,
  isoTime,
  legsBySource,
  staleCallsSql,
  type LegOnlyEvents,
} from '../queries.js';
import { textReaders, toStaleCall } from '../rows.js';
import type { CallKey } from '../types.js';
import type { SqliteConnection } from './connection.js';
import type { SqliteInbox } from './inbox.js';

export class SqliteRetention {
  private readonly db: Database.Database;

  constructor(
    private readonly conn: SqliteConnection,
    private readonly inbox: SqliteInbox,
  ) {
    this.db = conn.db;
  }

  async pruneAttempts(before: string, limit: number): Promise<number> {
    this.conn.assertFile();
    const b = new Binder('sqlite');
    return this.db.prepare(PRUNE_ATTEMPTS_SQL(b, before, limit)).run(...b.values).changes;
  }

  async closeStaleCalls(q: { before: string; at: string; limit: number }): Promise<CallKey[]> {
    this.conn.assertFile();
    const at = isoTime(q.at);
    const before = isoTime(q.before);
    // One writer at a time (BEGIN IMMEDIATE): what the query finds is still silent when the
    // close is filed, and another process's close of the same call is already visible.
    return this.db
      .transaction(() => {
        const b = new Binder('sqlite');
        const rows = this.db.prepare(staleCallsSql(b, q)).all(...b.values) as object[];
        return rows.map((r): CallKey => {
          const call = toStaleCall(r, textReaders);
          this.inbox.insertOne(closeRequest(call, at, before));
          return { source: call.source, callId: call.callId };
        });
      })
      .immediate();
  }

  async pruneRequests(q: {
    before: string;
    limit: number;
  }): Promise<{ calls: number; requests: number }> {
    this.conn.assertFile();
    const sql = (f: (b: Binder) => string): [string, unknown[]] => {
      const b = new Binder('sqlite');
      return [f(b), b.values];
    };
    const exec = (f: (b: Binder) => string): number => {
      const [text, values] = sql(f);
      return this.db.prepare(text).run(...values).changes;
    };
    const all = <T>(f: (b: Binder) => string): T[] => {
      const [text, values] = sql(f);
      return this.db.prepare(text).all(...values) as T[];
    };
    const pluck = <T>(f: (b: Binder) => string): T[] => {
      const [text, values] = sql(f);
      return this.db
        .prepare(text)
        .pluck()
        .all(...values) as T[];
    };
    // Events that name only a leg, with their links, then their requests nothing else refers to.
    const pruneLegs = (on: LegOnlyEvents): number => {
      if (!on.legs.length) return 0;
      const ids = pluck<number>((b) => RETENTION_SQL.requestsOfLegs(b, on));
      exec((b) => RETENTION_SQL.linksOfLegs(b, on));
      exec((b) => RETENTION_SQL.eventsOfLegs(b, on));
      return exec((b) => RETENTION_SQL.orphans(b, ids, q.before));
    };
    return this.db
      .transaction(() => {
        const now = new Date().toISOString();
        const calls = all<{ source: string; call_id: string }>((b) =>
          RETENTION_SQL.calls(b, q.before, q.limit),
        );
        const stray = all<{ source: string; leg_id: string }>((b) =>
          RETENTION_SQL.strayLegs(b, q.before, q.limit),
        );
        let requests = 0;
        for (const { source, call_id: callId } of calls) {
          const legs = pluck<string>((b) => RETENTION_SQL.legsOf(b, source, callId));
          const ids = pluck<number>((b) => RETENTION_SQL.requestsOf(b, source, callId));
          exec((b) => RETENTION_SQL.eventsOf(b, source, callId));
          exec((b) => RETENTION_SQL.linksOf(b, source, callId));
          requests += exec((b) => RETENTION_SQL.orphans(b, ids, q.before));
          requests += pruneLegs({ source, legs });
          exec((b) => RETENTION_SQL.markPruned(b, source, callId, now));
        }
        for (const [source, legs] of legsBySource(stray))
          requests += pruneLegs({ source, legs, before: q.before });
        requests += exec((b) => RETENTION_SQL.loose(b, q.before, q.limit));
        return { calls: calls.length, requests };
      })
      .immediate();
  }
}
