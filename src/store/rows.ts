// Database rows -> store rows, shared by the backends. SQLite keeps times as ISO text and JSON as
// text; PostgreSQL returns Dates and parsed jsonb: each backend passes how to read its own.

import type { DeliveryRow, InboxRow } from './types.js';

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

export function toInboxRow(r: Record<string, any>, read: Readers): InboxRow {
  return {
    id: r.id,
    source: r.source,
    provider: r.provider,
    kind: r.kind,
    receivedAt: read.time(r.received_at),
    method: r.method,
    query: r.query,
    contentType: r.content_type,
    headers: read.json(r.headers),
    body: r.body,
    state: r.state,
    rule: r.rule,
    reasonCode: r.reason_code,
    reason: r.reason,
    replays: r.replays,
  };
}

export function toDeliveryRow(r: Record<string, any>, read: Readers): DeliveryRow {
  return {
    id: r.id,
    target: r.target,
    source: r.source,
    callId: r.call_id,
    state: r.state,
    dueAt: read.time(r.due_at),
    wantRev: r.want_rev,
    doneRev: r.done_rev,
    attempts: r.attempts,
    firstFailedAt: maybe(read, r.first_failed_at),
    lastError: r.last_error,
    remote: read.json(r.remote),
    updatedAt: read.time(r.updated_at),
  };
}
