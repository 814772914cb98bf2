// The embedded store: one SQLite file in WAL mode with synchronous=FULL, so a commit is on disk
// (fsync'd) before the relay answers 2xx. better-sqlite3 is synchronous; each method is one
// transaction, and the group committer (store/group-commit.ts) batches requests into one. The
// rules (how a request and its events are filed, how a call is refolded) are the domain's
// (domain/inbox.ts, domain/refold.ts); this file only reads and writes rows.

import Database from 'better-sqlite3';
import type { Routing } from '../../domain/routing.js';
import {
  AGENTS_WITHOUT_USER_SQL,
  Binder,
  refusalUpsertSql,
  SOURCE_ACTIVITY_SQL,
  TARGET_COUNTS_SQL,
} from '../queries.js';
import {
  toAgentWithoutUser,
  textReaders,
  toRefusal,
  toSourceActivity,
  toTargetStats,
} from '../rows.js';
import type {
  AgentWithoutUser,
  Refusal,
  SourceActivity,
  Store,
  StoreStats,
  SessionRow,
} from '../types.js';
import { SqliteConnection, type SqliteOptions } from './connection.js';
import { SqliteRetention } from './retention.js';
import { SqliteInbox } from './inbox.js';
import { SqliteCalls } from './calls.js';
import { SqliteDeliveries } from './deliveries.js';

export type { SqliteOptions } from './connection.js';

export class SqliteStore implements Store {
  readonly backend = 'sqlite' as const;
  readonly path: string;
  private readonly conn: SqliteConnection;
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly retention: SqliteRetention;
  private readonly inbox: SqliteInbox;
  private readonly calls: SqliteCalls;
  private readonly deliveries: SqliteDeliveries;

