// Call record -> Pipedrive bodies: the call log (outcome, numbers, UTC times, duration, subject,
// HTML note), the note with what arrived after the call log, and the follow-up activity.
// Facts: docs/crm-notes.md B.

import type { CallRecord, Outcome } from '../../domain/model.js';
import { companyNumber, externalNumber } from '../kit/numbers.js';
import { callBody, callTitle, esc, marker, talkTimeSec } from '../kit/summary.js';
import type { OUTCOMES } from './spec.js';

export const DEFAULT_OUTCOMES: Record<Outcome, (typeof OUTCOMES)[number]> = {
  answered: 'connected',
  missed: 'no_answer',
  busy: 'busy',
  failed: 'no_answer',
};

/** Pipedrive wants UTC as "YYYY-MM-DD HH:MM:SS". */
export const pdTime = (iso: string): string => iso.slice(0, 19).replace('T', ' ');

export function callLogBody(
  c: CallRecord,
  o: { userId?: number; personId?: number; outcomes: Record<Outcome, string> },
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
    note: callBody(c, c.recordings),
  };
  if (o.userId !== undefined) body.user_id = o.userId;
  if (o.personId !== undefined) body.person_id = o.personId;
  return body;
}

/** The note for what arrived after the call log (which cannot be updated), in Pipedrive's HTML. */
export function lateNote(c: CallRecord, late: string[], lateAi: boolean): string {
  const lines = [`<b>${esc(callTitle(c))}</b>, ${esc(c.startedAt)}`];
  for (const r of late) lines.push(`<b>Recording:</b> <a href="${esc(r)}">${esc(r)}</a>`);
  if (lateAi) lines.push(`<b>AI summary:</b> ${esc(c.ai!.summary!)}`);
  if (lateAi && c.ai?.transcription) lines.push(`<b>Transcript:</b><br>${esc(c.ai.transcription)}`);
  lines.push(`<small>${esc(marker(c))}</small>`);
  return lines.join('<br>');
}

/** A call activity to call back a missed caller, due when the call ended (UTC). */
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
    done: 0,
    ...(o.userId !== undefined ? { user_id: o.userId } : {}),
    ...(o.personId ? { person_id: o.personId } : {}),
    note: `Missed call from ${esc(who)} (${esc(marker(c))})`,
  };
}
