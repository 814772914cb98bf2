// The multi-instance store: PostgreSQL, shared by any number of relay instances. The same contract
// as the SQLite store (test/store/contract.test.ts runs against both); what differs is how
// instances share the work:
//   - migrations run under an advisory lock, so instances starting together do not race;
//   - pending requests are claimed with FOR UPDATE SKIP LOCKED;
//   - each call is folded under a transaction-scoped advisory lock on (source, call id), taken in
//     sorted order, so two instances never fold one call at once (and cannot deadlock);
//   - deliveries are claimed with SKIP LOCKED plus a lease that expires, so a crashed instance's
//     work is picked up by the others.

import pg from 'pg';
import type { MapResult, RawRequest } from '../../domain/request.js';
import { eventKey, foldCall } from '../../domain/fold.js';
import type { CallEvent, CallRecord, StoredEvent } from '../../domain/model.js';
import { dueTargets, NO_ROUTING, type Routing } from '../../domain/routing.js';
import { type InboxState, stateOf } from '../../domain/inbox.js';
import { nativeReaders, toDeliveryRow, toInboxRow } from '../rows.js';
import type { CallRow, DeliveryRow, DeliveryState, InboxRow, NewInbox, Store } from '../types.js';
import { MIGRATIONS } from './migrations.js';
import type { DeliveryJob, DeliveryOutcome, RemoteState } from '../../domain/delivery.js';

