// The SQLite store's small tables and overviews: console sessions, refused requests, the heartbeat
// that proves the file writable, and the stats and activity the console and /metrics show.

import type Database from 'better-sqlite3';
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
  StoreStats,
  SessionRow,
  SignInLinkRow,
  SignInLinkTaken,
} from '../types.js';
import type { SqliteConnection } from './connection.js';
import type { SqliteInbox } from './inbox.js';

export class SqliteAdmin {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(
    private readonly conn: SqliteConnection,
    private readonly inbox: SqliteInbox,
  ) {
    this.db = conn.db;
    const db = this.db;
    this.stmts = {
      heartbeat: db.prepare(
        `INSERT INTO meta (key, value) VALUES ('heartbeat', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      ),
    };
  }

  async createSession(x: SessionRow): Promise<void> {
    this.conn.assertFile();
    this.db
      .prepare(
        'INSERT INTO sessions (id, created_at, last_seen_at, expires_at, agent, agent_email) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(x.id, x.createdAt, x.lastSeenAt, x.expiresAt, x.agent ?? null, x.email ?? null);
  }

  async getSession(id: string): Promise<SessionRow | undefined> {
    const r = this.db
      .prepare(
        'SELECT id, created_at AS createdAt, last_seen_at AS lastSeenAt, expires_at AS expiresAt, agent, agent_email AS email FROM sessions WHERE id = ?',
      )
      .get(id) as
      | (Omit<SessionRow, 'agent' | 'email'> & { agent: string | null; email: string | null })
      | undefined;
    if (!r) return undefined;
    const { agent, email, ...row } = r;
    return {
      ...row,
      ...(agent === null ? {} : { agent }),
      ...(email === null ? {} : { email }),
    };
  }

  async touchSession(id: string, at: string): Promise<void> {
    this.conn.assertFile();
    this.db.prepare('UPDATE sessions SET last_seen_at = ? WHERE id = ?').run(at, id);
  }

  async deleteSession(id: string): Promise<void> {
    this.conn.assertFile();
    this.db.prepare('DELETE FROM sessions WHERE id = ?').run(id);
  }

  async deleteAllSessions(): Promise<number> {
    this.conn.assertFile();
    return this.db.prepare('DELETE FROM sessions').run().changes;
  }

  async pruneSessions(q: { now: string; idleSince: string }): Promise<number> {
    this.conn.assertFile();
    this.db.prepare('DELETE FROM sign_in_links WHERE expires_at <= ?').run(q.now);
    return this.db
      .prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at < ?')
      .run(q.now, q.idleSince).changes;
  }

  async createSignInLink(x: SignInLinkRow): Promise<void> {
    this.conn.assertFile();
    this.db
      .prepare(
        'INSERT INTO sign_in_links (id, agent, email, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(x.id, x.agent, x.email ?? null, x.createdAt, x.expiresAt);
  }

  async takeSignInLink(id: string, now: string): Promise<SignInLinkTaken | undefined> {
    this.conn.assertFile();
    const r = this.db
      .prepare(
        'DELETE FROM sign_in_links WHERE id = ? RETURNING agent, email, expires_at AS expiresAt',
      )
      .get(id) as { agent: string; email: string | null; expiresAt: string } | undefined;
    if (!r || r.expiresAt <= now) return undefined;
    return r.email === null ? { agent: r.agent } : { agent: r.agent, email: r.email };
  }

  async noteRefusals(rows: Refusal[]): Promise<void> {
    this.conn.assertFile();
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
    this.conn.assertFile();
    this.stmts.heartbeat.run(new Date().toISOString());
  }
}
