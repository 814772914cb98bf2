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
import { closeRequest } from '../../domain/close.js';
import type { DeliveryJob, DeliveryOutcome, RemoteState } from '../../domain/delivery.js';
import type { InboxState } from '../../domain/inbox.js';
import type { MapResult } from '../../domain/request.js';
import type { Routing } from '../../domain/routing.js';
import {
  AGENTS_WITHOUT_USER_SQL,
  Binder,
  isoTime,
  PRUNE_ATTEMPTS_SQL,
  refusalUpsertSql,
  RETENTION_SQL,
  SOURCE_ACTIVITY_SQL,
  staleCallsSql,
  TARGET_COUNTS_SQL,
} from '../queries.js';
import {
  nativeReaders,
  toAgentWithoutUser,
  toRefusal,
  toSourceActivity,
  toStaleCall,
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

  private insertOne(c: Q, arg1: NewInbox): Promise<number> {
    return inbox.insertOne(this.db, c, arg1);
  }

  private lockCalls(c: Q, keys: string[]): Promise<void> {
    return inbox.lockCalls(c, keys);
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

  async pruneAttempts(before: string, limit: number): Promise<number> {
    const b = new Binder('postgres');
    return (await this.pool.query(PRUNE_ATTEMPTS_SQL(b, before, limit), b.values)).rowCount ?? 0;
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

  async pruneRequests(q: {
    before: string;
    limit: number;
  }): Promise<{ calls: number; requests: number }> {
    return this.tx(async (c) => {
      const run = async (f: (b: Binder) => string): Promise<pg.QueryResult> => {
        const b = new Binder('postgres');
        const text = f(b);
        return c.query(text, b.values);
      };
      const now = new Date().toISOString();
      const calls = (await run((b) => RETENTION_SQL.calls(b, q.before, q.limit))).rows as {
        source: string;
        call_id: string;
      }[];
      // The calls' filing locks: a request for one of them waits, and then refolds nothing.
      await this.lockCalls(
        c,
        calls.map((r) => inbox.lockKey(r.source, r.call_id, null)),
      );
      let requests = 0;
      for (const { source, call_id: callId } of calls) {
        const ids = (await run((b) => RETENTION_SQL.requestsOf(b, source, callId))).rows.map(
          (r: { inbox_id: number }) => Number(r.inbox_id),
        );
        await run((b) => RETENTION_SQL.eventsOf(b, source, callId));
        await run((b) => RETENTION_SQL.linksOf(b, source, callId));
        requests +=
          (
            await run((b) =>
              RETENTION_SQL.orphans(b, `SELECT unnest(${b.bind(ids)}::bigint[])`, q.before),
            )
          ).rowCount ?? 0;
        await run((b) => RETENTION_SQL.markPruned(b, source, callId, now));
      }
      requests += (await run((b) => RETENTION_SQL.loose(b, q.before, q.limit))).rowCount ?? 0;
      return { calls: calls.length, requests };
    });
  }

  async closeStaleCalls(q: { before: string; at: string; limit: number }): Promise<CallKey[]> {
    const at = isoTime(q.at);
    const before = isoTime(q.before);
    return this.tx(async (c) => {
      const b = new Binder('postgres');
      const found = (
        await c.query<{ source: string; call_id: string }>(staleCallsSql(b, q), b.values)
      ).rows;
      if (!found.length) return [];
      // The calls' filing locks (insertInbox), then the same question again: a statement sees what
      // committed before it began, so a close by another instance, or an event filed meanwhile,
      // rules a call out, and one filed from now on waits for this transaction.
      await this.lockCalls(
        c,
        found.map((r) => inbox.lockKey(r.source, r.call_id, null)),
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
        await this.insertOne(c, closeRequest(call, at, before));
        closed.push({ source: call.source, callId: call.callId });
      }
      return closed;
    });
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
