// Call record -> HubSpot call engagement properties (all values strings, as the API takes them).
// Facts: docs/crm-apis.md A.1 (properties, disposition GUIDs, HTTPS-only recordings, duration in ms).

import type { CallRecord, Outcome } from '../../calls/model.js';

/** HubSpot's default call outcome GUIDs; there is no default "failed" or "missed". */
export const DEFAULT_DISPOSITIONS: Record<Outcome, string> = {
  answered: 'f240bbac-87c9-4f6e-bf70-924b57d47db7', // Connected
  missed: '73a0d17f-1163-4015-bdd5-ec830791da20', // No answer
  busy: '9d9162e7-6cf3-4944-bf63-4dff82258764', // Busy
  failed: '73a0d17f-1163-4015-bdd5-ec830791da20', // No answer
};

const STATUS: Record<string, string> = { answered: 'COMPLETED', missed: 'NO_ANSWER', busy: 'BUSY', failed: 'FAILED' };

/** A URL HubSpot can play on the record: HTTPS, .mp3 or .wav. */
export const playable = (u: string): boolean => /^https:\/\/[^\s{}]+\.(mp3|wav)(\?.*)?$/i.test(u);

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function callTitle(c: CallRecord): string {
  const who = c.externalE164 ?? c.externalNumber ?? 'unknown number';
  const dir = c.direction === 'outbound' ? `Outbound call to ${who}` : `Inbound call from ${who}`;
  return c.outcome && c.outcome !== 'answered' ? `${dir} (${c.outcome})` : dir;
}

/** The note: what a salesperson wants at a glance, then the AI summary and transcript. */
export function callBody(c: CallRecord, recordingsInBody: string[]): string {
  const lines: string[] = [];
  const add = (k: string, v: unknown): void => {
    if (v !== null && v !== undefined && v !== '') lines.push(`<b>${esc(k)}:</b> ${esc(String(v))}`);
  };
  add('Direction', c.direction);
  add('Outcome', c.outcome);
  add('Number', c.externalNumber);
  add('DID', c.did);
  add('Agent', c.agentName ? `${c.agentName} (${c.agent})` : c.agent);
  if (c.rang.length) add('Rang', c.rang.join(' → '));
  for (const t of c.transfers) add('Transfer', `${t.kind}: ${t.fromAgent ?? '?'} → ${t.toAgent ?? '?'}`);
  add('Talk time', c.talkSec === null ? null : `${c.talkSec} s`);
  add('End reason', c.endReason);
  for (const r of recordingsInBody) lines.push(`<b>Recording:</b> <a href="${esc(r)}">${esc(r)}</a>`);
  if (c.ai?.summary) lines.push(`<b>AI summary:</b> ${esc(c.ai.summary)}`);
  if (c.ai?.sentiment !== undefined) add('Sentiment', c.ai.sentiment);
  if (c.ai?.transcription) lines.push(`<b>Transcript:</b><br>${esc(c.ai.transcription)}`);
  lines.push(`<small>callrelay ${esc(c.source)}/${esc(c.callId)}</small>`);
  return lines.join('<br>');
}

export function callProperties(c: CallRecord, o: { ownerId?: string; dispositions: Record<Outcome, string>; didE164?: string }): Record<string, string> {
  const recordings = c.recordings;
  const play = recordings.find(playable);
  const external = c.externalE164 ?? c.externalNumber ?? '';
  const company = o.didE164 ?? c.did ?? '';
  const p: Record<string, string> = {
    hs_timestamp: c.startedAt,
    hs_call_title: callTitle(c),
    hs_call_body: callBody(c, recordings.filter((r) => r !== play)),
    hs_call_direction: c.direction === 'outbound' ? 'OUTBOUND' : 'INBOUND',
    hs_call_status: c.status === 'ended' ? STATUS[c.outcome ?? 'missed']! : c.status === 'in-progress' ? 'IN_PROGRESS' : 'RINGING',
    hs_call_from_number: c.direction === 'outbound' ? company : external,
    hs_call_to_number: c.direction === 'outbound' ? external : company,
  };
  if (c.outcome) p.hs_call_disposition = o.dispositions[c.outcome];
  if (c.durationSec !== null) p.hs_call_duration = String(Math.round(c.durationSec * 1000));
  if (play) p.hs_call_recording_url = play;
  if (o.ownerId) p.hubspot_owner_id = o.ownerId;
  return p;
}
