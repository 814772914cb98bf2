// What the backends' queries bind, and the SQL they share word for word. A filter's meaning (which
// digits a number search looks for, how a time bound compares) is decided here once; each backend
// only writes it in its own SQL.

import { LEG_JOINED_TYPES } from '../domain/constants.js';
import { NO_USER_OPERATION } from '../domain/delivery.js';
import type { BackfillQuery, CallKey, CallQuery } from './types.js';

/**
 * Collects the values of a query built from optional filters and names their placeholders:
 * `?` for SQLite, `$1`, `$2`, ... for PostgreSQL. Each use binds anew (SQLite's `?` is one value
 * each), so a value the SQL names twice is bound twice.
 */
export class Binder {
  readonly values: unknown[] = [];
  constructor(private readonly style: 'sqlite' | 'postgres') {}

  bind(v: unknown): string {
    this.values.push(v);
    return this.style === 'sqlite' ? '?' : `$${this.values.length}`;
  }

  /** A list bound as one value, read as rows of one column (`x IN (...)`). */
  list(values: readonly (string | number)[], pgType: 'text' | 'bigint'): string {
    return this.style === 'sqlite'
      ? `SELECT value FROM json_each(${this.bind(JSON.stringify(values))})`
      : `SELECT unnest(${this.bind(values)}::${pgType}[])`;
  }
}

/** `WHERE a AND b`, or nothing when there is no condition. */
export const whereOf = (conds: string[]): string =>
  conds.length ? `WHERE ${conds.join(' AND ')}` : '';

/**
 * A time as UTC ISO text: SQLite keeps times as text and compares them as text, so a bound
 * written with an offset ("+01:00") would compare wrong.
 */
export function isoTime(v: string): string {
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new RangeError(`not an ISO-8601 time: ${JSON.stringify(v)}`);
  return new Date(ms).toISOString();
}

/** A call query's filters as the backends bind them (undefined: no such filter). */
export interface CallFilter {
  since?: string;
  source?: string;
  direction?: string;
  outcome?: string;
  agent?: string;
  parties?: string[];
  /**
   * LIKE pattern for the number search: `%digits%`, the query's digits only. Matched against
   * externalE164, externalNumber and did as stored (E.164 is "+" and digits, so its digits are
   * contiguous; a raw number is matched only if the digits are contiguous in it too).
   */
  numberLike?: string;
  from?: string;
  to?: string;
  before?: { updatedAt: string; source: string; callId: string };
}

export function callFilter(q: CallQuery): CallFilter {
  // A query without digits ("+", "") narrows nothing: every number contains no digits.
  const digits = q.number?.replace(/\D/g, '') ?? '';
  return {
    since: q.since === undefined ? undefined : isoTime(q.since),
    source: q.source,
    direction: q.direction,
    outcome: q.outcome,
    agent: q.agent,
    parties: q.parties,
    numberLike: digits ? `%${digits}%` : undefined,
    from: q.from === undefined ? undefined : isoTime(q.from),
    to: q.to === undefined ? undefined : isoTime(q.to),
    before: q.before && { ...q.before, updatedAt: isoTime(q.before.updatedAt) },
  };
}

/** How one backend's SQL says what the call list's filters need (the rest is the same). */
export interface CallListDialect {
  style: 'sqlite' | 'postgres';
  /** A top-level field of the stored record, as text. */
  field(name: string): string;
  /** Whether any leg of the record had this agent (`param`: its bound placeholder). */
  legAgent(param: string): string;
  /**
   * Whether record.agent, any leg's agent or any entry of `rang` is in a list of extensions.
   * `list()` binds the list (as `listValue` made it) and names its placeholder, anew for each use.
   */
  parties(list: () => string): string;
  /** A list of text values as the backend binds it for `parties`. */
  listValue(values: string[]): unknown;
  /** A cast for a bound value where the backend needs one ('' where it does not). */
  cast(type: 'timestamptz' | 'text'): string;
}

/**
 * The call list (both stores): the filters of `callFilter`, newest change first, and paging
 * by the last row seen, with the values to bind.
 */
