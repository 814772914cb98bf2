// The embedded store: one SQLite file in WAL mode with synchronous=FULL, so a commit is on disk
// (fsync'd) before the relay answers 2xx. better-sqlite3 is synchronous; each method is one
// transaction, and the group committer (store/group-commit.ts) batches requests into one.

import { mkdirSync } from 'node:fs';
import type { MapResult, RawRequest } from '../../domain/request.js';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { eventKey, foldCall } from '../../domain/fold.js';
import type { CallEvent, StoredEvent } from '../../domain/model.js';
import { type InboxState, stateOf } from '../../domain/inbox.js';
import { textReaders, toDeliveryRow, toInboxRow } from '../rows.js';
import { dueTargets, NO_ROUTING, type Routing } from '../../domain/routing.js';
import type { CallRow, DeliveryRow, DeliveryState, InboxRow, NewInbox, Store } from '../types.js';
import { MIGRATIONS } from './migrations.js';
import type { DeliveryJob, DeliveryOutcome, RemoteState } from '../../domain/delivery.js';

interface InboxDbRow {
  id: number;
  source: string;
  provider: string;
  kind: string;
  received_at: string;
  method: string;
  query: string;
  content_type: string | null;
  headers: string;
  body: Buffer;
  state: InboxState;
  rule: string | null;
  reason_code: string | null;
  reason: string | null;
  replays: number;
}

interface EventDbRow {
  inbox_id: number;
  provider: string;
  idx: number;
  received_at: string;
  key: string;
  body: string;
}

type CallKey = { source: string; callId: string };

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

export interface SqliteOptions {
  busyTimeoutMs?: number;
  /** Cap on the file size: past it, writes fail ("database or disk is full") and requests get 503. */
  maxSizeMB?: number;
  /** Routes and target timing: a changed call becomes due work in the same transaction. */
  routing?: Routing;
}

export class SqliteStore implements Store {
  readonly backend = 'sqlite' as const;
  readonly path: string;
  private readonly db: Database.Database;
  private readonly stmts;

  private readonly routing: Routing;

