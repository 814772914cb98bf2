// The SQLite store's deliveries and their attempts: claiming due work under a lease, finishing it
// (with the attempts of the run), the views and the retries an operator asks for, and backfill,
// which makes calls already stored due for a target.

import type Database from 'better-sqlite3';
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
  attemptValues,
  textReaders,
  toAttemptRow,
  toDeliveryRow,
  type AttemptsOf,
} from '../rows.js';
import type {
  AttemptRow,
  BackfillBatch,
  BackfillQuery,
  CallKey,
  CallRow,
  DeliveryRow,
  DeliveryState,
  NewAttempt,
} from '../types.js';
import type { SqliteConnection } from './connection.js';

interface DeliveryDbRow {
  id: number;
  target: string;
  source: string;
  call_id: string;
  state: DeliveryState;
  due_at: string;
  want_rev: number;
  done_rev: number;
  attempts: number;
  first_failed_at: string | null;
  last_error: string | null;
  remote: string;
  updated_at: string;
}

export class SqliteDeliveries {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(private readonly conn: SqliteConnection) {
    this.db = conn.db;
    const db = this.db;
    this.stmts = {
      // A backfill adds work only where there is none (done or dead rows stay as they are, but
      // for a dry run's).
      backfillDelivery: db.prepare(BACKFILL_UPSERT_SQL(new Binder('sqlite'), [0, 0, 0, 0, 0, 0])),
      claim: db.prepare(
        `UPDATE deliveries SET lease_owner = @owner, lease_until = @until
         WHERE id IN (SELECT id FROM deliveries WHERE state = 'due' AND due_at <= @now AND (lease_until IS NULL OR lease_until < @now)
                      AND (@targets IS NULL OR target IN (SELECT value FROM json_each(@targets)))
                      ORDER BY due_at, id LIMIT @limit)
         RETURNING id, target, source, call_id, attempts, first_failed_at, remote`,
      ),
      callWithRev: db.prepare(
        `SELECT record, revision FROM calls WHERE source = ? AND call_id = ?`,
      ),
      saveRemote: db.prepare(
        `UPDATE deliveries SET remote = ?, updated_at = ? WHERE id = ? AND lease_owner = ?`,
      ),
      delivered: db.prepare(
        `UPDATE deliveries SET done_rev = @rev, remote = @remote, attempts = 0, first_failed_at = NULL, last_error = NULL,
           lease_owner = NULL, lease_until = NULL, updated_at = @now, dry_run = @dryRun,
           state = CASE WHEN want_rev > @rev THEN 'due' ELSE 'done' END
         WHERE id = @id AND lease_owner = @owner
         RETURNING id, target, source, call_id, want_rev`,
      ),
      failed: db.prepare(
        `UPDATE deliveries SET attempts = attempts + 1, first_failed_at = coalesce(first_failed_at, @now), last_error = @error,
           remote = coalesce(@remote, remote), lease_owner = NULL, lease_until = NULL, updated_at = @now,
           dry_run = @dryRun, state = CASE WHEN @dead THEN 'dead' ELSE 'due' END, due_at = coalesce(@retryAt, due_at)
         WHERE id = @id AND lease_owner = @owner
         RETURNING id, target, source, call_id, want_rev`,
      ),
      insertAttempt: db.prepare(
        `INSERT INTO delivery_attempts (${ATTEMPT_COLUMNS})
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      goneCall: db.prepare(
        `UPDATE deliveries SET state = 'done', last_error = 'the call no longer exists', lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ?`,
      ),
      release: db.prepare(
        `UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = @owner OR (@owner IS NULL AND lease_owner IS NOT NULL)`,
      ),
      getDelivery: db.prepare(`SELECT * FROM deliveries WHERE id = ?`),
    };
  }

  async claimDeliveries(q: {
    limit: number;
    owner: string;
    leaseMs: number;
    targets?: string[];
  }): Promise<DeliveryJob[]> {
    this.conn.assertFile();
    return this.db
      .transaction(() => {
        const now = Date.now();
        const rows = this.stmts.claim.all({
          owner: q.owner,
          until: new Date(now + q.leaseMs).toISOString(),
          now: new Date(now).toISOString(),
          targets: q.targets ? JSON.stringify(q.targets) : null,
          limit: q.limit,
        }) as Pick<
          DeliveryDbRow,
          'id' | 'target' | 'source' | 'call_id' | 'attempts' | 'first_failed_at' | 'remote'
        >[];
        const jobs: DeliveryJob[] = [];
        for (const r of rows) {
          const call = this.stmts.callWithRev.get(r.source, r.call_id) as
            { record: string; revision: number } | undefined;
          if (!call) {
            // The call went away (its requests were remapped elsewhere): nothing left to deliver.
            this.stmts.goneCall.run(new Date(now).toISOString(), r.id);
            continue;
          }
          jobs.push({
            id: r.id,
            target: r.target,
            source: r.source,
            callId: r.call_id,
            rev: call.revision,
            attempts: r.attempts,
            firstFailedAt: r.first_failed_at,
            remote: JSON.parse(r.remote) as RemoteState,
            record: JSON.parse(call.record) as CallRow['record'],
          });
        }
        return jobs;
      })
      .immediate();
  }

  async saveRemote(id: number, owner: string, remote: RemoteState): Promise<void> {
    this.conn.assertFile();
    const r = this.stmts.saveRemote.run(
      JSON.stringify(remote),
      new Date().toISOString(),
      id,
      owner,
    );
    if (r.changes !== 1) throw new Error(`delivery ${id} is not leased to ${owner}`);
  }

  async finishDelivery(
    id: number,
    owner: string,
    o: DeliveryOutcome,
    attempts: NewAttempt[] = [],
  ): Promise<void> {
    this.conn.assertFile();
    this.db
      .transaction(() => {
        const now = new Date().toISOString();
        const d = (
          o.ok
            ? this.stmts.delivered.get({
                id,
                owner,
                rev: o.rev,
                remote: JSON.stringify(o.remote),
                now,
                dryRun: o.dryRun ? 1 : 0,
              })
            : this.stmts.failed.get({
                id,
                owner,
                now,
                error: o.error,
                dead: o.dead ? 1 : 0,
                retryAt: o.retryAt ?? null,
                remote: o.remote ? JSON.stringify(o.remote) : null,
                dryRun: o.dryRun ? 1 : 0,
              })
        ) as AttemptsOf | undefined;
        // Lost the lease: nothing was updated, and the run's attempts are not written either.
        if (!d) throw new Error(`delivery ${id} is not leased to ${owner}`);
        for (const a of attempts) this.stmts.insertAttempt.run(...attemptValues(d, o, a));
      })
      .immediate();
  }

  async listAttempts(q: {
    deliveryId?: number;
    call?: CallKey;
    limit: number;
    beforeId?: number;
  }): Promise<AttemptRow[]> {
    const b = new Binder('sqlite');
    const where: string[] = [];
    if (q.deliveryId !== undefined) where.push(`delivery_id = ${b.bind(q.deliveryId)}`);
    if (q.call) {
      where.push(`source = ${b.bind(q.call.source)} AND call_id = ${b.bind(q.call.callId)}`);
    }
    if (q.beforeId !== undefined) where.push(`id < ${b.bind(q.beforeId)}`);
    const rows = this.db
      .prepare(
        `SELECT * FROM delivery_attempts ${whereOf(where)} ORDER BY id DESC LIMIT ${b.bind(q.limit)}`,
      )
      .all(...b.values) as object[];
    return rows.map((r) => toAttemptRow(r, textReaders));
  }

  async releaseDeliveries(owner: string | null): Promise<number> {
    this.conn.assertFile();
    return this.stmts.release.run({ owner }).changes;
  }

  async listDeliveries(q: {
    state?: DeliveryState | 'retrying';
    target?: string;
    limit: number;
    afterId?: number;
  }): Promise<DeliveryRow[]> {
    const b = new Binder('sqlite');
    const where = [`id > ${b.bind(q.afterId ?? 0)}`];
    if (q.state === 'retrying') where.push(RETRYING_SQL);
    else if (q.state) where.push(`state = ${b.bind(q.state)}`);
    if (q.target !== undefined) where.push(`target = ${b.bind(q.target)}`);
    const rows = this.db
      .prepare(`SELECT * FROM deliveries ${whereOf(where)} ORDER BY id LIMIT ${b.bind(q.limit)}`)
      .all(...b.values) as DeliveryDbRow[];
    return rows.map((x) => toDeliveryRow(x, textReaders));
  }

  async deliveriesOf(calls: CallKey[]): Promise<DeliveryRow[]> {
    if (!calls.length) return [];
    const rows = this.db
      .prepare(
        `SELECT * FROM deliveries WHERE (source, call_id) IN
           (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))
         ORDER BY target, source, call_id`,
      )
      .all(JSON.stringify(calls.map((k) => [k.source, k.callId]))) as DeliveryDbRow[];
    return rows.map((x) => toDeliveryRow(x, textReaders));
  }

  async getDelivery(id: number): Promise<DeliveryRow | undefined> {
    const r = this.stmts.getDelivery.get(id) as DeliveryDbRow | undefined;
    return r && toDeliveryRow(r, textReaders);
  }

  async retryDeliveries(ids: number[] | 'dead'): Promise<number> {
    this.conn.assertFile();
    // A dead delivery starts over; a due one keeps its failure count (it is still retrying) and
    // is never pushed back behind where it was.
    const set = `SET due_at = CASE WHEN state = 'due' AND due_at < @now THEN due_at ELSE @now END,
                   attempts = CASE WHEN state = 'dead' THEN 0 ELSE attempts END,
                   first_failed_at = CASE WHEN state = 'dead' THEN NULL ELSE first_failed_at END,
                   state = 'due', updated_at = @now`;
    const now = new Date().toISOString();
    if (ids === 'dead') {
      return this.db.prepare(`UPDATE deliveries ${set} WHERE state = 'dead'`).run({ now }).changes;
    }
    return this.db
      .prepare(
        `UPDATE deliveries ${set}
         WHERE id IN (SELECT value FROM json_each(@ids))
           AND (state = 'dead' OR (state = 'due' AND (lease_until IS NULL OR lease_until < @now)))`,
      )
      .run({ now, ids: JSON.stringify(ids) }).changes;
  }

  async redeliver(ids: number[]): Promise<number> {
    this.conn.assertFile();
    return this.db
      .prepare(
        `UPDATE deliveries SET state = 'due', due_at = @now, attempts = 0, first_failed_at = NULL,
           last_error = NULL, updated_at = @now
         WHERE state = 'done' AND id IN (SELECT value FROM json_each(@ids))`,
      )
      .run({ now: new Date().toISOString(), ids: JSON.stringify(ids) }).changes;
  }

  async backfill(q: BackfillQuery): Promise<BackfillBatch> {
    if (!q.dryRun) this.conn.assertFile();
    const run = (): BackfillBatch => {
      const b = new Binder('sqlite');
      const rows = this.db.prepare(backfillSql(b, q)).all(...b.values) as {
        source: string;
        call_id: string;
        record: string;
        revision: number;
      }[];
      const now = new Date();
      let matched = 0;
      for (const r of rows) {
        const due = dueAt(JSON.parse(r.record) as CallRecord, this.conn.routing, q.target, now);
        if (due === undefined) continue;
        matched++;
        if (!q.dryRun)
          this.stmts.backfillDelivery.run(
            q.target,
            r.source,
            r.call_id,
            due,
            r.revision,
            now.toISOString(),
          );
      }
      return { scanned: rows.length, matched, next: backfillNext(rows, q.limit) };
    };
    return q.dryRun ? run() : this.db.transaction(run).immediate();
  }
}
