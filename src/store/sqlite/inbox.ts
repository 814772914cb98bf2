// The SQLite store's inbox: filing a request and its events (new, a copy of a stored one, or
// dropped over a call's limit; the rules are domain/inbox.ts's), folding pending requests into
// their calls, replaying one (remap), and the inbox views.

import type Database from 'better-sqlite3';
import {
  assumeNew,
  droppedFiling,
  fileRequest,
  isEarlier,
  keptPastLimit,
  overLimit,
  type EventFiling,
  type EventPlace,
  type InboxState,
} from '../../domain/inbox.js';
import type { MapResult, RawRequest } from '../../domain/request.js';
import { Binder, whereOf } from '../queries.js';
import { EVENT_COLUMNS, eventValues, textReaders, toInboxRow } from '../rows.js';
import type { CallKey, InboxQuery, InboxRow, NewInbox } from '../types.js';
import type { SqliteConnection } from './connection.js';
import type { SqliteCalls } from './calls.js';

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

const callKey = (k: CallKey): string => `${k.source}\u0000${k.callId}`;

export class SqliteInbox {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(
    private readonly conn: SqliteConnection,
    private readonly calls: SqliteCalls,
  ) {
    this.db = conn.db;
    const db = this.db;
    this.stmts = {
      insertInbox: db.prepare(
        `INSERT INTO inbox (source, provider, kind, received_at, method, query, content_type, headers, body, state, rule, reason_code, reason, applied_at)
         VALUES (@source, @provider, @kind, @receivedAt, @method, @query, @contentType, @headers, @body, @state, @rule, @reasonCode, @reason, @appliedAt)`,
      ),
      // A repeat of a stored event inserts nothing (unique on source, call and content key).
      insertEvent: db.prepare(
        `INSERT INTO events (${EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (source, coalesce(call_id, ''), key) DO NOTHING`,
      ),
      insertLink: db.prepare(
        `INSERT INTO event_links (inbox_id, idx, source, call_id, key, kind) VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      countEvent: db
        .prepare(
          `INSERT INTO call_stats (source, call_id, events) VALUES (?, ?, 1)
           ON CONFLICT (source, call_id) DO UPDATE SET events = events + 1 RETURNING events`,
        )
        .pluck(),
      dropEvent: db.prepare(`DELETE FROM events WHERE inbox_id = ? AND idx = ?`),
      countDropped: db
        .prepare(
          `UPDATE call_stats SET events = events - 1, dropped = dropped + 1
           WHERE source = ? AND call_id = ? RETURNING dropped`,
        )
        .pluck(),
      pendingIds: db
        .prepare(`SELECT id FROM inbox WHERE state = 'pending' ORDER BY id LIMIT ?`)
        .pluck(),
      // The calls some requests touch (a JSON array of inbox ids, one statement for a whole fold
      // batch): those of their events and links, every call with an event on a channel they
      // originated (by event, so that any of a call's channels finds it), and every call with an
      // event on a leg that one of their events names without a call (domain/refold.ts joinsByLeg
      // decides which of those join; these are only the calls to ask).
      touchedBy: db.prepare(
        `WITH ids(id) AS (SELECT value FROM json_each(@ids))
         SELECT source, call_id AS callId FROM events WHERE inbox_id IN ids AND call_id IS NOT NULL
         UNION SELECT source, call_id FROM event_links WHERE inbox_id IN ids AND call_id IS NOT NULL
         UNION SELECT c.source, c.call_id FROM events o
           JOIN events c ON c.source = o.source AND c.channel_id = o.channel_id AND c.call_id IS NOT NULL
           WHERE o.inbox_id IN ids AND o.type = 'originated'
         UNION SELECT c.source, c.call_id FROM events o
           JOIN events c ON c.source = o.source AND c.leg_id = o.leg_id AND c.leg_id IS NOT NULL
             AND c.call_id IS NOT NULL
           WHERE o.inbox_id IN ids AND o.call_id IS NULL AND o.leg_id IS NOT NULL`,
      ),
      // Replay: a request's own events, and the earliest request that repeats one of them.
      ownEvents: db.prepare(`SELECT idx, source, call_id, key FROM events WHERE inbox_id = ?`),
      ownLinks: db.prepare(`SELECT source, call_id, kind FROM event_links WHERE inbox_id = ?`),
      heir: db.prepare(
        `SELECT l.inbox_id, l.idx, i.received_at, i.provider FROM event_links l JOIN inbox i ON i.id = l.inbox_id
         WHERE l.source = ? AND l.key = ? AND l.kind = 'copy' AND l.inbox_id <> ?
         ORDER BY l.inbox_id, l.idx LIMIT 1`,
      ),
      handOver: db.prepare(
        `UPDATE events SET inbox_id = @toInbox, idx = @toIdx, received_at = @receivedAt, provider = @provider
         WHERE inbox_id = @inbox AND idx = @idx`,
      ),
      deleteLink: db.prepare(`DELETE FROM event_links WHERE inbox_id = ? AND idx = ?`),
      ownerOf: db.prepare(
        `SELECT inbox_id AS inboxId, idx FROM events
         WHERE source = ? AND coalesce(call_id, '') = ? AND key = ?`,
      ),
      takeOver: db.prepare(
        `UPDATE events SET inbox_id = @inbox, idx = @idx, received_at = @receivedAt, provider = @provider
         WHERE source = @source AND coalesce(call_id, '') = @call AND key = @key`,
      ),
      droppedBefore: db
        .prepare(
          `SELECT 1 FROM event_links WHERE source = ? AND key = ? AND kind = 'dropped' LIMIT 1`,
        )
        .pluck(),
      deleteLinks: db.prepare(`DELETE FROM event_links WHERE inbox_id = ?`),
      uncount: db.prepare(
        `UPDATE call_stats SET events = events - @events, dropped = dropped - @dropped
         WHERE source = @source AND call_id = @callId`,
      ),
      markApplied: db.prepare(
        `UPDATE inbox SET state = 'applied', applied_at = ? WHERE id IN (SELECT value FROM json_each(?))`,
      ),
      refile: db.prepare(
        `UPDATE inbox SET state = ?, reason_code = ?, reason = ?, applied_at = ? WHERE id = ?`,
      ),
      setState: db.prepare(
        `UPDATE inbox SET state = ?, provider = ?, rule = ?, reason_code = ?, reason = ?, replays = replays + 1, applied_at = ? WHERE id = ?`,
      ),
      getInbox: db.prepare(`SELECT * FROM inbox WHERE id = ?`),
    };
  }

  async insertInbox(batch: NewInbox[]): Promise<number[]> {
    this.conn.assertFile();
    return this.db.transaction(() => batch.map((n) => this.insertOne(n))).immediate();
  }

  /** Files one request in the caller's transaction (insertInbox, or a close from retention.ts). */
  insertOne({ req, result, provider }: NewInbox): number {
    // Filed as if every event were new (the common case); corrected below if not.
    const guess = fileRequest(result, assumeNew(result), this.conn.maxEvents);
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
      ...guess,
      appliedAt: guess.state === 'applied' ? new Date().toISOString() : null,
    });
    const id = Number(info.lastInsertRowid);
    const f = fileRequest(result, this.fileEvents(id, req, result, provider), this.conn.maxEvents);
    if (f.state !== guess.state || f.reasonCode !== guess.reasonCode) {
      const appliedAt = f.state === 'applied' ? new Date().toISOString() : null;
      this.stmts.refile.run(f.state, f.reasonCode, f.reason, appliedAt, id);
    }
    return id;
  }

  /** Store each event of a request as new, a copy of a stored one, or dropped over the limit. */
  private fileEvents(
    id: number,
    req: Pick<RawRequest, 'source' | 'receivedAt'>,
    result: MapResult,
    provider: string,
  ): EventFiling[] {
    if (result.status !== 'mapped') return [];
    return result.events.map((event, idx): EventFiling => {
      const at = { inboxId: id, idx, source: req.source, provider, receivedAt: req.receivedAt };
      const { key, callId, values } = eventValues(at, event);
      if (!this.stmts.insertEvent.run(...values).changes) {
        // Stored already: this request repeats it, unless it carries it from an earlier place.
        // By call and key, as the unique index has them (migration 8).
        const call = callId ?? '';
        const owner = this.stmts.ownerOf.get(req.source, call, key) as EventPlace;
        if (isEarlier({ inboxId: id, idx }, owner)) {
          const { source, provider, receivedAt } = at;
          this.stmts.takeOver.run({ inbox: id, idx, receivedAt, provider, source, call, key });
          this.stmts.insertLink.run(owner.inboxId, owner.idx, req.source, callId, key, 'copy');
          return 'new';
        }
        this.stmts.insertLink.run(id, idx, req.source, callId, key, 'copy');
        return 'copy';
      }
      if (callId === null) return 'new';
      const count = this.stmts.countEvent.get(req.source, callId) as number;
      if (!overLimit(count, this.conn.maxEvents) || keptPastLimit(event)) return 'new';
      this.stmts.dropEvent.run(id, idx);
      const again = this.stmts.droppedBefore.get(req.source, key) !== undefined;
      this.stmts.insertLink.run(id, idx, req.source, callId, key, 'dropped');
      if (again) {
        // A repeat of an event dropped before: dropped again, not counted again.
        this.stmts.uncount.run({ source: req.source, callId, events: 1, dropped: 0 });
        return 'dropped';
      }
      return droppedFiling(this.stmts.countDropped.get(req.source, callId) as number);
    });
  }

  async applyPending(limit: number): Promise<number> {
    this.conn.assertFile();
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
          const batch = JSON.stringify(ids);
          this.touchedBy(batch, touched);
          const now = new Date().toISOString();
          for (const k of touched.values()) this.calls.refold(k, now);
          this.stmts.markApplied.run(now, batch);
          return ids.length;
        })
        .immediate();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  async remap(id: number, result: MapResult, provider: string): Promise<void> {
    this.conn.assertFile();
    this.db
      .transaction(() => {
        const row = this.stmts.getInbox.get(id) as InboxDbRow | undefined;
        if (!row) throw new Error(`no stored request ${id}`);
        const touched = new Map<string, CallKey>();
        this.touchedBy(JSON.stringify([id]), touched);
        this.release(id);
        const req = { source: row.source, receivedAt: row.received_at };
        const f = fileRequest(
          result,
          this.fileEvents(id, req, result, provider),
          this.conn.maxEvents,
        );
        this.touchedBy(JSON.stringify([id]), touched);
        const now = new Date().toISOString();
        for (const k of touched.values()) this.calls.refold(k, now);
        // A replay folds at once: what would be pending is applied.
        const state = f.state === 'pending' ? 'applied' : f.state;
        const appliedAt = state === 'applied' ? now : null;
        this.stmts.setState.run(state, provider, f.rule, f.reasonCode, f.reason, appliedAt, id);
      })
      .immediate();
  }

  async getInbox(id: number): Promise<InboxRow | undefined> {
    const r = this.stmts.getInbox.get(id) as InboxDbRow | undefined;
    return r && toInboxRow(r, textReaders);
  }

  async listInbox(q: InboxQuery): Promise<InboxRow[]> {
    const b = new Binder('sqlite');
    const where = [`id > ${b.bind(q.afterId ?? 0)}`];
    if (q.state) where.push(`state = ${b.bind(q.state)}`);
    if (q.ids) where.push(`id IN (SELECT value FROM json_each(${b.bind(JSON.stringify(q.ids))}))`);
    if (q.source !== undefined) where.push(`source = ${b.bind(q.source)}`);
    const rows = this.db
      .prepare(`SELECT * FROM inbox ${whereOf(where)} ORDER BY id LIMIT ${b.bind(q.limit)}`)
      .all(...b.values) as InboxDbRow[];
    return rows.map((x) => toInboxRow(x, textReaders));
  }

  async countInbox(): Promise<Record<InboxState, number>> {
    return this.countInboxSync();
  }

  /**
   * Take a request's events and links away before it is mapped again. An event another request
   * repeats passes to the earliest such request, so that the call keeps it.
   */
  private release(id: number): void {
    for (const e of this.stmts.ownEvents.all(id) as {
      idx: number;
      source: string;
      call_id: string | null;
      key: string;
    }[]) {
      const heir = this.stmts.heir.get(e.source, e.key, id) as
        { inbox_id: number; idx: number; received_at: string; provider: string } | undefined;
      if (heir) {
        this.stmts.handOver.run({
          toInbox: heir.inbox_id,
          toIdx: heir.idx,
          receivedAt: heir.received_at,
          provider: heir.provider,
          inbox: id,
          idx: e.idx,
        });
        this.stmts.deleteLink.run(heir.inbox_id, heir.idx);
        continue;
      }
      this.stmts.dropEvent.run(id, e.idx);
      if (e.call_id !== null) {
        this.stmts.uncount.run({ source: e.source, callId: e.call_id, events: 1, dropped: 0 });
      }
    }
    for (const l of this.stmts.ownLinks.all(id) as {
      source: string;
      call_id: string | null;
      kind: string;
    }[]) {
      if (l.kind === 'dropped' && l.call_id !== null) {
        this.stmts.uncount.run({ source: l.source, callId: l.call_id, events: 0, dropped: 1 });
      }
    }
    this.stmts.deleteLinks.run(id);
  }

  /** Adds the calls the requests touch (`ids`: a JSON array of inbox ids) to `into`. */
  private touchedBy(ids: string, into: Map<string, CallKey>): void {
    for (const k of this.stmts.touchedBy.all({ ids }) as CallKey[]) into.set(callKey(k), k);
  }

  /** countInbox inside the caller's transaction (stats). */
  countInboxSync(): Record<InboxState, number> {
    const out: Record<InboxState, number> = { pending: 0, applied: 0, unmapped: 0, ignored: 0 };
    for (const r of this.db
      .prepare('SELECT state, count(*) AS n FROM inbox GROUP BY state')
      .all() as { state: InboxState; n: number }[])
      out[r.state] = r.n;
    return out;
  }
}