export function callListSql(q: CallQuery, d: CallListDialect): { sql: string; values: unknown[] } {
  const f = callFilter(q);
  const b = new Binder(d.style);
  const field = d.field;
  const where: string[] = [];
  if (f.since !== undefined) where.push(`c.updated_at >= ${b.bind(f.since)}`);
  if (f.source !== undefined) where.push(`c.source = ${b.bind(f.source)}`);
  if (f.direction !== undefined) where.push(`${field('direction')} = ${b.bind(f.direction)}`);
  if (f.outcome !== undefined) where.push(`${field('outcome')} = ${b.bind(f.outcome)}`);
  if (f.agent !== undefined)
    where.push(`(${field('agent')} = ${b.bind(f.agent)} OR ${d.legAgent(b.bind(f.agent))})`);
  if (f.parties !== undefined) {
    const list = d.listValue(f.parties);
    where.push(d.parties(() => b.bind(list)));
  }
  if (f.numberLike !== undefined) {
    const like = (): string => b.bind(f.numberLike);
    where.push(
      `(${field('externalE164')} LIKE ${like()} OR ${field('externalNumber')} LIKE ${like()}
        OR ${field('did')} LIKE ${like()})`,
    );
  }
  if (f.from !== undefined) where.push(`c.started_at >= ${b.bind(f.from)}`);
  if (f.to !== undefined) where.push(`c.started_at < ${b.bind(f.to)}`);
  if (f.before) {
    const { updatedAt, source, callId } = f.before;
    const text = d.cast('text');
    where.push(
      `(c.updated_at, c.source, c.call_id) < (${b.bind(updatedAt)}${d.cast('timestamptz')}, ` +
        `${b.bind(source)}${text}, ${b.bind(callId)}${text})`,
    );
  }
  const sql = `SELECT c.record, c.updated_at, c.revision, s.dropped FROM calls c
     LEFT JOIN call_stats s ON s.source = c.source AND s.call_id = c.call_id
     ${whereOf(where)}
     ORDER BY c.updated_at DESC, c.source DESC, c.call_id DESC LIMIT ${b.bind(q.limit)}`;
  return { sql, values: b.values };
}

/**
 * Per source, its newest request: a loose index scan over inbox (source, id), one seek for each
 * next source and one for its newest id, however many requests there are. The same SQL in both
 * backends.
 */
export const SOURCE_ACTIVITY_SQL = `
  WITH RECURSIVE sources (source) AS (
    SELECT min(source) FROM inbox
    UNION ALL
    SELECT (SELECT min(i.source) FROM inbox i WHERE i.source > s.source)
      FROM sources s WHERE s.source IS NOT NULL
  )
  SELECT i.source, i.id, i.received_at, i.state, i.reason_code FROM sources s
    JOIN inbox i ON i.id = (SELECT max(m.id) FROM inbox m WHERE m.source = s.source)
  ORDER BY i.source`;

/**
 * Due deliveries split in two: retrying ones failed since they became due (attempts counts the
 * failures and starts over when a change re-arms finished work); the others wait for a first try.
 */
export const RETRYING_SQL = `state = 'due' AND attempts > 0`;
export const FIRST_TRY_SQL = `state = 'due' AND attempts = 0`;

/**
 * Per target, its deliveries by state, due ones split as above. Read from the index deliveries
 * (target, state, attempts) alone. The same SQL in both backends.
 */
export const TARGET_COUNTS_SQL = `
  SELECT target,
    count(*) FILTER (WHERE ${FIRST_TRY_SQL}) AS due,
    count(*) FILTER (WHERE ${RETRYING_SQL}) AS retrying,
    count(*) FILTER (WHERE state = 'dead') AS dead,
    count(*) FILTER (WHERE state = 'done') AS done
  FROM deliveries GROUP BY target ORDER BY target`;

/**
 * Open calls that went silent: no event received at or after `before` and no close of the relay's
 * yet (domain/close.ts), oldest change first, each with its provider (that of its latest event)
 * and when its newest event came. An `incomplete` call (only recordings or analyses so far) is no
 * call to close: closing it would invent a missed call; it waits for its real events. Candidates
 * come from the partial index of open calls by updated_at (a call changes when an event is folded,
 * so a recent change rules it out at once); the events of each candidate confirm it. `more`
 * narrows further (a backend's own condition, bound in place).
 * The same SQL in both backends.
 */
