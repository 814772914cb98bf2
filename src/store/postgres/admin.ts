// The PostgreSQL store's housekeeping: the numbers for metrics and the console (one snapshot),
// the setup page's questions (agents without a CRM user, each source's newest request), the
// write heartbeat, console sessions and the refusals noted per source.

import {
  AGENTS_WITHOUT_USER_SQL,
  Binder,
  refusalUpsertSql,
  SOURCE_ACTIVITY_SQL,
  TARGET_COUNTS_SQL,
} from '../queries.js';
import {
  nativeReaders,
  toAgentWithoutUser,
  toRefusal,
  toSourceActivity,
  toTargetStats,
} from '../rows.js';
import type {
  AgentWithoutUser,
  Refusal,
  SessionRow,
  SignInLinkRow,
  SignInLinkTaken,
  SourceActivity,
  StoreStats,
} from '../types.js';
import { type Db, iso } from './db.js';
import { countInboxOn } from './inbox.js';

export async function stats(db: Db): Promise<StoreStats> {
  return db.tx(async (c) => {
    // One snapshot for all the numbers.
    await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const oldest = await c.query<{ received_at: Date }>(
      `SELECT received_at FROM inbox WHERE state = 'pending' ORDER BY id LIMIT 1`,
    );
    const counts = await c.query(TARGET_COUNTS_SQL);
    const due = await c.query(
      `SELECT target, min(due_at) AS oldest_due_at FROM deliveries
       WHERE state = 'due' AND due_at <= now() GROUP BY target`,
    );
    return {
      oldestPendingAt: iso(oldest.rows[0]?.received_at ?? null),
      inbox: await countInboxOn(c),
      targets: toTargetStats(counts.rows, due.rows, nativeReaders),
    };
  });
}

export async function agentsWithoutUser(
  db: Db,
  q: { since: string; limit: number },
): Promise<AgentWithoutUser[]> {
  const b = new Binder('postgres');
  const r = await db.pool.query(AGENTS_WITHOUT_USER_SQL(b, q.since, q.limit), b.values);
  return r.rows.map((x) => toAgentWithoutUser(x, nativeReaders));
}

export async function sourceActivity(db: Db): Promise<SourceActivity[]> {
  const r = await db.pool.query(SOURCE_ACTIVITY_SQL);
  return r.rows.map((x) => toSourceActivity(x, nativeReaders));
}

export async function checkWritable(db: Db): Promise<void> {
  await db.pool.query(
    `INSERT INTO meta (key, value) VALUES ('heartbeat', now()::text) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
  );
}

export async function createSession(db: Db, x: SessionRow): Promise<void> {
  await db.pool.query(
    'INSERT INTO sessions (id, created_at, last_seen_at, expires_at, agent, agent_email) VALUES ($1, $2, $3, $4, $5, $6)',
    [x.id, x.createdAt, x.lastSeenAt, x.expiresAt, x.agent ?? null, x.email ?? null],
  );
}

export async function getSession(db: Db, id: string): Promise<SessionRow | undefined> {
  const r = await db.pool.query<{
    id: string;
    created_at: Date;
    last_seen_at: Date;
    expires_at: Date;
    agent: string | null;
    agent_email: string | null;
  }>(
    'SELECT id, created_at, last_seen_at, expires_at, agent, agent_email FROM sessions WHERE id = $1',
    [id],
  );
  const x = r.rows[0];
  if (!x) return undefined;
  const row: SessionRow = {
    id: x.id,
    createdAt: iso(x.created_at)!,
    lastSeenAt: iso(x.last_seen_at)!,
    expiresAt: iso(x.expires_at)!,
  };
  return {
    ...row,
    ...(x.agent === null ? {} : { agent: x.agent }),
    ...(x.agent_email === null ? {} : { email: x.agent_email }),
  };
}

export async function touchSession(db: Db, id: string, at: string): Promise<void> {
  await db.pool.query('UPDATE sessions SET last_seen_at = $2 WHERE id = $1', [id, at]);
}

export async function deleteSession(db: Db, id: string): Promise<void> {
  await db.pool.query('DELETE FROM sessions WHERE id = $1', [id]);
}

export async function deleteAllSessions(db: Db): Promise<number> {
  return (await db.pool.query('DELETE FROM sessions')).rowCount ?? 0;
}

export async function pruneSessions(
  db: Db,
  q: { now: string; idleSince: string },
): Promise<number> {
  await db.pool.query('DELETE FROM sign_in_links WHERE expires_at <= $1', [q.now]);
  const r = await db.pool.query(
    'DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2',
    [q.now, q.idleSince],
  );
  return r.rowCount ?? 0;
}

export async function createSignInLink(db: Db, x: SignInLinkRow): Promise<void> {
  await db.pool.query(
    'INSERT INTO sign_in_links (id, agent, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)',
    [x.id, x.agent, x.email ?? null, x.createdAt, x.expiresAt],
  );
}

export async function takeSignInLink(
  db: Db,
  id: string,
  now: string,
): Promise<SignInLinkTaken | undefined> {
  // One statement: of two instances taking the same link at once, only one gets its row.
  const r = await db.pool.query<{ agent: string; email: string | null; good: boolean }>(
    'DELETE FROM sign_in_links WHERE id = $1 RETURNING agent, email, expires_at > $2 AS good',
    [id, now],
  );
  const x = r.rows[0];
  if (!x?.good) return undefined;
  return x.email === null ? { agent: x.agent } : { agent: x.agent, email: x.email };
}

export async function noteRefusals(db: Db, rows: Refusal[]): Promise<void> {
  let n = 0;
  const sql = refusalUpsertSql(() => `$${++n}`);
  await db.tx(async (c) => {
    for (const r of rows)
      await c.query(sql, [r.source, r.at, r.status, r.code, r.reason, r.path, r.address, r.count]);
  });
}

export async function refusals(db: Db): Promise<Refusal[]> {
  const r = await db.pool.query('SELECT * FROM refusals ORDER BY source');
  return r.rows.map((x) => toRefusal(x, nativeReaders));
}