  constructor(path: string, opts: SqliteOptions = {}) {
    this.path = path;
    this.conn = new SqliteConnection(path, opts);
    this.db = this.conn.db;
    this.calls = new SqliteCalls(this.conn);
    this.inbox = new SqliteInbox(this.conn, this.calls);
    this.retention = new SqliteRetention(this.conn, this.inbox);
    this.deliveries = new SqliteDeliveries(this.conn);
    const db = this.db;
    this.stmts = {
      heartbeat: db.prepare(
        `INSERT INTO meta (key, value) VALUES ('heartbeat', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      ),
    };
  }

  async createSession(x: SessionRow): Promise<void> {
    this.assertFile();
    this.db
      .prepare(
        'INSERT INTO sessions (id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?)',
      )
      .run(x.id, x.createdAt, x.lastSeenAt, x.expiresAt);
  }

  async getSession(id: string): Promise<SessionRow | undefined> {
    const r = this.db
      .prepare(
        'SELECT id, created_at AS createdAt, last_seen_at AS lastSeenAt, expires_at AS expiresAt FROM sessions WHERE id = ?',
      )
      .get(id) as SessionRow | undefined;
    return r && { ...r };
  }

  async touchSession(id: string, at: string): Promise<void> {
    this.assertFile();
    this.db.prepare('UPDATE sessions SET last_seen_at = ? WHERE id = ?').run(at, id);
  }

  async deleteSession(id: string): Promise<void> {
    this.assertFile();
    this.db.prepare('DELETE FROM sessions WHERE id = ?').run(id);
  }

  async deleteAllSessions(): Promise<number> {
    this.assertFile();
    return this.db.prepare('DELETE FROM sessions').run().changes;
  }

  async pruneSessions(q: { now: string; idleSince: string }): Promise<number> {
    this.assertFile();
    return this.db
      .prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at < ?')
      .run(q.now, q.idleSince).changes;
  }

  async noteRefusals(rows: Refusal[]): Promise<void> {
    this.assertFile();
    const upsert = this.db.prepare(refusalUpsertSql((name) => `@${name}`));
    this.db.transaction(() => {
      for (const r of rows) upsert.run(r);
    })();
  }

  async refusals(): Promise<Refusal[]> {
    return this.db
      .prepare('SELECT * FROM refusals ORDER BY source')
      .all()
      .map((r) => toRefusal(r as object, textReaders));
  }

  async setRouting(routing: Routing): Promise<void> {
    this.conn.routing = routing;
  }

  async migrate(): Promise<void> {
    this.conn.migrate();
  }

  async stats(): Promise<StoreStats> {
    return this.db.transaction(() => {
      const now = new Date().toISOString();
      const oldest = this.db
        .prepare(`SELECT received_at FROM inbox WHERE state = 'pending' ORDER BY id LIMIT 1`)
        .pluck()
        .get() as string | undefined;
      const counts = this.db.prepare(TARGET_COUNTS_SQL).all() as object[];
      const due = this.db
        .prepare(
          `SELECT target, min(due_at) AS oldest_due_at FROM deliveries
           WHERE state = 'due' AND due_at <= ? GROUP BY target`,
        )
        .all(now) as object[];
      return {
        oldestPendingAt: oldest ?? null,
        inbox: this.inbox.countInboxSync(),
        targets: toTargetStats(counts, due, textReaders),
      };
    })();
  }

  async agentsWithoutUser(q: { since: string; limit: number }): Promise<AgentWithoutUser[]> {
    const b = new Binder('sqlite');
    const rows = this.db.prepare(AGENTS_WITHOUT_USER_SQL(b, q.since, q.limit)).all(...b.values);
    return (rows as object[]).map((r) => toAgentWithoutUser(r, textReaders));
  }

  async sourceActivity(): Promise<SourceActivity[]> {
    return (this.db.prepare(SOURCE_ACTIVITY_SQL).all() as object[]).map((r) =>
      toSourceActivity(r, textReaders),
    );
  }

  async checkWritable(): Promise<void> {
    this.assertFile();
    this.stmts.heartbeat.run(new Date().toISOString());
  }

  private assertFile(): void {
    this.conn.assertFile();
  }

  claimDeliveries(
    ...a: Parameters<Store['claimDeliveries']>
  ): ReturnType<Store['claimDeliveries']> {
    return this.deliveries.claimDeliveries(...a);
  }

  saveRemote(...a: Parameters<Store['saveRemote']>): ReturnType<Store['saveRemote']> {
    return this.deliveries.saveRemote(...a);
  }

  finishDelivery(...a: Parameters<Store['finishDelivery']>): ReturnType<Store['finishDelivery']> {
    return this.deliveries.finishDelivery(...a);
  }

  listAttempts(...a: Parameters<Store['listAttempts']>): ReturnType<Store['listAttempts']> {
    return this.deliveries.listAttempts(...a);
  }

  releaseDeliveries(
    ...a: Parameters<Store['releaseDeliveries']>
  ): ReturnType<Store['releaseDeliveries']> {
    return this.deliveries.releaseDeliveries(...a);
  }

  listDeliveries(...a: Parameters<Store['listDeliveries']>): ReturnType<Store['listDeliveries']> {
    return this.deliveries.listDeliveries(...a);
  }

  deliveriesOf(...a: Parameters<Store['deliveriesOf']>): ReturnType<Store['deliveriesOf']> {
    return this.deliveries.deliveriesOf(...a);
  }

  getDelivery(...a: Parameters<Store['getDelivery']>): ReturnType<Store['getDelivery']> {
    return this.deliveries.getDelivery(...a);
  }

  retryDeliveries(
    ...a: Parameters<Store['retryDeliveries']>
  ): ReturnType<Store['retryDeliveries']> {
    return this.deliveries.retryDeliveries(...a);
  }

  redeliver(...a: Parameters<Store['redeliver']>): ReturnType<Store['redeliver']> {
    return this.deliveries.redeliver(...a);
  }

  backfill(...a: Parameters<Store['backfill']>): ReturnType<Store['backfill']> {
    return this.deliveries.backfill(...a);
  }

  listCalls(...a: Parameters<Store['listCalls']>): ReturnType<Store['listCalls']> {
    return this.calls.listCalls(...a);
  }

  getCalls(...a: Parameters<Store['getCalls']>): ReturnType<Store['getCalls']> {
    return this.calls.getCalls(...a);
  }

  insertInbox(...a: Parameters<Store['insertInbox']>): ReturnType<Store['insertInbox']> {
    return this.inbox.insertInbox(...a);
  }

  applyPending(...a: Parameters<Store['applyPending']>): ReturnType<Store['applyPending']> {
    return this.inbox.applyPending(...a);
  }

  remap(...a: Parameters<Store['remap']>): ReturnType<Store['remap']> {
    return this.inbox.remap(...a);
  }

  getInbox(...a: Parameters<Store['getInbox']>): ReturnType<Store['getInbox']> {
    return this.inbox.getInbox(...a);
  }

  listInbox(...a: Parameters<Store['listInbox']>): ReturnType<Store['listInbox']> {
    return this.inbox.listInbox(...a);
  }

  countInbox(...a: Parameters<Store['countInbox']>): ReturnType<Store['countInbox']> {
    return this.inbox.countInbox(...a);
  }

  pruneAttempts(...a: Parameters<Store['pruneAttempts']>): ReturnType<Store['pruneAttempts']> {
    return this.retention.pruneAttempts(...a);
  }

  closeStaleCalls(
    ...a: Parameters<Store['closeStaleCalls']>
  ): ReturnType<Store['closeStaleCalls']> {
    return this.retention.closeStaleCalls(...a);
  }

  pruneRequests(...a: Parameters<Store['pruneRequests']>): ReturnType<Store['pruneRequests']> {
    return this.retention.pruneRequests(...a);
  }

  async close(): Promise<void> {
    this.conn.close();
  }
}