export function staleCallsSql(
  b: Binder,
  q: { before: string; limit: number; more?: (b: Binder) => string },
): string {
  const before = (): string => b.bind(isoTime(q.before));
  const of = 'e.source = c.source AND e.call_id = c.call_id';
  return `
  SELECT c.source, c.call_id,
    (SELECT max(e.received_at) FROM events e WHERE ${of}) AS last_event_at,
    (SELECT e.provider FROM events e WHERE ${of} ORDER BY e.inbox_id DESC, e.idx DESC LIMIT 1)
      AS provider
  FROM calls c
  WHERE c.status <> 'ended' AND c.status <> 'incomplete' AND c.updated_at < ${before()}
    ${q.more ? `AND ${q.more(b)}` : ''}
    AND NOT EXISTS (SELECT 1 FROM events e WHERE ${of}
                    AND (e.received_at >= ${before()} OR e.type = 'closed'))
  ORDER BY c.updated_at, c.source, c.call_id
  LIMIT ${b.bind(q.limit)}`;
}

/**
 * Backfill candidates: calls that started in [since, until) and have no delivery row for the
 * target, in key order from `after` on (exclusive). Whether the routes send each one there is the
 * domain's question (routing.ts dueAt), asked of the record. The same SQL in both backends.
 */
/** Where the batch after `rows` starts (none: a short batch was the last). */
export function backfillNext(
  rows: { source: string; call_id: string }[],
  limit: number,
): CallKey | undefined {
  const last = rows.at(-1);
  return rows.length === limit && last ? { source: last.source, callId: last.call_id } : undefined;
}

export function backfillSql(b: Binder, q: BackfillQuery): string {
  const conds = [`c.started_at >= ${b.bind(isoTime(q.since))}`];
  if (q.until) conds.push(`c.started_at < ${b.bind(isoTime(q.until))}`);
  if (q.after)
    conds.push(`(c.source, c.call_id) > (${b.bind(q.after.source)}, ${b.bind(q.after.callId)})`);
  // A dry run's delivery, done or dead, is no delivery for a target that is real now: the CRM
  // never saw the call. For a target still in its dry run it is one (never queued twice).
  const sandboxOnly = q.sandboxTarget ? '' : ` AND NOT (d.dry_run AND d.state <> 'due')`;
  conds.push(`NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.target = ${b.bind(q.target)}
    AND d.source = c.source AND d.call_id = c.call_id${sandboxOnly})`);
  return `SELECT c.source, c.call_id, c.record, c.revision FROM calls c ${whereOf(conds)}
    ORDER BY c.source, c.call_id LIMIT ${b.bind(q.limit)}`;
}

/**
 * How a backfill queues a call (values: target, source, call id, due at, revision, now): a new row,
 * or a dry run's finished one made due again for the call's current revision. Rows with real
 * work (or work already due) stay as they are. The same SQL in both backends.
 */
export const BACKFILL_UPSERT_SQL = (b: Binder, values: unknown[]): string => {
  const [target, source, callId, due, rev, now] = values.map((v) => b.bind(v));
  return `INSERT INTO deliveries (target, source, call_id, state, due_at, want_rev, updated_at)
    VALUES (${target}, ${source}, ${callId}, 'due', ${due}, ${rev}, ${now})
    ON CONFLICT (target, source, call_id) DO UPDATE SET state = 'due', due_at = excluded.due_at,
      want_rev = excluded.want_rev, attempts = 0, first_failed_at = NULL, last_error = NULL,
      updated_at = excluded.updated_at
    WHERE deliveries.dry_run AND deliveries.state <> 'due'`;
};

// A literal, not a bound value: only then do the planners see that the partial index of migration
// 10 (SQLite) / 8 (PostgreSQL) covers the query.
const NO_USER_SQL = `'${NO_USER_OPERATION.replace(/'/g, "''")}'`;

/** Agents without a CRM user, per target and sentence, newest first (Store.agentsWithoutUser). */
export const AGENTS_WITHOUT_USER_SQL = (b: Binder, since: string, limit: number): string =>
  `SELECT target, error AS text, max(started_at) AS last_at, count(*) AS runs
   FROM delivery_attempts
   WHERE operation = ${NO_USER_SQL} AND started_at >= ${b.bind(isoTime(since))}
     AND error IS NOT NULL
   GROUP BY target, error ORDER BY max(started_at) DESC LIMIT ${b.bind(limit)}`;

