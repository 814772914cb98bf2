// The PostgreSQL store's deliveries and their attempts: work claimed with SKIP LOCKED under a
// lease that expires (a crashed instance's work is picked up by the others), finished only by
// the lease's owner, listed, retried, and queued for old calls by a backfill.

import pg from 'pg';
import type { DeliveryJob, DeliveryOutcome, RemoteState } from '../../domain/delivery.js';
import type { CallRecord } from '../../domain/model.js';
import { dueAt } from '../../domain/routing.js';
import {
  BACKFILL_UPSERT_SQL,
  backfillNext,
  backfillSql,
  Binder,
  RETRYING_SQL,
  whereOf,
} from '../queries.js';
import {
  ATTEMPT_COLUMNS,
  type AttemptsOf,
  attemptValues,
  nativeReaders,
  toAttemptRow,
  toDeliveryRow,
} from '../rows.js';
import type {
  AttemptRow,
  BackfillBatch,
  BackfillQuery,
  CallKey,
  DeliveryRow,
  DeliveryState,
  NewAttempt,
} from '../types.js';
import { type Db, iso, type Q } from './db.js';

export async function claimDeliveries(
  db: Db,
  q: {
    limit: number;
    owner: string;
    leaseMs: number;
    targets?: string[];
  },
): Promise<DeliveryJob[]> {
  return db.tx(async (c) => {
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

export async function saveRemote(
  db: Db,
  id: number,
  owner: string,
  remote: RemoteState,
): Promise<void> {
  const r = await db.pool.query(
    'UPDATE deliveries SET remote = $1, updated_at = now() WHERE id = $2 AND lease_owner = $3',
    [JSON.stringify(remote), id, owner],
  );
  if (r.rowCount !== 1) throw new Error(`delivery ${id} is not leased to ${owner}`);
}

export async function finishDelivery(
  db: Db,
  id: number,
  owner: string,
  o: DeliveryOutcome,
  attempts: NewAttempt[] = [],
): Promise<void> {
  await db.tx(async (c) => {
    const r = o.ok
      ? await c.query<AttemptsOf>(
          `UPDATE deliveries SET done_rev = $3, remote = $4, attempts = 0, first_failed_at = NULL, last_error = NULL, lease_owner = NULL, lease_until = NULL,
             updated_at = now(), dry_run = $5, state = CASE WHEN want_rev > $3 THEN 'due' ELSE 'done' END
           WHERE id = $1 AND lease_owner = $2
           RETURNING id, target, source, call_id, want_rev`,
          [id, owner, o.rev, JSON.stringify(o.remote), !!o.dryRun],
        )
      : await c.query<AttemptsOf>(
          `UPDATE deliveries SET attempts = attempts + 1, first_failed_at = coalesce(first_failed_at, now()), last_error = $3,
             remote = coalesce($4::jsonb, remote), lease_owner = NULL, lease_until = NULL, updated_at = now(),
             state = CASE WHEN $5 THEN 'dead' ELSE 'due' END, due_at = coalesce($6::timestamptz, due_at),
             dry_run = $7
           WHERE id = $1 AND lease_owner = $2
           RETURNING id, target, source, call_id, want_rev`,
          [
            id,
            owner,
            o.error,
            o.remote ? JSON.stringify(o.remote) : null,
            o.dead,
            o.retryAt ?? null,
            !!o.dryRun,
          ],
        );
    const d = r.rows[0];
    // Lost the lease: nothing was updated, and the run's attempts are not written either.
    if (!d) throw new Error(`delivery ${id} is not leased to ${owner}`);
    if (!attempts.length) return;
    const b = new Binder('postgres');
    const rows = attempts.map(
      (a) =>
        `(${attemptValues(d, o, a)
          .map((v) => b.bind(v))
          .join(', ')})`,
    );
    await c.query(
      `INSERT INTO delivery_attempts (${ATTEMPT_COLUMNS}) VALUES ${rows.join(', ')}`,
      b.values,
    );
  });
}

export async function listAttempts(
  db: Db,
  q: {
    deliveryId?: number;
    call?: CallKey;
    limit: number;
    beforeId?: number;
  },
): Promise<AttemptRow[]> {
  const b = new Binder('postgres');
  const where: string[] = [];
  if (q.deliveryId !== undefined) where.push(`delivery_id = ${b.bind(q.deliveryId)}`);
  if (q.call) {
    where.push(`source = ${b.bind(q.call.source)} AND call_id = ${b.bind(q.call.callId)}`);
  }
  if (q.beforeId !== undefined) where.push(`id < ${b.bind(q.beforeId)}`);
  const r = await db.pool.query(
    `SELECT * FROM delivery_attempts ${whereOf(where)} ORDER BY id DESC LIMIT ${b.bind(q.limit)}`,
    b.values,
  );
  return r.rows.map((x) => toAttemptRow(x, nativeReaders));
}

export async function releaseDeliveries(db: Db, owner: string | null): Promise<number> {
  const r = await db.pool.query(
    `UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 OR ($1::text IS NULL AND lease_owner IS NOT NULL)`,
    [owner],
  );
  return r.rowCount ?? 0;
}

export async function listDeliveries(
  db: Db,
  q: {
    state?: DeliveryState | 'retrying';
    target?: string;
    limit: number;
    afterId?: number;
  },
): Promise<DeliveryRow[]> {
  const b = new Binder('postgres');
  const where = [`id > ${b.bind(q.afterId ?? 0)}`];
  if (q.state === 'retrying') where.push(RETRYING_SQL);
  else if (q.state) where.push(`state = ${b.bind(q.state)}`);
  if (q.target !== undefined) where.push(`target = ${b.bind(q.target)}`);
  const r = await db.pool.query(
    `SELECT * FROM deliveries ${whereOf(where)} ORDER BY id LIMIT ${b.bind(q.limit)}`,
    b.values,
  );
  return r.rows.map((x) => toDeliveryRow(x, nativeReaders));
}

export async function deliveriesOf(db: Db, calls: CallKey[]): Promise<DeliveryRow[]> {
  if (!calls.length) return [];
  const r = await db.pool.query(
    `SELECT * FROM deliveries WHERE (source, call_id) IN
       (SELECT * FROM unnest($1::text[], $2::text[]))
     ORDER BY target, source, call_id`,
    [calls.map((k) => k.source), calls.map((k) => k.callId)],
  );
  return r.rows.map((x) => toDeliveryRow(x, nativeReaders));
}

export async function getDelivery(db: Db, id: number): Promise<DeliveryRow | undefined> {
  const r = await db.pool.query('SELECT * FROM deliveries WHERE id = $1', [id]);
  return r.rows[0] && toDeliveryRow(r.rows[0], nativeReaders);
}

export async function retryDeliveries(db: Db, ids: number[] | 'dead'): Promise<number> {
  // A dead delivery starts over; a due one keeps its failure count (it is still retrying) and
  // is never pushed back behind where it was.
  const set = `SET due_at = CASE WHEN state = 'due' THEN least(due_at, now()) ELSE now() END,
                 attempts = CASE WHEN state = 'dead' THEN 0 ELSE attempts END,
                 first_failed_at = CASE WHEN state = 'dead' THEN NULL ELSE first_failed_at END,
                 state = 'due', updated_at = now()`;
  const r =
    ids === 'dead'
      ? await db.pool.query(`UPDATE deliveries ${set} WHERE state = 'dead'`)
      : await db.pool.query(
          `UPDATE deliveries ${set}
           WHERE id = ANY($1::bigint[])
             AND (state = 'dead' OR (state = 'due' AND (lease_until IS NULL OR lease_until < now())))`,
          [ids],
        );
  return r.rowCount ?? 0;
}

export async function redeliver(db: Db, ids: number[]): Promise<number> {
  const r = await db.pool.query(
    `UPDATE deliveries SET state = 'due', due_at = now(), attempts = 0, first_failed_at = NULL,
       last_error = NULL, updated_at = now()
     WHERE state = 'done' AND id = ANY($1::bigint[])`,
    [ids],
  );
  return r.rowCount ?? 0;
}

export async function backfill(db: Db, q: BackfillQuery): Promise<BackfillBatch> {
  const run = async (c: Q | pg.Pool): Promise<BackfillBatch> => {
    const b = new Binder('postgres');
    const rows = (
      await c.query<{ source: string; call_id: string; record: CallRecord; revision: number }>(
        backfillSql(b, q),
        b.values,
      )
    ).rows;
    const now = new Date();
    let matched = 0;
    for (const r of rows) {
      const due = dueAt(r.record, db.routing, q.target, now);
      if (due === undefined) continue;
      matched++;
      // Only where there is no work yet (a concurrent fold may just have made some), or only a
      // dry run's.
      if (!q.dryRun) {
        const ub = new Binder('postgres');
        const sql = BACKFILL_UPSERT_SQL(ub, [
          q.target,
          r.source,
          r.call_id,
          due,
          r.revision,
          now.toISOString(),
        ]);
        await c.query(sql, ub.values);
      }
    }
    return { scanned: rows.length, matched, next: backfillNext(rows, q.limit) };
  };
  return q.dryRun ? run(db.pool) : db.tx(run);
}
