// What every CRM shows of a call: a title, and an HTML summary (direction, agent, queue path,
// transfers, recordings, AI summary and transcript) ending in a marker that names the call.

import type { CallRecord } from '../../domain/model.js';

/** Ends every summary; also lets a target find its own object again (Pipedrive call logs). */
export const marker = (c: Pick<CallRecord, 'source' | 'callId'>): string =>
  `callrelay ${c.source}/${c.callId}`;

export const esc = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function callTitle(c: CallRecord): string {
  const who = c.externalE164 ?? c.externalNumber ?? 'unknown number';
  const dir = c.direction === 'outbound' ? `Outbound call to ${who}` : `Inbound call from ${who}`;
  return c.outcome && c.outcome !== 'answered' ? `${dir} (${c.outcome})` : dir;
}

/** The note: what a salesperson wants at a glance, then the AI summary and transcript. */
export function callBody(c: CallRecord, recordingsInBody: string[]): string {
  const lines: string[] = [];
  const add = (k: string, v: unknown): void => {
    if (v !== null && v !== undefined && v !== '')
      lines.push(`<b>${esc(k)}:</b> ${esc(String(v))}`);
  };
  add('Direction', c.direction);
  add('Outcome', c.outcome);
  add('Number', c.externalNumber);
  add('DID', c.did);
  add('Agent', c.agentName ? `${c.agentName} (${c.agent})` : c.agent);
  if (c.rang.length) add('Rang', c.rang.join(' → '));
  for (const t of c.transfers)
    add('Transfer', `${t.kind}: ${t.fromAgent ?? '?'} → ${t.toAgent ?? '?'}`);
  add('Talk time', c.talkSec === null ? null : `${c.talkSec} s`);
  add('End reason', c.endReason);
  for (const r of recordingsInBody)
    lines.push(`<b>Recording:</b> <a href="${esc(r)}">${esc(r)}</a>`);
  if (c.ai?.summary) lines.push(`<b>AI summary:</b> ${esc(c.ai.summary)}`);
  if (c.ai?.sentiment !== undefined) add('Sentiment', c.ai.sentiment);
  if (c.ai?.transcription) lines.push(`<b>Transcript:</b><br>${esc(c.ai.transcription)}`);
  lines.push(`<small>${esc(marker(c))}</small>`);
  return lines.join('<br>');
}
