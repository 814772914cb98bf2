// A call's times as the people who read them mean them: talk time (0 for a call nobody answered,
// however long it rang) and ring time, from the record's totals. One rule for the console, the
// command line and the CRMs, so that none of them shows a missed call as a 25-second call.

import type { CallRecord } from './model.js';

type Times = Pick<CallRecord, 'status' | 'outcome' | 'durationSec' | 'talkSec'>;

/**
 * Talk time: 0 for an ended call nobody answered (however long it rang), the talk time where the
 * provider gives it, else the provider's one figure (3CX's duration is counted from the answer);
 * null while an answered call has no figure yet.
 */
export function talkTimeSec(c: Times): number | null {
  if (c.outcome !== 'answered') return c.status === 'ended' ? 0 : null;
  return c.talkSec ?? c.durationSec;
}

/**
 * Ring time, where the provider's total says it: the whole of an unanswered call, the total less
 * the talk time of an answered one; null where nothing tells it.
 */
export function ringTimeSec(c: Times): number | null {
  if (c.durationSec === null) return null;
  if (c.outcome !== 'answered') return c.status === 'ended' ? c.durationSec : null;
  return c.talkSec !== null && c.durationSec > c.talkSec ? c.durationSec - c.talkSec : null;
}
