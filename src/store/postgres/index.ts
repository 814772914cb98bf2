// The multi-instance store: PostgreSQL, shared by any number of relay instances. The same contract
// as the SQLite store (test/store/contract.test.ts runs against both); what differs is how
// instances share the work:
//   - migrations run under an advisory lock, so instances starting together do not race;
//   - pending requests are claimed with FOR UPDATE SKIP LOCKED;
//   - requests are filed under per-call transaction locks, and each call is folded under another
//     one, both taken in sorted order, so two instances never file or fold one call at once (and
//     cannot deadlock);
//   - deliveries are claimed with SKIP LOCKED plus a lease that expires, so a crashed instance's
//     work is picked up by the others.

import pg from 'pg';
import type { DeliveryJob, DeliveryOutcome, RemoteState } from '../../domain/delivery.js';
import type { InboxState } from '../../domain/inbox.js';
import type { MapResult } from '../../domain/request.js';
import type { Routing } from '../../domain/routing.js';
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
  AttemptRow,
  BackfillBatch,
  BackfillQuery,
  CallKey,
  CallQuery,
  CallRow,
  DeliveryRow,
  DeliveryState,
  InboxRow,
  NewAttempt,
  NewInbox,
  Refusal,
  SessionRow,
  SourceActivity,
  Store,
  StoreStats,
} from '../types.js';
import { Db, iso, type PostgresOptions, type Q } from './db.js';
import { migrate } from './migrations.js';
import * as retention from './retention.js';
import * as inbox from './inbox.js';
import * as calls from './calls.js';
import * as deliveries from './deliveries.js';

export type { PostgresOptions } from './db.js';

export class PostgresStore implements Store {
  readonly backend = 'postgres' as const;
  private readonly db: Db;

  private constructor(url: string, opts: PostgresOptions) {
    this.db = new Db(url, opts);
  }

  private get pool(): pg.Pool {
    return this.db.pool;
  }

  private get routing(): Routing {
    return this.db.routing;
  }

  private get maxEvents(): number {
    return this.db.maxEvents;
  }

  static async open(url: string, opts: PostgresOptions = {}): Promise<PostgresStore> {
    const s = new PostgresStore(url, opts);
    await s.migrate();
    return s;
  }

  private tx<T>(fn: (c: Q) => Promise<T>): Promise<T> {
    return this.db.tx(fn);
  }

  async setRouting(routing: Routing): Promise<void> {
    this.db.routing = routing;
  }

  async migrate(): Promise<void> {
    await migrate(this.db);
  }

  insertInbox(batch: NewInbox[]): Promise<number[]> {
    return inbox.insertInbox(this.db, batch);
  }

  applyPending(limit: number): Promise<number> {
    return inbox.applyPending(this.db, limit);
  }

  remap(id: number, result: MapResult, provider: string): Promise<void> {
    return inbox.remap(this.db, id, result, provider);
  }

  claimDeliveries(q: {
    limit: number;
    owner: string;
    leaseMs: number;
    targets?: string[];
  }): Promise<DeliveryJob[]> {
    return deliveries.claimDeliveries(this.db, q);
  }

  saveRemote(id: number, owner: string, remote: RemoteState): Promise<void> {
    return deliveries.saveRemote(this.db, id, owner, remote);
  }

  finishDelivery(
    id: number,
    owner: string,
    o: DeliveryOutcome,
    attempts: NewAttempt[] = [],
  ): Promise<void> {
    return deliveries.finishDelivery(this.db, id, owner, o, attempts);
  }

  listAttempts(q: {
    deliveryId?: number;
    call?: CallKey;
    limit: number;
    beforeId?: number;
  }): Promise<AttemptRow[]> {
    return deliveries.listAttempts(this.db, q);
  }

  pruneAttempts(before: string, limit: number): Promise<number> {
    return retention.pruneAttempts(this.db, before, limit);
  }

  releaseDeliveries(owner: string | null): Promise<number> {
    return deliveries.releaseDeliveries(this.db, owner);
  }

  listDeliveries(q: {
    state?: DeliveryState | 'retrying';
    target?: string;
    limit: number;
    afterId?: number;
  }): Promise<DeliveryRow[]> {
    return deliveries.listDeliveries(this.db, q);
  }

  deliveriesOf(calls: CallKey[]): Promise<DeliveryRow[]> {
    return deliveries.deliveriesOf(this.db, calls);
  }

  getDelivery(id: number): Promise<DeliveryRow | undefined> {
    return deliveries.getDelivery(this.db, id);
  }

