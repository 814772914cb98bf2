// How a stored request and its events are filed: the rules every store backend follows when it
// commits a request, so that repeats cost the same whatever came before them.
//
// An event whose content key is already stored for the source is a *copy*: no second event row,
// the request links to the stored one (a replay can hand the event over) and, if it brought
// nothing else, is applied at once without a fold. A call keeps at most `maxEventsPerCall`
// distinct events; one past that is *dropped*: kept in its raw request only, counted, and the
// first one marks the record `truncated` (one fold); later ones cost no fold at all.

import type { ErrorCode } from './errors.js';
import type { CallEvent } from './model.js';
import type { MapResult } from './request.js';

/**
 * pending: committed, its calls not folded yet; applied: folded (or nothing to fold); unmapped:
 * no rule understood it (kept with the reason, replayable); ignored: a rule said to ignore it.
 */
export type InboxState = 'pending' | 'applied' | 'unmapped' | 'ignored';

/** Distinct events a call keeps unless store.maxEventsPerCall says otherwise. */
export const DEFAULT_MAX_EVENTS_PER_CALL = 500;

/** What became of one event of a request. */
export type EventFiling = 'new' | 'copy' | 'dropped' | 'first-dropped';

/** Where an event sits: its request, and its position among that request's events. */
export interface EventPlace {
  inboxId: number;
  idx: number;
}

/**
 * An event belongs to the earliest request that carries it (its arrival is the call's), so that a
 * record depends on the set of requests, never on the order replays happened in.
 */
export const isEarlier = (a: EventPlace, b: EventPlace): boolean =>
  a.inboxId < b.inboxId || (a.inboxId === b.inboxId && a.idx < b.idx);

/** After storing a new call event the call holds `count` distinct events: over the limit? */
export const overLimit = (count: number, max: number): boolean => count > max;

/**
 * An event kept past the limit: the relay's close of a silent call (domain/close.ts), which a call
 * at its limit needs most. It is counted like any other, so a replay uncounts it the same way.
 */
export const keptPastLimit = (e: Pick<CallEvent, 'type'>): boolean => e.type === 'closed';

/** A dropped event: the first one of its call needs a fold to mark the record. */
export const droppedFiling = (droppedSoFar: number): EventFiling =>
  droppedSoFar === 1 ? 'first-dropped' : 'dropped';

/** Every event of a request filed as new: how a request is stored before its events are filed. */
export const assumeNew = (result: MapResult): EventFiling[] =>
  result.status === 'mapped' ? result.events.map(() => 'new' as const) : [];

export interface InboxFiling {
  state: InboxState;
  rule: string | null;
  reasonCode: ErrorCode | null;
  reason: string | null;
}

/** The state, rule and reason of a request, from its mapping and what became of its events. */
export function fileRequest(result: MapResult, events: EventFiling[], max: number): InboxFiling {
  switch (result.status) {
    case 'ignored':
      return { state: 'ignored', rule: result.rule, reasonCode: null, reason: result.message };
    case 'unmapped':
      return {
        state: 'unmapped',
        rule: result.rule ?? null,
        reasonCode: result.code,
        reason: result.message,
      };
    case 'mapped': {
      const fold = events.some((e) => e === 'new' || e === 'first-dropped');
      const dropped = events.some((e) => e === 'dropped' || e === 'first-dropped');
      return {
        state: fold ? 'pending' : 'applied',
        rule: result.rule,
        reasonCode: dropped ? 'RELAY_ERR_CALL_EVENT_LIMIT' : null,
        reason: dropped
          ? `its call already has ${max} distinct events (store.maxEventsPerCall); ` +
            'kept as a raw request only'
          : null,
      };
    }
  }
}
