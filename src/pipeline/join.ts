// Joining a journaled call to the call another source already has of it. A 3CX PBX can feed the
// relay twice: the WebAPI add-on (events as the call goes: legs, transfers, ringing) and its CRM
// template's journal (one post once it ended). sources[].crm.joinCallsOf names the add-on's
// source; a journal that matches one of its calls makes no second record: it is filed under that
// call with only what the add-on does not send itself (the AI summary), or ignored. One rule for
// ingest and replay, and for every store: the lookup is the store's own call list.

import type { CallEvent, CallRecord } from '../domain/model.js';
import type { MapResult } from '../domain/request.js';
import type { Store } from '../store/types.js';

export interface JoinSettings {
  /** The source whose calls a journal of this source joins. */
  joinCallsOf?: string;
  /** How far apart the two starts of one call may be. */
  joinWithinSec: number;
}

/** Where a request is filed, and as what. */
export interface Filing {
  source: string;
  result: MapResult;
}

/** The rule name a joined request is filed with. */
export const JOINED_RULE = 'joined';

/** Candidates looked at per journal: a number and an agent have few calls in seconds. */
const CANDIDATES = 50;

const digits = (s: string): string => s.replace(/\D/g, '');

/** Whether the journal's agent took part in the call: handled it, rang, or took a leg. */
function agentOf(call: CallRecord, agent: string): boolean {
  return (
    call.agent === agent || call.rang.includes(agent) || call.legs.some((l) => l.agent === agent)
  );
}

/**
 * The call of `of` that this journal event is: the same external number (E.164), its agent among
 * the call's, and a start within `withinSec`; the nearest start if several are. A journal without
 * an agent (a call missed in a queue: 3CX leaves [Agent] empty or unfilled) has nothing to tell
 * calls apart by but their direction: it joins only when exactly one call of the same number and
 * direction started within `withinSec`, rather than guess between two.
 */
export async function findJoined(
  store: Pick<Store, 'listCalls'>,
  of: string,
  withinSec: number,
  e: CallEvent,
): Promise<CallRecord | undefined> {
  if (!e.externalE164 || !e.startedAt) return undefined;
  const agent = e.agent;
  const at = Date.parse(e.startedAt);
  const ms = withinSec * 1000;
  const rows = await store.listCalls({
    source: of,
    number: digits(e.externalE164),
    from: new Date(at - ms).toISOString(),
    // `to` is exclusive; the window is not.
    to: new Date(at + ms + 1).toISOString(),
    limit: CANDIDATES,
  });
  const near = rows
    .map(({ record }) => ({ call: record, off: Math.abs(Date.parse(record.startedAt) - at) }))
    .filter((x) => x.call.externalE164 === e.externalE164 && x.off <= ms);
  if (!agent) {
    const same = near.filter((x) => e.direction && x.call.direction === e.direction);
    return same.length === 1 ? same[0]!.call : undefined;
  }
  let best: { call: CallRecord; off: number } | undefined;
  for (const x of near) if (agentOf(x.call, agent) && (!best || x.off < best.off)) best = x;
  return best?.call;
}

/**
 * How to file a request of `source` (mapped already): as it is, or joined to a call of
 * `crm.joinCallsOf`. Joined, it goes under that source with an `analysis` event for the call when
 * the journal has AI results, else it is ignored under its own source, saying which call it is.
 */
export async function fileJournal(
  store: Pick<Store, 'listCalls'>,
  source: string,
  crm: JoinSettings | undefined,
  result: MapResult,
): Promise<Filing> {
  const own = { source, result };
  const of = crm?.joinCallsOf;
  if (!of || result.status !== 'mapped' || result.events.length !== 1) return own;
  const e = result.events[0]!;
  if (e.type !== 'report') return own;
  const call = await findJoined(store, of, crm.joinWithinSec, e);
  if (!call) return own;
  const ai = e.ai && Object.values(e.ai).some((v) => v !== undefined) ? e.ai : undefined;
  if (ai)
    return {
      source: of,
      result: {
        status: 'mapped',
        rule: JOINED_RULE,
        events: [{ type: 'analysis', callId: call.callId, ai }],
      },
    };
  return {
    source,
    result: {
      status: 'ignored',
      rule: JOINED_RULE,
      message: `joined to call ${call.callId} of source ${of}, which has all this journal says`,
    },
  };
}