/** Attempts that started before a time, oldest first, a batch at a time (by the started index). */
export const PRUNE_ATTEMPTS_SQL = (b: Binder, before: string, limit: number): string =>
  `DELETE FROM delivery_attempts WHERE id IN (SELECT id FROM delivery_attempts
     WHERE started_at < ${b.bind(isoTime(before))} ORDER BY started_at LIMIT ${b.bind(limit)})`;

/** The event types that join by leg (domain/refold.ts joinsByLeg), as SQL text. */
export const LEG_JOINED_SQL = [...LEG_JOINED_TYPES].map((t) => `'${t}'`).join(', ');

/** Leg-only events of a source's legs (domain/refold.ts joinsByLeg), which retention may delete. */
export interface LegOnlyEvents {
  source: string;
  legs: string[];
  /** Only those received before this time (a stray leg's); otherwise every one. */
  before?: string;
}

/**
 * A link with no call, written so that no index on the call can serve it: the links of one event
 * are found by content key (event_links_key), not among every link without a call of the source.
 */
const NO_CALL_LINK = (l: string): string => `coalesce(${l}.call_id, '') = ''`;

/** Stray legs (RETENTION_SQL.strayLegs's rows), each source's together, each leg once. */
export function legsBySource(rows: { source: string; leg_id: string }[]): Map<string, string[]> {
  const by = new Map<string, Set<string>>();
  for (const r of rows) by.set(r.source, (by.get(r.source) ?? new Set()).add(r.leg_id));
  return new Map([...by].map(([source, legs]) => [source, [...legs].sort()]));
}

/**
 * The condition on `events` for LegOnlyEvents: no call id, one of the legs, and no call's own
 * event names the leg (any more): a leg another call still has keeps its events for that call.
 */
function legOnlyWhere(b: Binder, on: LegOnlyEvents): string {
  return `source = ${b.bind(on.source)} AND leg_id IN (${b.list(on.legs, 'text')})
    AND call_id IS NULL AND type IN (${LEG_JOINED_SQL})
    ${on.before ? `AND received_at < ${b.bind(isoTime(on.before))}` : ''}
    AND NOT EXISTS (SELECT 1 FROM events c
      WHERE c.source = events.source AND c.leg_id = events.leg_id AND c.call_id IS NOT NULL)`;
}

/**
 * Retention, in the order one batch runs it (Store.pruneRequests). A call's raw requests and
 * events go together once the call is ended and unchanged since the cutoff; the record stays
 * (marked pruned_at: a later refold keeps it instead of rebuilding it from what is left). The
 * events that name only one of its legs go with it, unless another call still has the leg; those
 * that never found a call (or whose calls went before them) go once every request that brought
 * them is older than the cutoff. A request is deleted once nothing refers to it any more (one
 * that also carries another call's events waits for that call). Unmapped and ignored requests
 * (no events) go by their own age. The same SQL in both backends.
 */
