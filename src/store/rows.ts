// Database rows -> store rows, shared by the backends. SQLite keeps times as ISO text and JSON as
// text; PostgreSQL returns Dates and parsed jsonb: each backend passes how to read its own.

import type { StaleCall } from '../domain/close.js';
import type { DeliveryOutcome } from '../domain/delivery.js';
import { eventKey } from '../domain/fold.js';
import type { CallEvent } from '../domain/model.js';
import { isoTime } from './queries.js';
import type {
  AgentWithoutUser,
  AttemptRow,
  DeliveryRow,
  InboxRow,
  NewAttempt,
  SourceActivity,
  Refusal,
  TargetStats,
} from './types.js';

export interface Readers {
  time: (v: unknown) => string;
  json: <T>(v: unknown) => T;
}

export const textReaders: Readers = {
  time: (v) => String(v),
  json: <T>(v: unknown) => JSON.parse(String(v)) as T,
};
export const nativeReaders: Readers = {
  time: (v) => (v instanceof Date ? v : new Date(String(v))).toISOString(),
  json: <T>(v: unknown) => v as T,
};

const maybe = (r: Readers, v: unknown): string | null =>
  v === null || v === undefined ? null : r.time(v);

// A row as a driver returns it: column name to value, times and JSON as each backend keeps them.
type DbRow = Record<string, unknown>;

export function toInboxRow(row: object, read: Readers): InboxRow {
  const r = row as DbRow;
  return {
    id: r.id as number,
    source: r.source as string,
    provider: r.provider as string,
    kind: r.kind as InboxRow['kind'],
    receivedAt: read.time(r.received_at),
    method: r.method as string,
    query: r.query as string,
    contentType: r.content_type as string | null,
    headers: read.json(r.headers),
    body: r.body as Buffer,
    state: r.state as InboxRow['state'],
    rule: r.rule as string | null,
    reasonCode: r.reason_code as string | null,
    reason: r.reason as string | null,
    replays: r.replays as number,
  };
}

export function toDeliveryRow(row: object, read: Readers): DeliveryRow {
  const r = row as DbRow;
  return {
    id: r.id as number,
    target: r.target as string,
    source: r.source as string,
    callId: r.call_id as string,
    state: r.state as DeliveryRow['state'],
    dueAt: read.time(r.due_at),
    wantRev: r.want_rev as number,
    doneRev: r.done_rev as number,
    attempts: r.attempts as number,
    firstFailedAt: maybe(read, r.first_failed_at),
    lastError: r.last_error as string | null,
    remote: read.json(r.remote),
    updatedAt: read.time(r.updated_at),
    // SQLite: 0 or 1; PostgreSQL: a boolean.
    dryRun: !!r.dry_run,
  };
}

/** The columns of an event row, in the order of EVENT_COLUMNS (both backends insert these). */
export const EVENT_COLUMNS =
  'inbox_id, idx, source, provider, call_id, channel_id, type, key, received_at, body, leg_id';

/** An event row's values, and the content key that makes a repeat of it a repeat. */
export function eventValues(
  at: { inboxId: number; idx: number; source: string; provider: string; receivedAt: string },
  event: CallEvent,
): { key: string; callId: string | null; values: unknown[] } {
  const key = eventKey(event);
  const callId = event.callId ?? null;
  const values = [
    at.inboxId,
    at.idx,
    at.source,
    at.provider,
    callId,
    event.channelId ?? null,
  ].concat([event.type, key, at.receivedAt, JSON.stringify(event), event.legId ?? null]);
  return { key, callId, values };
}

export function toAttemptRow(row: object, read: Readers): AttemptRow {
  const r = row as DbRow;
  return {
    id: r.id as number,
    deliveryId: r.delivery_id as number,
    target: r.target as string,
    source: r.source as string,
    callId: r.call_id as string,
    rev: r.rev as number,
    operation: r.operation as string,
    method: r.method as string | null,
    path: r.path as string | null,
    startedAt: read.time(r.started_at),
    durationMs: r.duration_ms as number,
    status: r.status as number | null,
    requestId: r.request_id as string | null,
    result: r.result as AttemptRow['result'],
    error: r.error as string | null,
    retryAt: maybe(read, r.retry_at),
    sent: (r.sent as string | null) ?? null,
  };
}

/** The columns of an attempt row, in the order of attemptValues (both backends insert these). */
export const ATTEMPT_COLUMNS =
  'delivery_id, target, source, call_id, rev, operation, method, path, started_at, duration_ms, ' +
  'status, request_id, result, error, retry_at, sent';

/** The delivery a run's attempts belong to, as the lease-checked update returns it. */
export interface AttemptsOf {
  id: number;
  target: string;
  source: string;
  call_id: string;
  want_rev: number;
}

/**
 * An attempt row's values. The revision is the one the run delivered when it worked; a failed run
 * does not say, so it is the one the delivery wanted.
 */
export function attemptValues(d: AttemptsOf, outcome: DeliveryOutcome, a: NewAttempt): unknown[] {
  return [
    d.id,
    d.target,
    d.source,
    d.call_id,
    outcome.ok ? outcome.rev : d.want_rev,
    a.operation,
    a.method,
    a.path,
    // UTC ISO: SQLite orders and prunes by the text.
    isoTime(a.startedAt),
    // Whole milliseconds: a timer's fraction is noise, and PostgreSQL's integer refuses it.
    Math.round(a.durationMs),
    a.status,
    a.requestId,
    a.result,
    a.error,
    a.retryAt === null ? null : isoTime(a.retryAt),
    a.sent,
  ];
}

export function toAgentWithoutUser(row: object, read: Readers): AgentWithoutUser {
  const r = row as DbRow;
  return {
    target: r.target as string,
    text: r.text as string,
    lastAt: read.time(r.last_at),
    runs: Number(r.runs),
  };
}

export function toSourceActivity(row: object, read: Readers): SourceActivity {
  const r = row as DbRow;
  return {
    source: r.source as string,
    lastId: r.id as number,
    lastReceivedAt: read.time(r.received_at),
    lastState: r.state as SourceActivity['lastState'],
    lastReasonCode: r.reason_code as string | null,
  };
}

/**
 * Per-target stats from the counts (store/queries.ts TARGET_COUNTS_SQL) and the oldest due_at of
 * each target with work due now (rows of target, oldest_due_at).
 */
export function toTargetStats(counts: object[], oldest: object[], read: Readers): TargetStats[] {
  const due = new Map((oldest as DbRow[]).map((r) => [r.target as string, r.oldest_due_at]));
  return (counts as DbRow[]).map((r) => ({
    target: r.target as string,
    due: Number(r.due),
    retrying: Number(r.retrying),
    dead: Number(r.dead),
    done: Number(r.done),
    oldestDueAt: maybe(read, due.get(r.target as string)),
  }));
}

/** A silent call as store/queries.ts staleCallsSql finds it. */
export function toStaleCall(row: object, read: Readers): StaleCall {
  const r = row as DbRow;
  return {
    source: r.source as string,
    callId: r.call_id as string,
    provider: r.provider as string,
    lastEventAt: read.time(r.last_event_at),
  };
}

export function toRefusal(row: object, read: Readers): Refusal {
  const r = row as DbRow;
  return {
    source: r.source as string,
    at: read.time(r.at),
    status: Number(r.status),
    code: r.code as string,
    reason: r.reason as string,
    path: r.path as string,
    address: r.address as string,
    count: Number(r.count),
  };
}
