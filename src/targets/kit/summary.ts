// What every CRM shows of a call: a title, and an HTML summary (direction, agent, queue path,
// transfers, recordings, AI summary and transcript, others with the caller's number) ending in a
// marker that names the call.

import type { CallRecord } from '../../domain/model.js';
import { ringTimeSec, talkTimeSec } from '../../domain/talk.js';
import type { Other } from './phone-lookup.js';

/** How many others with the caller's number the note names (then "and N more"). */
const OTHERS_SHOWN = 5;

/** Ends every summary; also lets a target find its own object again (Pipedrive call logs). */
export const marker = (c: Pick<CallRecord, 'source' | 'callId'>): string =>
  `callrelay ${c.source}/${c.callId}`;

export const esc = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/**
 * A recording in a note: a link only for an http(s) URL (a webhook's `javascript:` or `data:` URL
 * in an href would run in the CRM's page when clicked); anything else as plain text.
 */
export function recordingLine(url: string): string {
  const web = /^https?:\/\//i.test(url) && URL.canParse(url);
  return `<b>Recording:</b> ${web ? `<a href="${esc(url)}">${esc(url)}</a>` : esc(url)}`;
}

/**
 * The call and the other party in words: "inbound call from X", "outbound call to X", or, where
 * the provider did not say which way it went, "call with X": no guess, and no gap in the text.
 */
export function callWith(c: Pick<CallRecord, 'direction'>, who: string): string {
  if (c.direction === 'outbound') return `outbound call to ${who}`;
  if (c.direction === 'inbound') return `inbound call from ${who}`;
  return `call with ${who}`;
}
const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

export function callTitle(c: CallRecord): string {
  const dir = capital(callWith(c, c.externalE164 ?? c.externalNumber ?? 'unknown number'));
  return c.outcome && c.outcome !== 'answered' ? `${dir} (${c.outcome})` : dir;
}

/** A follow-up's first words (a call nobody answered): "Missed inbound call from X". */
export function unansweredLine(c: Pick<CallRecord, 'direction' | 'outcome'>, who: string): string {
  const word = c.outcome === 'busy' ? 'Busy' : c.outcome === 'failed' ? 'Failed' : 'Missed';
  return `${word} ${callWith(c, who)}`;
}

/** The note: what a salesperson wants at a glance, then the AI summary and transcript. */
/** The duration a CRM shows: the talk time (domain/talk.ts); ring time goes in the body. */
export { talkTimeSec };

/**
 * For a call the relay closed (domain/close.ts): the end was never reported, so its time (and, if
 * it was answered, the talk time) is unknown, not zero.
 */
export function notReported(c: CallRecord): string | null {
  if (c.closedBy !== 'relay') return null;
  const last = c.events.filter((e) => e.type !== 'closed').at(-1)?.receivedAt;
  return (
    `not reported by the phone system; closed by the relay after no event since ${last ?? '?'}` +
    (c.outcome === 'answered' ? ' (talk time unknown)' : '')
  );
}

/**
 * The others who have the caller's number (the call went to the one made first), e.g.
 * "Petr Novák (id 12), id 13 and 2 more".
 */
export function othersLine(others: Other<unknown>[]): string | undefined {
  if (!others.length) return undefined;
  const shown = others
    .slice(0, OTHERS_SHOWN)
    .map((o) => (o.name ? `${o.name} (id ${String(o.id)})` : `id ${String(o.id)}`));
  const more = others.length - shown.length;
  return shown.join(', ') + (more ? ` and ${more} more` : '');
}

/** Who placed a call through the relay's click-to-call, in words: "from callrelay (api:jana)". */
function placedBy(originatedBy: string | null | undefined): string | null {
  if (!originatedBy) return null;
  return originatedBy === 'makecall'
    ? 'from callrelay (click-to-call)'
    : `from callrelay (click-to-call, ${originatedBy})`;
}

export function callBody(
  c: CallRecord,
  recordingsInBody: string[],
  sharedWith: Other<unknown>[] = [],
): string {
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
  add('Placed', placedBy(c.originatedBy));
  if (c.rang.length) add('Rang', c.rang.join(' → '));
  for (const t of c.transfers)
    add('Transfer', `${t.kind}: ${t.fromAgent ?? '?'} → ${t.toAgent ?? '?'}`);
  const talk = talkTimeSec(c);
  add('Talk time', talk === null ? null : `${talk} s`);
  if (c.durationSec !== null && c.durationSec !== talk) add('Total time', `${c.durationSec} s`);
  const ring = ringTimeSec(c);
  add('Ring time', ring ? `${ring} s` : null);
  add('End reason', c.closedBy ? null : c.endReason);
  add('End', notReported(c));
  for (const r of recordingsInBody) lines.push(recordingLine(r));
  if (c.ai?.summary) lines.push(`<b>AI summary:</b> ${esc(c.ai.summary)}`);
  if (c.ai?.sentiment !== undefined) add('Sentiment', c.ai.sentiment);
  if (c.ai?.transcription) lines.push(`<b>Transcript:</b><br>${esc(c.ai.transcription)}`);
  add('Also on this number', othersLine(sharedWith));
  lines.push(`<small>${esc(marker(c))}</small>`);
  return lines.join('<br>');
}