export const RETENTION_SQL = {
  calls: (b: Binder, before: string, limit: number): string =>
    `SELECT source, call_id FROM calls
     WHERE status = 'ended' AND pruned_at IS NULL AND updated_at < ${b.bind(isoTime(before))}
     ORDER BY updated_at LIMIT ${b.bind(limit)}`,
  /** The legs a call's own events name (domain/refold.ts legsOf). */
  legsOf: (b: Binder, source: string, callId: string): string =>
    `SELECT DISTINCT leg_id FROM events
     WHERE source = ${b.bind(source)} AND call_id = ${b.bind(callId)} AND leg_id IS NOT NULL`,
  requestsOf: (b: Binder, source: string, callId: string): string => {
    const [s, c] = [b.bind(source), b.bind(callId)];
    const [s2, c2] = [b.bind(source), b.bind(callId)];
    return `SELECT inbox_id FROM events WHERE source = ${s} AND call_id = ${c}
      UNION SELECT inbox_id FROM event_links WHERE source = ${s2} AND call_id = ${c2}`;
  },
  eventsOf: (b: Binder, source: string, callId: string): string =>
    `DELETE FROM events WHERE source = ${b.bind(source)} AND call_id = ${b.bind(callId)}`,
  linksOf: (b: Binder, source: string, callId: string): string =>
    `DELETE FROM event_links WHERE source = ${b.bind(source)} AND call_id = ${b.bind(callId)}`,
  /**
   * A batch of leg-only events, oldest first (the events_leg_only index), whose leg no call has
   * and every request that brought the leg's events (first or as a repeat) came before the cutoff:
   * their legs (a leg may come more than once: legsBySource).
   */
  strayLegs: (b: Binder, before: string, limit: number): string => {
    const cutoff = isoTime(before);
    return `SELECT e.source, e.leg_id FROM events e
     WHERE e.call_id IS NULL AND e.leg_id IS NOT NULL AND e.received_at < ${b.bind(cutoff)}
       AND e.type IN (${LEG_JOINED_SQL})
       AND NOT EXISTS (SELECT 1 FROM events c
         WHERE c.source = e.source AND c.leg_id = e.leg_id AND c.call_id IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM events n
         LEFT JOIN event_links l ON l.source = n.source AND l.key = n.key
           AND ${NO_CALL_LINK('l')}
         LEFT JOIN inbox i ON i.id = l.inbox_id
         WHERE n.source = e.source AND n.leg_id = e.leg_id AND n.call_id IS NULL
           AND n.type IN (${LEG_JOINED_SQL})
           AND (n.received_at >= ${b.bind(cutoff)} OR i.received_at >= ${b.bind(cutoff)}))
     ORDER BY e.received_at LIMIT ${b.bind(limit)}`;
  },
  /** The requests that brought leg-only events, first or as a repeat (a link by content key). */
  requestsOfLegs: (b: Binder, on: LegOnlyEvents): string =>
    `SELECT inbox_id FROM events WHERE ${legOnlyWhere(b, on)}
     UNION SELECT inbox_id FROM event_links WHERE source = ${b.bind(on.source)}
       AND key IN (SELECT key FROM events WHERE ${legOnlyWhere(b, on)})
       AND ${NO_CALL_LINK('event_links')}`,
  /** Before the events: the links find their events by content key. */
  linksOfLegs: (b: Binder, on: LegOnlyEvents): string =>
    `DELETE FROM event_links WHERE source = ${b.bind(on.source)}
       AND key IN (SELECT key FROM events WHERE ${legOnlyWhere(b, on)})
       AND ${NO_CALL_LINK('event_links')}`,
  eventsOfLegs: (b: Binder, on: LegOnlyEvents): string =>
    `DELETE FROM events WHERE ${legOnlyWhere(b, on)}`,
  orphans: (b: Binder, ids: number[], before: string): string =>
    `DELETE FROM inbox WHERE id IN (${b.list(ids, 'bigint')})
       AND received_at < ${b.bind(isoTime(before))}
       AND NOT EXISTS (SELECT 1 FROM events e WHERE e.inbox_id = inbox.id)
       AND NOT EXISTS (SELECT 1 FROM event_links l WHERE l.inbox_id = inbox.id)`,
  markPruned: (b: Binder, source: string, callId: string, now: string): string =>
    `UPDATE calls SET pruned_at = ${b.bind(now)}
     WHERE source = ${b.bind(source)} AND call_id = ${b.bind(callId)}`,
  loose: (b: Binder, before: string, limit: number): string =>
    `DELETE FROM inbox WHERE id IN (SELECT id FROM inbox
       WHERE state IN ('unmapped', 'ignored') AND received_at < ${b.bind(isoTime(before))}
       ORDER BY id LIMIT ${b.bind(limit)})`,
};

/**
 * Keeps a source's newest refusal (store/types.ts Refusal): an older one, from an instance that
 * wrote late, only adds to the count. `p(name)` is the backend's placeholder for a value.
 */
export function refusalUpsertSql(p: (name: string) => string): string {
  const cols = ['at', 'status', 'code', 'reason', 'path', 'address'];
  const newer = (c: string): string =>
    `${c} = CASE WHEN excluded.at >= refusals.at THEN excluded.${c} ELSE refusals.${c} END`;
  return `INSERT INTO refusals (source, ${cols.join(', ')}, count)
    VALUES (${['source', ...cols, 'count'].map(p).join(', ')})
    ON CONFLICT (source) DO UPDATE SET
      count = refusals.count + excluded.count,
      ${cols.slice(1).map(newer).join(',\n      ')},
      ${newer('at')}`;
}
