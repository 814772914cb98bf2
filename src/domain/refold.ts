// Refolding one call: the decision every store backend follows, as a pure function. A store reads
// the call's rows (its stored events, the click-to-call origins on its channels, the events that
// name only one of its legs, whether events were dropped over the limit, the fingerprint of the
// record it holds), asks refoldCall what to do, and writes exactly that. Nothing here knows SQL.

import { createHash } from 'node:crypto';
import { LEG_JOINED_TYPES } from './constants.js';
import { foldCall, stableJson } from './fold.js';
import type { CallEvent, CallRecord, StoredEvent } from './model.js';
import { dueTargets, type Routing } from './routing.js';

/** An event row as stored: its request, position in it, adapter, receive time and content key. */
export interface EventRow extends StoredEvent {
  provider: string;
}

/** An `originated` event (the PBX's answer to a click-to-call) on one of the call's channels. */
export type OriginRow = Pick<StoredEvent, 'inboxId' | 'idx' | 'event'>;

export interface RefoldInput {
  source: string;
  callId: string;
  /** Every stored event of the call (at most the per-call limit). */
  events: EventRow[];
  /** Origins on any channel in channelsOf(events). */
  origins: OriginRow[];
  /**
   * Events of the source with no call id on any leg in legsOf(events) (a store may read more: only
   * those joinsByLeg says join are folded in), at most the per-call limit of them, the earliest by
   * arrival. Undefined: none.
   */
  joined?: EventRow[];
  /** Some of the call's events were dropped over the per-call limit, or joined ones left out. */
  truncated: boolean;
  /** The fingerprint of the record the store holds; undefined when it holds none. */
  previous: string | undefined;
}

export type RefoldResult =
  /** The call has no events left (a replay moved them): remove its record. */
  | { kind: 'delete' }
  /** The record would come out the same: write nothing, deliver nothing. */
  | { kind: 'unchanged' }
  | {
      kind: 'write';
      record: CallRecord;
      json: string;
      fingerprint: string;
      /** Targets the changed call is now due at, and from when. */
      due: { target: string; dueAt: string }[];
    };

/** The channels a call's events name: where its click-to-call origins are looked up. */
export function channelsOf(events: readonly Pick<StoredEvent, 'event'>[]): string[] {
  return [...new Set(events.map((e) => e.event.channelId).filter((c): c is string => !!c))].sort();
}

/**
 * An event that names only a leg: it belongs to every call of its source with an event on that
 * leg, whichever arrives first, and never makes a call of its own.
 */
export const joinsByLeg = (e: CallEvent): boolean =>
  !e.callId && !!e.legId && LEG_JOINED_TYPES.has(e.type);

/** The legs a call's own events name: where the events that name only a leg are looked up. */
export function legsOf(events: readonly Pick<StoredEvent, 'event'>[]): string[] {
  const legs = events.filter((e) => e.event.callId && e.event.legId).map((e) => e.event.legId!);
  return [...new Set(legs)].sort();
}

/** One value for a record's content, whatever the order of its keys (SQLite text, jsonb). */
function fingerprintOf(record: CallRecord): string {
  return createHash('sha256').update(stableJson(record)).digest('base64url');
}

const byArrival = (a: OriginRow, b: OriginRow): number => a.inboxId - b.inboxId || a.idx - b.idx;

/**
 * Who placed the call: the earliest click-to-call origin (by arrival) on any of its channels. A
 * call that moved across channels (transfers) keeps the origin of whoever placed it first.
 */
function originOf(origins: readonly OriginRow[]): string | null {
  const first = [...origins].filter((o) => o.event.originatedBy).sort(byArrival)[0];
  return first?.event.originatedBy ?? null;
}

/**
 * The provider of the latest request names the call (a source may have changed adapters). An
 * analysis alone does not: it adds AI results to a call other events made (a journal joined to the
 * add-on's call, pipeline/join.ts).
 */
function providerOf(events: readonly EventRow[]): string {
  const made = events.filter((e) => e.event.type !== 'analysis');
  return (made.length ? made : events).reduce((a, b) => (b.inboxId > a.inboxId ? b : a)).provider;
}

export function refoldCall(input: RefoldInput, routing: Routing, now: Date): RefoldResult {
  // A relay's close alone is no call (a replay moved the call's events elsewhere). Nor are events
  // joined by leg: only the call's own events make it.
  if (!input.events.some((e) => e.event.type !== 'closed')) return { kind: 'delete' };
  const legs = new Set(legsOf(input.events));
  const joined = (input.joined ?? []).filter(
    (e) => joinsByLeg(e.event) && legs.has(e.event.legId!),
  );
  const events = joined.length ? [...input.events, ...joined] : input.events;
  const record = foldCall(events, {
    source: input.source,
    provider: providerOf(events),
    originatedBy: originOf(input.origins),
    truncated: input.truncated,
  });
  const fingerprint = fingerprintOf(record);
  if (fingerprint === input.previous) return { kind: 'unchanged' };
  return {
    kind: 'write',
    record,
    json: JSON.stringify(record),
    fingerprint,
    due: dueTargets(record, routing, now),
  };
}
