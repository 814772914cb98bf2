// Call record -> Pipedrive bodies: the call activity the call log converts, the call log (outcome,
// numbers, UTC times, duration, subject, HTML note), the note with what arrived after the call log,
// and the follow-up activity. Facts: docs/crm-notes.md B.

import type { CallRecord, Outcome } from '../../domain/model.js';
import { companyNumber, externalNumber } from '../kit/numbers.js';
import type { Other } from '../kit/phone-lookup.js';
import {
  callBody,
  callTitle,
  esc,
  marker,
  recordingLine,
  talkTimeSec,
  unansweredLine,
} from '../kit/summary.js';
import type { OUTCOMES } from './spec.js';

export const DEFAULT_OUTCOMES: Record<Outcome, (typeof OUTCOMES)[number]> = {
  answered: 'connected',
  missed: 'no_answer',
  busy: 'busy',
  failed: 'no_answer',
};

/** Pipedrive wants UTC as "YYYY-MM-DD HH:MM:SS". */
export const pdTime = (iso: string): string => iso.slice(0, 19).replace('T', ' ');

/**
 * In the call activity's note until the call log converts it (the log brings its own note), so
 * that a look at the activity tells whether a call log whose answer was lost was made.
 */
export const AWAITING_CALL_LOG = 'callrelay is writing the call log for this call';

/** Whether an activity's note is the given call's, and which of the call's activities it is. */
export const callActivityOf = (c: CallRecord, note: unknown): boolean =>
  typeof note === 'string' && note.includes(`<small>${esc(marker(c))}</small>`);
export const followUpOf = (c: CallRecord, note: unknown): boolean =>
  typeof note === 'string' && note.includes(`(${esc(marker(c))})`);

/**
 * The `call` activity (API v2) made before the call log, which the log then converts: it can be
 * found again by its owner and note, where the call log of another user cannot.
 */
export function callActivity(
  c: CallRecord,
  o: { userId?: number; personId?: number | null },
): Record<string, unknown> {
  const start = new Date(Date.parse(c.startedAt)).toISOString();
  return {
    subject: callTitle(c),
    type: 'call',
    due_date: start.slice(0, 10),
    due_time: start.slice(11, 16),
    done: true,
    ...(o.userId !== undefined ? { owner_id: o.userId } : {}),
    ...(o.personId ? { person_id: o.personId } : {}),
    note: `${AWAITING_CALL_LOG}<br><small>${esc(marker(c))}</small>`,
  };
}

export function callLogBody(
  c: CallRecord,
  o: {
    userId?: number;
    personId?: number;
    activityId?: number;
    outcomes: Record<Outcome, string>;
    sharedWith?: Other<number>[];
  },
): Record<string, unknown> {
  const external = externalNumber(c);
  const company = companyNumber(c);
  const start = c.startedAt;
  const talk = talkTimeSec(c);
  const end = c.endedAt ?? new Date(Date.parse(start) + (c.durationSec ?? 0) * 1000).toISOString();
  const body: Record<string, unknown> = {
    outcome: o.outcomes[c.outcome ?? 'missed'],
    to_phone_number: (c.direction === 'outbound' ? external : company) || 'unknown',
    from_phone_number: (c.direction === 'outbound' ? company : external) || undefined,
    start_time: pdTime(start),
    end_time: pdTime(end < start ? start : end),
    // Unknown talk time (a call whose end never came) is left out rather than sent as 0.
    duration: talk === null ? undefined : String(Math.round(talk)),
    subject: callTitle(c),
    note: callBody(c, c.recordings, o.sharedWith),
  };
  if (o.userId !== undefined) body.user_id = o.userId;
  if (o.personId !== undefined) body.person_id = o.personId;
  if (o.activityId !== undefined) body.activity_id = o.activityId;
  return body;
}

/** The note for what arrived after the call log (which cannot be updated), in Pipedrive's HTML. */
export function lateNote(c: CallRecord, late: string[], lateAi: boolean): string {
  const lines = [`<b>${esc(callTitle(c))}</b>, ${esc(c.startedAt)}`];
  for (const r of late) lines.push(recordingLine(r));
  if (lateAi) lines.push(`<b>AI summary:</b> ${esc(c.ai!.summary!)}`);
  if (lateAi && c.ai?.transcription) lines.push(`<b>Transcript:</b><br>${esc(c.ai.transcription)}`);
  lines.push(`<small>${esc(marker(c))}</small>`);
  return lines.join('<br>');
}

/** A call activity (API v2) to call back a missed caller, due when the call ended (UTC). */
export function followUpActivity(
  c: CallRecord,
  o: { userId?: number; personId?: number | null },
): Record<string, unknown> {
  const who = c.externalE164 ?? c.externalNumber ?? 'an unknown number';
  const due = new Date(Date.parse(c.endedAt ?? c.startedAt));
  return {
    subject: `Call back ${who}`,
    type: 'call',
    due_date: due.toISOString().slice(0, 10),
    due_time: due.toISOString().slice(11, 16),
    done: false,
    ...(o.userId !== undefined ? { owner_id: o.userId } : {}),
    ...(o.personId ? { person_id: o.personId } : {}),
    note: `${esc(unansweredLine(c, who))} (${esc(marker(c))})`,
  };
}