  constructor(path: string, opts: SqliteOptions = {}) {
    this.path = path;
    this.routing = opts.routing ?? NO_ROUTING;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    // A writer waits this long for another process's lock before the request gets 503.
    this.db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 5000}`);
    this.db.pragma('foreign_keys = ON');
    this.migrateSync();
    if (opts.maxSizeMB) {
      const pageSize = this.db.pragma('page_size', { simple: true }) as number;
      this.db.pragma(
        `max_page_count = ${Math.max(1, Math.floor((opts.maxSizeMB * 1024 * 1024) / pageSize))}`,
      );
    }
    const db = this.db;
    this.stmts = {
      insertInbox: db.prepare(
        `INSERT INTO inbox (source, provider, kind, received_at, method, query, content_type, headers, body, state, rule, reason_code, reason)
         VALUES (@source, @provider, @kind, @receivedAt, @method, @query, @contentType, @headers, @body, @state, @rule, @reasonCode, @reason)`,
      ),
      insertEvent: db.prepare(
        `INSERT INTO events (inbox_id, idx, source, provider, call_id, channel_id, type, key, received_at, body)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      pendingIds: db
        .prepare(`SELECT id FROM inbox WHERE state = 'pending' ORDER BY id LIMIT ?`)
        .pluck(),
      callsOfInbox: db.prepare(
        `SELECT DISTINCT source, call_id AS callId FROM events WHERE inbox_id = ? AND call_id IS NOT NULL`,
      ),
      originsOfInbox: db.prepare(
        `SELECT source, channel_id AS channelId FROM events WHERE inbox_id = ? AND type = 'originated'`,
      ),
      callsOnChannel: db.prepare(
        `SELECT source, call_id AS callId FROM calls WHERE source = ? AND channel_id = ?`,
      ),
      eventsOfCall: db.prepare(
        `SELECT inbox_id, idx, provider, received_at, key, body FROM events WHERE source = ? AND call_id = ?`,
      ),
      originOf: db
        .prepare(
          `SELECT body FROM events WHERE source = ? AND channel_id = ? AND type = 'originated' ORDER BY inbox_id LIMIT 1`,
        )
        .pluck(),
      callRecord: db.prepare(`SELECT record FROM calls WHERE source = ? AND call_id = ?`).pluck(),
      upsertCall: db
        .prepare(
          `INSERT INTO calls (source, call_id, channel_id, status, started_at, updated_at, revision, record)
         VALUES (@source, @callId, @channelId, @status, @startedAt, @now, 1, @record)
         ON CONFLICT (source, call_id) DO UPDATE SET channel_id = excluded.channel_id, status = excluded.status,
           started_at = excluded.started_at, updated_at = excluded.updated_at, revision = calls.revision + 1, record = excluded.record
         RETURNING revision`,
        )
        .pluck(),
      // A change re-arms finished or dead work; work already due keeps its time (settle window, backoff).
      dueDelivery: db.prepare(
        `INSERT INTO deliveries (target, source, call_id, state, due_at, want_rev, updated_at)
         VALUES (@target, @source, @callId, 'due', @dueAt, @rev, @now)
         ON CONFLICT (target, source, call_id) DO UPDATE SET want_rev = excluded.want_rev, updated_at = excluded.updated_at,
           due_at = CASE WHEN deliveries.state = 'due' THEN deliveries.due_at ELSE excluded.due_at END,
           attempts = CASE WHEN deliveries.state = 'due' THEN deliveries.attempts ELSE 0 END,
           first_failed_at = CASE WHEN deliveries.state = 'due' THEN deliveries.first_failed_at ELSE NULL END,
           state = 'due'`,
      ),
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
           lease_owner = NULL, lease_until = NULL, updated_at = @now,
           state = CASE WHEN want_rev > @rev THEN 'due' ELSE 'done' END
         WHERE id = @id AND lease_owner = @owner`,
      ),
      failed: db.prepare(
        `UPDATE deliveries SET attempts = attempts + 1, first_failed_at = coalesce(first_failed_at, @now), last_error = @error,
           remote = coalesce(@remote, remote), lease_owner = NULL, lease_until = NULL, updated_at = @now,
           state = CASE WHEN @dead THEN 'dead' ELSE 'due' END, due_at = coalesce(@retryAt, due_at)
         WHERE id = @id AND lease_owner = @owner`,
      ),
      goneCall: db.prepare(
        `UPDATE deliveries SET state = 'done', last_error = 'the call no longer exists', lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ?`,
      ),
      release: db.prepare(
        `UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = @owner OR (@owner IS NULL AND lease_owner IS NOT NULL)`,
      ),
      getDelivery: db.prepare(`SELECT * FROM deliveries WHERE id = ?`),
      deleteCall: db.prepare(`DELETE FROM calls WHERE source = ? AND call_id = ?`),
      markApplied: db.prepare(`UPDATE inbox SET state = 'applied', applied_at = ? WHERE id = ?`),
      deleteEvents: db.prepare(`DELETE FROM events WHERE inbox_id = ?`),
      setState: db.prepare(
        `UPDATE inbox SET state = ?, provider = ?, rule = ?, reason_code = ?, reason = ?, replays = replays + 1, applied_at = ? WHERE id = ?`,
      ),
      getInbox: db.prepare(`SELECT * FROM inbox WHERE id = ?`),
      heartbeat: db.prepare(
        `INSERT INTO meta (key, value) VALUES ('heartbeat', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      ),
    };
  }

  private migrateSync(): void {
    this.db.exec(
      `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
    );
    // BEGIN IMMEDIATE takes the write lock first, so two processes opening one file do not race.
    const run = this.db.transaction(() => {
      const done = new Set(
        this.db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[],
      );
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        this.db.exec(m.sql);
        this.db
          .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(m.version, m.name, new Date().toISOString());
      }
    });
    run.immediate();
  }

  async migrate(): Promise<void> {
    this.migrateSync();
  }

  async insertInbox(batch: NewInbox[]): Promise<number[]> {
    return this.db.transaction(() => batch.map((n) => this.insertOne(n))).immediate();
  }

  private insertOne({ req, result, provider }: NewInbox): number {
    const info = this.stmts.insertInbox.run({
      source: req.source,
      provider,
      kind: req.kind,
      receivedAt: req.receivedAt,
      method: req.method,
      query: req.query,
      contentType: req.contentType,
      headers: JSON.stringify(req.headers),
      body: req.body,
      ...stateOf(result),
    });
    const id = Number(info.lastInsertRowid);
    this.insertEvents(id, req, result, provider);
    return id;
  }

  private insertEvents(
    id: number,
    req: Pick<RawRequest, 'source' | 'receivedAt'>,
    result: MapResult,
    provider: string,
  ): void {
    if (result.status !== 'mapped') return;
    // Each event carries its content key, so that repeats fold once.
    result.events.forEach((event, idx) => {
      this.stmts.insertEvent.run(
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
      );
    });
  }

  async applyPending(limit: number): Promise<number> {
    // Folding commits without its own fsync: everything it writes is derived from committed
    // inbox rows, a lost fold is redone (the rows stay pending), and the next FULL commit of the
    // inbox flushes these WAL frames anyway. It halves the fsyncs under load.
    this.db.pragma('synchronous = NORMAL');
    try {
      return this.db
        .transaction(() => {
          const ids = this.stmts.pendingIds.all(limit) as number[];
          if (!ids.length) return 0;
          const touched = new Map<string, CallKey>();
          for (const id of ids) this.touchedBy(id, touched);
          const now = new Date().toISOString();
          for (const k of touched.values()) this.refold(k, now);
          for (const id of ids) this.stmts.markApplied.run(now, id);
          return ids.length;
        })
        .immediate();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  async remap(id: number, result: MapResult, provider: string): Promise<void> {
    this.db
      .transaction(() => {
        const row = this.stmts.getInbox.get(id) as InboxDbRow | undefined;
        if (!row) throw new Error(`no stored request ${id}`);
        const touched = new Map<string, CallKey>();
        this.touchedBy(id, touched);
        this.stmts.deleteEvents.run(id);
        this.insertEvents(
          id,
          { source: row.source, receivedAt: row.received_at },
          result,
          provider,
        );
        this.touchedBy(id, touched);
        const now = new Date().toISOString();
        for (const k of touched.values()) this.refold(k, now);
        const s = stateOf(result);
        const state = s.state === 'pending' ? 'applied' : s.state;
        this.stmts.setState.run(
          state,
          provider,
          s.rule,
          s.reasonCode,
          s.reason,
          state === 'applied' ? now : null,
          id,
        );
      })
      .immediate();
  }

  /** Calls whose record depends on this inbox row: its own, and those on a channel it originated. */
  private touchedBy(inboxId: number, into: Map<string, CallKey>): void {
    for (const k of this.stmts.callsOfInbox.all(inboxId) as CallKey[])
      into.set(`${k.source}\u0000${k.callId}`, k);
    for (const o of this.stmts.originsOfInbox.all(inboxId) as {
      source: string;
      channelId: string;
    }[]) {
      for (const k of this.stmts.callsOnChannel.all(o.source, o.channelId) as CallKey[])
        into.set(`${k.source}\u0000${k.callId}`, k);
    }
  }

  private refold({ source, callId }: CallKey, now: string): void {
    const rows = this.stmts.eventsOfCall.all(source, callId) as EventDbRow[];
    if (!rows.length) {
      this.stmts.deleteCall.run(source, callId);
      return;
    }
    const events: StoredEvent[] = rows.map((r) => ({
      inboxId: r.inbox_id,
      idx: r.idx,
      receivedAt: r.received_at,
      key: r.key,
      event: JSON.parse(r.body) as CallEvent,
    }));
    let originatedBy: string | null = null;
    for (const ch of new Set(
      events.map((e) => e.event.channelId).filter((c): c is string => !!c),
    )) {
      const body = this.stmts.originOf.get(source, ch) as string | undefined;
      if (body) originatedBy = (JSON.parse(body) as CallEvent).originatedBy ?? null;
    }
    // The provider of the latest request names the call (a source may have changed adapters).
    const provider = rows.reduce((a, b) => (b.inbox_id > a.inbox_id ? b : a)).provider;
    const record = foldCall(events, { source, provider, originatedBy });
    const json = JSON.stringify(record);
    if (this.stmts.callRecord.get(source, callId) === json) return;
    const rev = this.stmts.upsertCall.get({
      source,
      callId,
      channelId: record.channelId,
      status: record.status,
      startedAt: record.startedAt,
      now,
      record: json,
    }) as number;
    for (const d of dueTargets(record, this.routing, new Date(now))) {
      this.stmts.dueDelivery.run({ target: d.target, source, callId, dueAt: d.dueAt, rev, now });
    }
  }

  async claimDeliveries(q: {
    limit: number;
    owner: string;
    leaseMs: number;
    targets?: string[];
  }): Promise<DeliveryJob[]> {
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
    const r = this.stmts.saveRemote.run(
      JSON.stringify(remote),
      new Date().toISOString(),
      id,
      owner,
    );
    if (r.changes !== 1) throw new Error(`delivery ${id} is not leased to ${owner}`);
  }

  async finishDelivery(id: number, owner: string, o: DeliveryOutcome): Promise<void> {
    const now = new Date().toISOString();
    const r = o.ok
      ? this.stmts.delivered.run({ id, owner, rev: o.rev, remote: JSON.stringify(o.remote), now })
      : this.stmts.failed.run({
          id,
          owner,
          now,
          error: o.error,
          dead: o.dead ? 1 : 0,
          retryAt: o.retryAt ?? null,
          remote: o.remote ? JSON.stringify(o.remote) : null,
        });
    if (r.changes !== 1) throw new Error(`delivery ${id} is not leased to ${owner}`);
  }

  async releaseDeliveries(owner: string | null): Promise<number> {
    return this.stmts.release.run({ owner }).changes;
  }

  async listDeliveries(q: {
    state?: DeliveryState;
    limit: number;
    afterId?: number;
  }): Promise<DeliveryRow[]> {
    const rows = this.db
      .prepare(
        `SELECT * FROM deliveries WHERE (@state IS NULL OR state = @state) AND id > @afterId ORDER BY id LIMIT @limit`,
      )
      .all({ state: q.state ?? null, afterId: q.afterId ?? 0, limit: q.limit }) as DeliveryDbRow[];
    return rows.map((x) => toDeliveryRow(x, textReaders));
  }

  async getDelivery(id: number): Promise<DeliveryRow | undefined> {
    const r = this.stmts.getDelivery.get(id) as DeliveryDbRow | undefined;
    return r && toDeliveryRow(r, textReaders);
  }

  async retryDeliveries(ids: number[] | 'dead'): Promise<number> {
    const now = new Date().toISOString();
    const sql = `UPDATE deliveries SET state = 'due', due_at = @now, attempts = 0, first_failed_at = NULL, updated_at = @now
                 WHERE state = 'dead' AND (@ids IS NULL OR id IN (SELECT value FROM json_each(@ids)))`;
    return this.db.prepare(sql).run({ now, ids: ids === 'dead' ? null : JSON.stringify(ids) })
      .changes;
  }

  async getInbox(id: number): Promise<InboxRow | undefined> {
    const r = this.stmts.getInbox.get(id) as InboxDbRow | undefined;
    return r && toInboxRow(r, textReaders);
  }

  async listInbox(q: { state?: InboxState; limit: number; afterId?: number }): Promise<InboxRow[]> {
    const rows = this.db
      .prepare(
        `SELECT * FROM inbox WHERE (@state IS NULL OR state = @state) AND id > @afterId ORDER BY id LIMIT @limit`,
      )
      .all({ state: q.state ?? null, afterId: q.afterId ?? 0, limit: q.limit }) as InboxDbRow[];
    return rows.map((x) => toInboxRow(x, textReaders));
  }

  async countInbox(): Promise<Record<InboxState, number>> {
    const out: Record<InboxState, number> = { pending: 0, applied: 0, unmapped: 0, ignored: 0 };
    for (const r of this.db
      .prepare('SELECT state, count(*) AS n FROM inbox GROUP BY state')
      .all() as { state: InboxState; n: number }[])
      out[r.state] = r.n;
    return out;
  }

  async listCalls(q: { limit: number; since?: string; source?: string }): Promise<CallRow[]> {
    const rows = this.db
      .prepare(
        `SELECT record, updated_at, revision FROM calls
         WHERE (@since IS NULL OR updated_at >= @since) AND (@source IS NULL OR source = @source)
         ORDER BY updated_at DESC, started_at DESC LIMIT @limit`,
      )
      .all({ since: q.since ?? null, source: q.source ?? null, limit: q.limit }) as {
      record: string;
      updated_at: string;
      revision: number;
    }[];
    return rows.map(toCallRow);
  }

  async getCalls(callId: string, source?: string): Promise<CallRow[]> {
    const rows = this.db
      .prepare(
        `SELECT record, updated_at, revision FROM calls WHERE call_id = @callId AND (@source IS NULL OR source = @source) ORDER BY source`,
      )
      .all({ callId, source: source ?? null }) as {
      record: string;
      updated_at: string;
      revision: number;
    }[];
    return rows.map(toCallRow);
  }

  async checkWritable(): Promise<void> {
    this.stmts.heartbeat.run(new Date().toISOString());
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function toCallRow(r: { record: string; updated_at: string; revision: number }): CallRow {
  return {
    record: JSON.parse(r.record) as CallRow['record'],
    updatedAt: r.updated_at,
    revision: r.revision,
  };
}