  retryDeliveries(ids: number[] | 'dead'): Promise<number> {
    return deliveries.retryDeliveries(this.db, ids);
  }

  redeliver(ids: number[]): Promise<number> {
    return deliveries.redeliver(this.db, ids);
  }

  backfill(q: BackfillQuery): Promise<BackfillBatch> {
    return deliveries.backfill(this.db, q);
  }

  pruneRequests(q: {
    before: string;
    limit: number;
  }): Promise<{ calls: number; requests: number }> {
    return retention.pruneRequests(this.db, q);
  }

  closeStaleCalls(q: { before: string; at: string; limit: number }): Promise<CallKey[]> {
    return retention.closeStaleCalls(this.db, q);
  }

  async stats(): Promise<StoreStats> {
    return this.tx(async (c) => {
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
        inbox: await this.countInboxOn(c),
        targets: toTargetStats(counts.rows, due.rows, nativeReaders),
      };
    });
  }

  getInbox(id: number): Promise<InboxRow | undefined> {
    return inbox.getInbox(this.db, id);
  }

  listInbox(q: {
    state?: InboxState;
    limit: number;
    afterId?: number;
    ids?: number[];
    source?: string;
  }): Promise<InboxRow[]> {
    return inbox.listInbox(this.db, q);
  }

  async agentsWithoutUser(q: { since: string; limit: number }): Promise<AgentWithoutUser[]> {
    const b = new Binder('postgres');
    const r = await this.pool.query(AGENTS_WITHOUT_USER_SQL(b, q.since, q.limit), b.values);
    return r.rows.map((x) => toAgentWithoutUser(x, nativeReaders));
  }

  async sourceActivity(): Promise<SourceActivity[]> {
    const r = await this.pool.query(SOURCE_ACTIVITY_SQL);
    return r.rows.map((x) => toSourceActivity(x, nativeReaders));
  }

  countInbox(): Promise<Record<InboxState, number>> {
    return inbox.countInbox(this.db);
  }

  private countInboxOn(c: Q | pg.Pool): Promise<Record<InboxState, number>> {
    return inbox.countInboxOn(c);
  }

  listCalls(q: CallQuery): Promise<CallRow[]> {
    return calls.listCalls(this.db, q);
  }

  getCalls(callId: string, source?: string): Promise<CallRow[]> {
    return calls.getCalls(this.db, callId, source);
  }

  async checkWritable(): Promise<void> {
    await this.pool.query(
      `INSERT INTO meta (key, value) VALUES ('heartbeat', now()::text) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    );
  }

  async createSession(x: SessionRow): Promise<void> {
    await this.pool.query(
      'INSERT INTO sessions (id, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4)',
      [x.id, x.createdAt, x.lastSeenAt, x.expiresAt],
    );
  }

  async getSession(id: string): Promise<SessionRow | undefined> {
    const r = await this.pool.query<{
      id: string;
      created_at: Date;
      last_seen_at: Date;
      expires_at: Date;
    }>('SELECT id, created_at, last_seen_at, expires_at FROM sessions WHERE id = $1', [id]);
    const x = r.rows[0];
    return (
      x && {
        id: x.id,
        createdAt: iso(x.created_at)!,
        lastSeenAt: iso(x.last_seen_at)!,
        expiresAt: iso(x.expires_at)!,
      }
    );
  }

  async touchSession(id: string, at: string): Promise<void> {
    await this.pool.query('UPDATE sessions SET last_seen_at = $2 WHERE id = $1', [id, at]);
  }

  async deleteSession(id: string): Promise<void> {
    await this.pool.query('DELETE FROM sessions WHERE id = $1', [id]);
  }

  async deleteAllSessions(): Promise<number> {
    return (await this.pool.query('DELETE FROM sessions')).rowCount ?? 0;
  }

  async pruneSessions(q: { now: string; idleSince: string }): Promise<number> {
    const r = await this.pool.query(
      'DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2',
      [q.now, q.idleSince],
    );
    return r.rowCount ?? 0;
  }

  async noteRefusals(rows: Refusal[]): Promise<void> {
    let n = 0;
    const sql = refusalUpsertSql(() => `$${++n}`);
    await this.tx(async (c) => {
      for (const r of rows)
        await c.query(sql, [
          r.source,
          r.at,
          r.status,
          r.code,
          r.reason,
          r.path,
          r.address,
          r.count,
        ]);
    });
  }

  async refusals(): Promise<Refusal[]> {
    const r = await this.pool.query('SELECT * FROM refusals ORDER BY source');
    return r.rows.map((x) => toRefusal(x, nativeReaders));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