// bigint ids fit in a JS number for the life of any installation (2^53).
const types = {
  getTypeParser: (oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'),
};
const MIGRATION_LOCK = 0x63616c6c72656c; // "callrel"

type Q = pg.PoolClient;
type CallKey = { source: string; callId: string };
const iso = (d: Date | string | null): string | null =>
  d === null ? null : d instanceof Date ? d.toISOString() : new Date(d).toISOString();

export interface PostgresOptions {
  routing?: Routing;
  /** Pool size per instance. */
  max?: number;
}

export class PostgresStore implements Store {
  readonly backend = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly routing: Routing;

  private constructor(url: string, opts: PostgresOptions) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: opts.max ?? 10,
      types,
      connectionTimeoutMillis: 5000,
    });
    // An idle client losing its server must not crash the process: the next query reports it.
    this.pool.on('error', () => {});
    this.routing = opts.routing ?? NO_ROUTING;
  }

  static async open(url: string, opts: PostgresOptions = {}): Promise<PostgresStore> {
    const s = new PostgresStore(url, opts);
    await s.migrate();
    return s;
  }

  /** A pooled client that survives its server going away: the error reaches the caller, not the process. */
  private async client(): Promise<{ c: Q; done: (failed?: unknown) => void }> {
    const c = await this.pool.connect();
    const onError = (): void => {};
    c.on('error', onError);
    return {
      c,
      done: (failed) => {
        c.off('error', onError);
        // A client whose transaction failed may hold a dead connection: drop it rather than reuse it.
        c.release(failed instanceof Error ? failed : undefined);
      },
    };
  }

  private async tx<T>(fn: (c: Q) => Promise<T>): Promise<T> {
    const { c, done } = await this.client();
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      done();
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      done(err);
      throw err;
    }
  }

  async migrate(): Promise<void> {
    const { c, done } = await this.client();
    let failed: unknown;
    try {
      await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      await c.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)',
      );
      const done = new Set(
        (await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(
          (r) => r.version,
        ),
      );
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        await c.query('BEGIN');
        try {
          await c.query(m.sql);
          await c.query(
            'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())',
            [m.version, m.name],
          );
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK');
          throw err;
        }
      }
    } catch (err) {
      failed = err;
      throw err;
    } finally {
      await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
      done(failed);
    }
  }

  async insertInbox(batch: NewInbox[]): Promise<number[]> {
    return this.tx(async (c) => {
      const ids: number[] = [];
      for (const { req, result, provider } of batch) {
        const s = stateOf(result);
        const r = await c.query<{ id: number }>(
          `INSERT INTO inbox (source, provider, kind, received_at, method, query, content_type, headers, body, state, rule, reason_code, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
          [
            req.source,
            provider,
            req.kind,
            req.receivedAt,
            req.method,
            req.query,
            req.contentType,
            JSON.stringify(req.headers),
            req.body,
            s.state,
            s.rule,
            s.reasonCode,
            s.reason,
          ],
        );
        const id = r.rows[0]!.id;
        await this.insertEvents(c, id, req, result, provider);
        ids.push(id);
      }
      return ids;
    });
  }

  private async insertEvents(
    c: Q,
    id: number,
    req: Pick<RawRequest, 'source' | 'receivedAt'>,
    result: MapResult,
    provider: string,
  ): Promise<void> {
    if (result.status !== 'mapped') return;
    for (const [idx, event] of result.events.entries()) {
      await c.query(
        `INSERT INTO events (inbox_id, idx, source, provider, call_id, channel_id, type, key, received_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          id,
          idx,
          req.source,
          provider,
          event.callId ?? null,
          event.channelId ?? null,
          event.type,
          eventKey(event),
          req.receivedAt,
          JSON.stringify(event),
        ],
      );
    }
  }

  async applyPending(limit: number): Promise<number> {
    return this.tx(async (c) => {
      const ids = (
        await c.query<{ id: number }>(
          `SELECT id FROM inbox WHERE state = 'pending' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [limit],
        )
      ).rows.map((r) => r.id);
      if (!ids.length) return 0;
      const touched = await this.touchedBy(c, ids);
      const now = new Date().toISOString();
      await this.refoldAll(c, touched, now);
      await c.query(`UPDATE inbox SET state = 'applied', applied_at = $2 WHERE id = ANY($1)`, [
        ids,
        now,
      ]);
      return ids.length;
    });
  }

  async remap(id: number, result: MapResult, provider: string): Promise<void> {
    await this.tx(async (c) => {
      const row = (
        await c.query<{ source: string; received_at: Date }>(
          'SELECT source, received_at FROM inbox WHERE id = $1 FOR UPDATE',
          [id],
        )
      ).rows[0];
      if (!row) throw new Error(`no stored request ${id}`);
      const before = await this.touchedBy(c, [id]);
      await c.query('DELETE FROM events WHERE inbox_id = $1', [id]);
      await this.insertEvents(
        c,
        id,
        { source: row.source, receivedAt: iso(row.received_at)! },
        result,
        provider,
      );
      const after = await this.touchedBy(c, [id]);
      const now = new Date().toISOString();
      await this.refoldAll(c, new Map([...before, ...after]), now);
      const s = stateOf(result);
      const state = s.state === 'pending' ? 'applied' : s.state;
      await c.query(
        `UPDATE inbox SET state = $1, provider = $2, rule = $3, reason_code = $4, reason = $5, replays = replays + 1, applied_at = $6 WHERE id = $7`,
        [state, provider, s.rule, s.reasonCode, s.reason, state === 'applied' ? now : null, id],
      );
    });
  }

  /** Calls whose record depends on these inbox rows: their own, and those on a channel they originated. */
  private async touchedBy(c: Q, ids: number[]): Promise<Map<string, CallKey>> {
    const out = new Map<string, CallKey>();
    const own = await c.query<CallKey>(
      `SELECT DISTINCT source, call_id AS "callId" FROM events WHERE inbox_id = ANY($1) AND call_id IS NOT NULL`,
      [ids],
    );
    const origin = await c.query<CallKey>(
      `SELECT DISTINCT k.source, k.call_id AS "callId" FROM events e JOIN calls k ON k.source = e.source AND k.channel_id = e.channel_id
       WHERE e.inbox_id = ANY($1) AND e.type = 'originated'`,
      [ids],
    );
    for (const k of [...own.rows, ...origin.rows]) out.set(`${k.source}\u0000${k.callId}`, k);
    return out;
  }

  /** One call at a time across instances: advisory locks in key order, then refold. */
  private async refoldAll(c: Q, touched: Map<string, CallKey>, now: string): Promise<void> {
    for (const key of [...touched.keys()].sort()) {
      const k = touched.get(key)!;
      await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
        JSON.stringify([k.source, k.callId]),
      ]);
      await this.refold(c, k, now);
    }
  }

  private async refold(c: Q, { source, callId }: CallKey, now: string): Promise<void> {
    const rows = (
      await c.query<{
        inbox_id: number;
        idx: number;
        provider: string;
        received_at: Date;
        key: string;
        body: CallEvent;
      }>(
        'SELECT inbox_id, idx, provider, received_at, key, body FROM events WHERE source = $1 AND call_id = $2',
        [source, callId],
      )
    ).rows;
    if (!rows.length) {
      await c.query('DELETE FROM calls WHERE source = $1 AND call_id = $2', [source, callId]);
      return;
    }
    const events: StoredEvent[] = rows.map((r) => ({
      inboxId: r.inbox_id,
      idx: r.idx,
      receivedAt: iso(r.received_at)!,
      key: r.key,
      event: r.body,
    }));
    const channels = [
      ...new Set(events.map((e) => e.event.channelId).filter((x): x is string => !!x)),
    ];
    let originatedBy: string | null = null;
    if (channels.length) {
      const o = await c.query<{ body: CallEvent }>(
        `SELECT body FROM events WHERE source = $1 AND channel_id = ANY($2) AND type = 'originated' ORDER BY inbox_id LIMIT 1`,
        [source, channels],
      );
      originatedBy = o.rows[0]?.body.originatedBy ?? null;
    }
    const provider = rows.reduce((a, b) => (b.inbox_id > a.inbox_id ? b : a)).provider;
    const record = foldCall(events, { source, provider, originatedBy });
    // jsonb compares by meaning: an identical record is no change, and gets no new revision.
    const up = await c.query<{ revision: number }>(
      `INSERT INTO calls (source, call_id, channel_id, status, started_at, updated_at, revision, record)
       VALUES ($1, $2, $3, $4, $5, $6, 1, $7)
       ON CONFLICT (source, call_id) DO UPDATE SET channel_id = excluded.channel_id, status = excluded.status, started_at = excluded.started_at,
         updated_at = excluded.updated_at, revision = calls.revision + 1, record = excluded.record
       WHERE calls.record IS DISTINCT FROM excluded.record
       RETURNING revision`,
      [
        source,
        callId,
        record.channelId,
        record.status,
        record.startedAt,
        now,
        JSON.stringify(record),
      ],
    );
    const rev = up.rows[0]?.revision;
    if (rev === undefined) return;
    for (const d of dueTargets(record, this.routing, new Date(now))) {
      await c.query(
        `INSERT INTO deliveries (target, source, call_id, state, due_at, want_rev, updated_at) VALUES ($1, $2, $3, 'due', $4, $5, $6)
         ON CONFLICT (target, source, call_id) DO UPDATE SET want_rev = excluded.want_rev, updated_at = excluded.updated_at,
           due_at = CASE WHEN deliveries.state = 'due' THEN deliveries.due_at ELSE excluded.due_at END,
           attempts = CASE WHEN deliveries.state = 'due' THEN deliveries.attempts ELSE 0 END,
           first_failed_at = CASE WHEN deliveries.state = 'due' THEN deliveries.first_failed_at ELSE NULL END,
           state = 'due'`,
        [d.target, source, callId, d.dueAt, rev, now],
      );
    }
  }

  async claimDeliveries(q: {
    limit: number;
    owner: string;
    leaseMs: number;
    targets?: string[];
  }): Promise<DeliveryJob[]> {
    return this.tx(async (c) => {
      const rows = (
        await c.query<{
          id: number;
          target: string;
          source: string;
          call_id: string;
          attempts: number;
          first_failed_at: Date | null;
          remote: RemoteState;
        }>(
          `UPDATE deliveries SET lease_owner = $1, lease_until = now() + ($2 || ' milliseconds')::interval
           WHERE id IN (SELECT id FROM deliveries WHERE state = 'due' AND due_at <= now() AND (lease_until IS NULL OR lease_until < now())
                        AND ($3::text[] IS NULL OR target = ANY($3)) ORDER BY due_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
           RETURNING id, target, source, call_id, attempts, first_failed_at, remote`,
          [q.owner, String(q.leaseMs), q.targets ?? null, q.limit],
        )
      ).rows;
      const jobs: DeliveryJob[] = [];
      for (const r of rows) {
        const call = (
          await c.query<{ record: CallRecord; revision: number }>(
            'SELECT record, revision FROM calls WHERE source = $1 AND call_id = $2',
            [r.source, r.call_id],
          )
        ).rows[0];
        if (!call) {
          await c.query(
            `UPDATE deliveries SET state = 'done', last_error = 'the call no longer exists', lease_owner = NULL, lease_until = NULL, updated_at = now() WHERE id = $1`,
            [r.id],
          );
          continue;
        }
        jobs.push({
          id: r.id,
          target: r.target,
          source: r.source,
          callId: r.call_id,
          rev: call.revision,
          attempts: r.attempts,
          firstFailedAt: iso(r.first_failed_at),
          remote: r.remote,
          record: call.record,
        });
      }
      return jobs.sort((a, b) => a.id - b.id);
    });
  }

  async saveRemote(id: number, owner: string, remote: RemoteState): Promise<void> {
    const r = await this.pool.query(
      'UPDATE deliveries SET remote = $1, updated_at = now() WHERE id = $2 AND lease_owner = $3',
      [JSON.stringify(remote), id, owner],
    );
    if (r.rowCount !== 1) throw new Error(`delivery ${id} is not leased to ${owner}`);
  }

  async finishDelivery(id: number, owner: string, o: DeliveryOutcome): Promise<void> {
    const r = o.ok
      ? await this.pool.query(
          `UPDATE deliveries SET done_rev = $3, remote = $4, attempts = 0, first_failed_at = NULL, last_error = NULL, lease_owner = NULL, lease_until = NULL,
             updated_at = now(), state = CASE WHEN want_rev > $3 THEN 'due' ELSE 'done' END
           WHERE id = $1 AND lease_owner = $2`,
          [id, owner, o.rev, JSON.stringify(o.remote)],
        )
      : await this.pool.query(
          `UPDATE deliveries SET attempts = attempts + 1, first_failed_at = coalesce(first_failed_at, now()), last_error = $3,
             remote = coalesce($4::jsonb, remote), lease_owner = NULL, lease_until = NULL, updated_at = now(),
             state = CASE WHEN $5 THEN 'dead' ELSE 'due' END, due_at = coalesce($6::timestamptz, due_at)
           WHERE id = $1 AND lease_owner = $2`,
          [
            id,
            owner,
            o.error,
            o.remote ? JSON.stringify(o.remote) : null,
            o.dead,
            o.retryAt ?? null,
          ],
        );
    if (r.rowCount !== 1) throw new Error(`delivery ${id} is not leased to ${owner}`);
  }

  async releaseDeliveries(owner: string | null): Promise<number> {
    const r = await this.pool.query(
      `UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 OR ($1::text IS NULL AND lease_owner IS NOT NULL)`,
      [owner],
    );
    return r.rowCount ?? 0;
  }

  async listDeliveries(q: {
    state?: DeliveryState;
    limit: number;
    afterId?: number;
  }): Promise<DeliveryRow[]> {
    const r = await this.pool.query(
      `SELECT * FROM deliveries WHERE ($1::text IS NULL OR state = $1) AND id > $2 ORDER BY id LIMIT $3`,
      [q.state ?? null, q.afterId ?? 0, q.limit],
    );
    return r.rows.map((x) => toDeliveryRow(x, nativeReaders));
  }

  async getDelivery(id: number): Promise<DeliveryRow | undefined> {
    const r = await this.pool.query('SELECT * FROM deliveries WHERE id = $1', [id]);
    return r.rows[0] && toDeliveryRow(r.rows[0], nativeReaders);
  }

  async retryDeliveries(ids: number[] | 'dead'): Promise<number> {
    const r = await this.pool.query(
      `UPDATE deliveries SET state = 'due', due_at = now(), attempts = 0, first_failed_at = NULL, updated_at = now()
       WHERE state = 'dead' AND ($1::bigint[] IS NULL OR id = ANY($1))`,
      [ids === 'dead' ? null : ids],
    );
    return r.rowCount ?? 0;
  }

  async getInbox(id: number): Promise<InboxRow | undefined> {
    const r = await this.pool.query('SELECT * FROM inbox WHERE id = $1', [id]);
    return r.rows[0] && toInboxRow(r.rows[0], nativeReaders);
  }

  async listInbox(q: { state?: InboxState; limit: number; afterId?: number }): Promise<InboxRow[]> {
    const r = await this.pool.query(
      `SELECT * FROM inbox WHERE ($1::text IS NULL OR state = $1) AND id > $2 ORDER BY id LIMIT $3`,
      [q.state ?? null, q.afterId ?? 0, q.limit],
    );
    return r.rows.map((x) => toInboxRow(x, nativeReaders));
  }

  async countInbox(): Promise<Record<InboxState, number>> {
    const out: Record<InboxState, number> = { pending: 0, applied: 0, unmapped: 0, ignored: 0 };
    for (const r of (
      await this.pool.query<{ state: InboxState; n: number }>(
        'SELECT state, count(*)::int AS n FROM inbox GROUP BY state',
      )
    ).rows)
      out[r.state] = r.n;
    return out;
  }

  async listCalls(q: { limit: number; since?: string; source?: string }): Promise<CallRow[]> {
    const r = await this.pool.query<{ record: CallRecord; updated_at: Date; revision: number }>(
      `SELECT record, updated_at, revision FROM calls WHERE ($1::timestamptz IS NULL OR updated_at >= $1) AND ($2::text IS NULL OR source = $2)
       ORDER BY updated_at DESC, started_at DESC LIMIT $3`,
      [q.since ?? null, q.source ?? null, q.limit],
    );
    return r.rows.map((x) => ({
      record: x.record,
      updatedAt: iso(x.updated_at)!,
      revision: x.revision,
    }));
  }

  async getCalls(callId: string, source?: string): Promise<CallRow[]> {
    const r = await this.pool.query<{ record: CallRecord; updated_at: Date; revision: number }>(
      'SELECT record, updated_at, revision FROM calls WHERE call_id = $1 AND ($2::text IS NULL OR source = $2) ORDER BY source',
      [callId, source ?? null],
    );
    return r.rows.map((x) => ({
      record: x.record,
      updatedAt: iso(x.updated_at)!,
      revision: x.revision,
    }));
  }

  async checkWritable(): Promise<void> {
    await this.pool.query(
      `INSERT INTO meta (key, value) VALUES ('heartbeat', now()::text) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    );
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
