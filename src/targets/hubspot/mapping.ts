// Call record -> HubSpot properties of the call engagement and the follow-up task (all values
// strings, as the API takes them), and their association with the contact.
// Facts: docs/crm-notes.md A.1 (properties, disposition GUIDs, HTTPS-only recordings, duration in
// ms).

import { companyNumber, externalNumber } from '../kit/numbers.js';
import type { CallRecord, Outcome } from '../../domain/model.js';
import type { Other } from '../kit/phone-lookup.js';
import { callBody, callTitle, marker, talkTimeSec, unansweredLine } from '../kit/summary.js';

/** HubSpot's default call outcome GUIDs; there is no default "failed" or "missed". */
export const DEFAULT_DISPOSITIONS: Record<Outcome, string> = {
  answered: 'f240bbac-87c9-4f6e-bf70-924b57d47db7', // Connected
  missed: '73a0d17f-1163-4015-bdd5-ec830791da20', // No answer
  busy: '9d9162e7-6cf3-4944-bf63-4dff82258764', // Busy
  failed: '73a0d17f-1163-4015-bdd5-ec830791da20', // No answer
};

const STATUS: Record<string, string> = {
  answered: 'COMPLETED',
  missed: 'NO_ANSWER',
  busy: 'BUSY',
  failed: 'FAILED',
};

/** A URL HubSpot can play on the record: HTTPS, .mp3 or .wav. */
export const playable = (u: string): boolean => /^https:\/\/[^\s{}]+\.(mp3|wav)(\?.*)?$/i.test(u);

export function callProperties(
  c: CallRecord,
  o: { ownerId?: string; dispositions: Record<Outcome, string>; sharedWith?: Other<string>[] },
): Record<string, string> {
  const recordings = c.recordings;
  const play = recordings.find(playable);
  const external = externalNumber(c);
  const company = companyNumber(c);
  const p: Record<string, string> = {
    hs_timestamp: c.startedAt,
    hs_call_title: callTitle(c),
    hs_call_body: callBody(
      c,
      recordings.filter((r) => r !== play),
      o.sharedWith,
    ),
    hs_call_direction: c.direction === 'outbound' ? 'OUTBOUND' : 'INBOUND',
    hs_call_status:
      c.status === 'ended'
        ? STATUS[c.outcome ?? 'missed']!
        : c.status === 'in-progress'
          ? 'IN_PROGRESS'
          : 'RINGING',
    hs_call_from_number: c.direction === 'outbound' ? company : external,
    hs_call_to_number: c.direction === 'outbound' ? external : company,
  };
  if (c.outcome) p.hs_call_disposition = o.dispositions[c.outcome];
  const talk = talkTimeSec(c);
  if (talk !== null) p.hs_call_duration = String(Math.round(talk * 1000));
  if (play) p.hs_call_recording_url = play;
  if (o.ownerId) p.hubspot_owner_id = o.ownerId;
  return p;
}

/** The follow-up task for a missed call, for the agent's owner (if known). */
export function taskProperties(c: CallRecord, ownerId?: string): Record<string, string> {
  const who = c.externalE164 ?? c.externalNumber ?? 'an unknown number';
  const properties: Record<string, string> = {
    hs_timestamp: c.endedAt ?? c.startedAt,
    hs_task_subject: `Call back ${who}`,
    hs_task_body: `${unansweredLine(c, who)} at ${c.startedAt} (${marker(c)}).`,
    hs_task_status: 'NOT_STARTED',
    hs_task_priority: 'HIGH',
    hs_task_type: 'CALL',
  };
  if (ownerId) properties.hubspot_owner_id = ownerId;
  return properties;
}

/** Associations with the contact, if there is one: HUBSPOT_DEFINED 194 call, 204 task. */
export function toContact(
  contactId: string | null | undefined,
  associationTypeId: 194 | 204,
): { to: { id: string }; types: { associationCategory: string; associationTypeId: number }[] }[] {
  return contactId
    ? [
        {
          to: { id: contactId },
          types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId }],
        },
      ]
    : [];
}
