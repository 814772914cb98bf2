// The SQLite store's retention and housekeeping: pruning the raw requests of old calls and old
// delivery attempts, and closing the calls the PBX went silent on (a close is filed as a request,
// through the inbox).

import type Database from 'better-sqlite3';
import { closeRequest } from '../../domain/close.js';
import { PRUNE_ATTEMPTS_SQL, Binder, RETENTION_SQL, isoTime, staleCallsSql } from '../queries.js';
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
    return this.db
      .transaction(() => {
        const now = new Date().toISOString();
        const [callsSql, callsArgs] = sql((b) => RETENTION_SQL.calls(b, q.before, q.limit));
        const calls = this.db.prepare(callsSql).all(...callsArgs) as {
          source: string;
          call_id: string;
        }[];
        let requests = 0;
        for (const { source, call_id: callId } of calls) {
          const [idsSql, idsArgs] = sql((b) => RETENTION_SQL.requestsOf(b, source, callId));
          const ids = this.db
            .prepare(idsSql)
            .pluck()
            .all(...idsArgs) as number[];
          exec((b) => RETENTION_SQL.eventsOf(b, source, callId));
          exec((b) => RETENTION_SQL.linksOf(b, source, callId));
          requests += exec((b) =>
            RETENTION_SQL.orphans(
              b,
              `SELECT value FROM json_each(${b.bind(JSON.stringify(ids))})`,
              q.before,
            ),
          );
          exec((b) => RETENTION_SQL.markPruned(b, source, callId, now));
        }
        requests += exec((b) => RETENTION_SQL.loose(b, q.before, q.limit));
        return { calls: calls.length, requests };
      })
      .immediate();
  }
}
