// Folding: the events of one call -> one call record. A pure function of the *set* of events:
// it sorts them by arrival (inbox id, index) and drops repeats by content key, so the same events
// in any order, or delivered twice, give the same record. Where order matters (legs, the final
// word, who handled it last) it is the provider's times, not arrival. Rules are documented in
// docs/canonical-model.md; each one is provider-neutral (adapters decide what events mean).

import { createHash } from 'node:crypto';
import { MODEL_VERSION } from './constants.js';
import type { CallEvent, CallRecord, EventType, Leg, StoredEvent, Transfer } from './model.js';

export interface FoldContext {
  source: string;
  provider: string;
  /** From a click-to-call the relay placed, matched on the channel id (see refold.ts). */
  originatedBy?: string | null;
  /** Events of the call were dropped over the per-call limit. */
  truncated?: boolean;
}

const collator = new Intl.Collator('en', { numeric: true });
export const naturalCompare = (a: string, b: string): number =>
  collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);

/** Identity of an event's content: a provider re-sending the same webhook gives the same key. */
export function eventKey(e: CallEvent): string {
  return createHash('sha256').update(stableJson(e)).digest('base64url').slice(0, 22);
}

/** JSON with object keys sorted: the same value gives the same text, whatever the key order. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const keys = Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

const byArrival = (a: StoredEvent, b: StoredEvent): number =>
  a.inboxId - b.inboxId || a.idx - b.idx || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** The order in which event types are trusted for a call-wide fact (first defined value wins). */
const FACT_ORDER: EventType[] = [
  'report',
  'ended',
  'answered',
  'ringing',
  'dialing',
  'recording',
  'analysis',
];
const DIRECTION_ORDER: EventType[] = [
  'report',
  'ended',
  'answered',
  'dialing',
  'ringing',
  'recording',
  'analysis',
];

/** Events that make a call: without one, recordings and analyses wait for their call. */
const CALL_MAKING = new Set<EventType>(['ringing', 'dialing', 'answered', 'ended', 'report']);
const OPENS_LEG = new Set<EventType>(['ringing', 'dialing', 'answered']);

/** An end of this leg only (`scope: leg` and a leg to end); without a leg id it ends the call. */
const isLegEnd = (e: CallEvent): boolean => e.scope === 'leg' && !!e.legId;
const when = (s: StoredEvent): string => s.event.at ?? s.receivedAt;
const ms = (iso: string | undefined): number | undefined => {
  const t = iso === undefined ? NaN : Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
};

/**
 * `xs` in the order of the provider's times (then `thenTimed`, then `tie`); items without a time
 * go among them by `tie` alone (the timed and the untimed, each sorted, merged by `tie`), so that
 * one event with no time leaves the others' times in force. A receive time is no such time: it is
 * when the relay heard of an event, and it changes with the order of delivery, which must not
 * change the record. Both lists and their merge depend only on the set of items, not their order.
 */
function byTime<T>(
  xs: readonly T[],
  time: (x: T) => number | undefined,
  tie: Cmp<T>,
  thenTimed?: Cmp<T>,
): T[] {
  const timed = xs
    .filter((x) => time(x) !== undefined)
    .sort((a, b) => time(a)! - time(b)! || thenTimed?.(a, b) || tie(a, b));
  const untimed = xs.filter((x) => time(x) === undefined).sort(tie);
  const out: T[] = [];
  let i = 0;
  let j = 0;
  while (i < timed.length && j < untimed.length)
    out.push(tie(timed[i]!, untimed[j]!) <= 0 ? timed[i++]! : untimed[j++]!);
  return [...out, ...timed.slice(i), ...untimed.slice(j)];
}
type Cmp<T> = (a: T, b: T) => number;
/** Natural leg id order (3CX's ids rise with time), then arrival. */
const byLegId: Cmp<StoredEvent> = (a, b) =>
  naturalCompare(a.event.legId ?? '', b.event.legId ?? '') || byArrival(a, b);
const minOf = (xs: (string | undefined)[]): string | undefined => xs.filter(isStr).sort()[0];
const maxOf = (xs: (string | undefined)[]): string | undefined => xs.filter(isStr).sort().at(-1);
const sumOf = (xs: (number | undefined)[]): number | undefined => {
  const d = xs.filter((x): x is number => typeof x === 'number');
  return d.length ? d.reduce((a, b) => a + b, 0) : undefined;
};
function isStr(x: unknown): x is string {
  return typeof x === 'string';
}

export function foldCall(input: readonly StoredEvent[], ctx: FoldContext): CallRecord {
  const evs: StoredEvent[] = [];
  const seen = new Set<string>();
  for (const s of [...input].sort(byArrival)) {
    if (seen.has(s.key)) continue;
    seen.add(s.key);
    evs.push(s);
  }
  if (!evs.length) throw new Error('foldCall needs at least one event');
  const all = evs.map((s) => s.event);
  const callId = all.find((e) => e.callId)?.callId;
  if (!callId) throw new Error('foldCall: events carry no call id');

  const pick = <K extends keyof CallEvent>(
    k: K,
    order: EventType[] = FACT_ORDER,
  ): NonNullable<CallEvent[K]> | undefined => {
    for (const t of order)
      for (const e of all) if (e.type === t && e[k] !== undefined && e[k] !== null) return e[k]!;
    return undefined;
  };

  // A call is made by a ring, a dial, an answer, an end or a report. Recordings and analyses alone
  // (and the relay's close over them) are no call: nobody knows whether it rang, let alone that
  // it was missed. Such a call is `incomplete` until a real event comes, and goes nowhere.
  const incomplete = !all.some((e) => CALL_MAKING.has(e.type));
  // An end of one leg ends the call only once no leg is open any more (one that rang, was dialed
  // or answered, and has no end yet): the provider ended the others (simultaneous ring) while
  // the conversation went on.
  const open = new Set<string>();
  for (const e of all) if (e.legId && OPENS_LEG.has(e.type)) open.add(e.legId);
  for (const e of all) if (e.legId && e.type === 'ended') open.delete(e.legId);
  const finals = evs.filter(
    (s) =>
      s.event.type === 'report' ||
      (s.event.type === 'ended' &&
        s.event.transferred !== true &&
        (!isLegEnd(s.event) || open.size === 0)),
  );
  // The relay closed the call after a long silence (domain/close.ts): it ended, but when, and how
  // long anybody talked, nobody said. Any real end, even one that arrives later, wins.
  const closedByRelay = !incomplete && !finals.length && all.some((e) => e.type === 'closed');
  const endTime = (s: StoredEvent): number | undefined => ms(s.event.endedAt ?? s.event.at);
  const reports = byTime(
    finals.filter((s) => s.event.type === 'report'),
    endTime,
    byArrival,
  );
  // On equal times (Twilio's are whole seconds) a leg's end comes before the call's: the provider
  // ends the call after its legs, whichever leg id sorts higher (a Voice SDK client's call ends in
  // the second its customer's leg ends, and only the call's end knows who placed it).
  const ends = byTime(
    finals.filter((s) => s.event.type === 'ended'),
    endTime,
    (a, b) => Number(!isLegEnd(a.event)) - Number(!isLegEnd(b.event)) || byLegId(a, b),
  );
  const answered = byTime(
    evs.filter((s) => s.event.type === 'answered'),
    (s) => ms(s.event.answeredAt ?? s.event.at),
    byLegId,
  );
  // The final word on a call: the latest report, else the latest end of the whole call, else the
  // latest end of a leg (by the provider's times; without them, of the highest leg). The call's own
  // end speaks for the call; a leg's (a cancelled phone of a simultaneous ring) only for its leg.
  const lastFinal = reports.at(-1) ?? ends.filter((s) => !isLegEnd(s.event)).at(-1) ?? ends.at(-1);
  const ordered = [...reports, ...ends];

  const legs = foldLegs(all);
  const transfers = foldTransfers(all, legs);

  const everAnswered =
    answered.length > 0 || legs.length > 0 || finals.some((s) => s.event.outcome === 'answered');
  const outcome = everAnswered
    ? 'answered'
    : closedByRelay
      ? 'missed'
      : (lastFinal?.event.outcome ?? ordered.find((s) => s.event.outcome)?.event.outcome ?? null);
  const status = incomplete
    ? 'incomplete'
    : finals.length || closedByRelay
      ? 'ended'
      : all.some((e) => e.type === 'answered' || e.type === 'recording' || e.type === 'analysis')
        ? 'in-progress'
        : 'ringing';

  const rings = byTime(
    evs.filter((s) => s.event.type === 'ringing' || s.event.type === 'dialing'),
    (s) => ms(s.event.at),
    byLegId,
  );
  // Who handled it last: the final event's agent, else the latest answer's, else the last to ring.
  const agentEvent =
    (lastFinal?.event.agent ? lastFinal.event : undefined) ??
    [...answered].reverse().find((s) => s.event.agent)?.event ??
    [...rings].reverse().find((s) => s.event.agent)?.event;

  const rang: string[] = [];
  for (const { event: e } of rings)
    if (e.type === 'ringing' && e.agent && !rang.includes(e.agent)) rang.push(e.agent);

  const numberEvent = FACT_ORDER.flatMap((t) => all.filter((e) => e.type === t)).find(
    (e) => e.externalNumber,
  );

  const recordings = [...new Set(all.flatMap((e) => e.recordings ?? []))].sort(naturalCompare);

  let ai: CallRecord['ai'] = null;
  for (const e of all) {
    if (!e.ai) continue;
    ai ??= { hasTranscription: false };
    if (e.ai.summary !== undefined) ai.summary = e.ai.summary;
    if (e.ai.transcription !== undefined) ai.transcription = e.ai.transcription;
    if (e.ai.sentiment !== undefined) ai.sentiment = e.ai.sentiment;
  }
  if (ai) ai.hasTranscription = !!ai.transcription;

  const report = reports.at(-1)?.event;
  const legDurations = sumOf(legs.map((l) => l.durationSec ?? undefined));
  // A call-wide end (or report) speaks for the call; a leg's own end only for a leg somebody
  // answered. The legs a simultaneous ring cancelled rang alongside the call: adding their
  // seconds to the call's would count the same time twice.
  const answeredLegs = new Set(legs.map((l) => l.legId));
  const countsForCall = (e: CallEvent): boolean => !isLegEnd(e) || answeredLegs.has(e.legId!);
  // A call the relay closed has no totals: the legs that did end are not the whole call.
  const durationSec = closedByRelay
    ? null
    : (report?.durationSec ??
      legDurations ??
      sumOf(finals.filter((s) => countsForCall(s.event)).map((s) => s.event.durationSec)) ??
      null);
  const talkSec = closedByRelay
    ? null
    : (report?.talkSec ??
      sumOf(all.filter((e) => e.type === 'ended' && countsForCall(e)).map((e) => e.talkSec)) ??
      null);

  const startedAt = minOf(all.map((e) => e.startedAt)) ?? minOf(evs.map(when))!;
  const answeredAt = minOf(all.map((e) => e.answeredAt)) ?? minOf(answered.map(when)) ?? null;
  // The provider's times first: an end that says none must not make the time the relay heard of
  // it (which follows the order of delivery) the call's end, while another end says when.
  const endedAt =
    status === 'ended' && !closedByRelay
      ? (maxOf(all.map((e) => e.endedAt)) ??
        maxOf(finals.map((s) => s.event.at)) ??
        maxOf(finals.map(when)) ??
        null)
      : null;

  return {
    schemaVersion: MODEL_VERSION,
    callId,
    source: ctx.source,
    provider: ctx.provider,
    channelId: pick('channelId') ?? null,
    direction: pick('direction', DIRECTION_ORDER) ?? null,
    status,
    outcome,
    providerStatus: lastFinal?.event.providerStatus ?? pick('providerStatus') ?? null,
    externalNumber: numberEvent?.externalNumber ?? null,
    externalE164: numberEvent?.externalE164 ?? pick('externalE164') ?? null,
    did: pick('did') ?? null,
    agent: agentEvent?.agent ?? null,
    agentName: agentEvent?.agentName ?? pick('agentName') ?? null,
    rang,
    legs,
    transfers,
    startedAt,
    answeredAt: everAnswered ? answeredAt : null,
    endedAt,
    durationSec,
    talkSec,
    recordings,
    ai,
    endReason: closedByRelay
      ? 'timeout'
      : (lastFinal?.event.endReason ??
        ordered.find((s) => s.event.endReason)?.event.endReason ??
        null),
    campaign: pick('campaign') ?? null,
    originatedBy: pick('originatedBy') ?? ctx.originatedBy ?? null,
    events: evs.map((s) => ({
      type: s.event.type,
      legId: s.event.legId ?? null,
      inboxId: s.inboxId,
      receivedAt: s.receivedAt,
    })),
    closedBy: closedByRelay ? 'relay' : null,
    truncated: ctx.truncated ?? false,
  };
}

/**
 * Legs that were answered, in time order: who took each and how long it lasted. A leg's time is
 * when it was answered (else when its end says it was), then when it ended; ties, and legs the
 * provider gives no times for, go by leg id (see byTime).
 */
function foldLegs(all: CallEvent[]): Leg[] {
  const byLeg = new Map<string, { answered: CallEvent[]; ended: CallEvent[] }>();
  for (const e of all) {
    if (!e.legId || (e.type !== 'answered' && e.type !== 'ended')) continue;
    let l = byLeg.get(e.legId);
    if (!l) byLeg.set(e.legId, (l = { answered: [], ended: [] }));
    l[e.type].push(e);
  }
  const legs: (Leg & { start?: number; end?: number })[] = [];
  const times = (xs: (string | undefined)[]): number[] =>
    xs.map(ms).filter((t): t is number => t !== undefined);
  for (const [legId, l] of byLeg) {
    if (!l.answered.length && !l.ended.some((e) => e.outcome === 'answered')) continue;
    const agent =
      l.answered.find((e) => e.agent)?.agent ?? l.ended.find((e) => e.agent)?.agent ?? null;
    const durs = l.ended
      .map((e) => e.durationSec)
      .filter((d): d is number => typeof d === 'number');
    const answeredTimes = times(l.answered.map((e) => e.answeredAt ?? e.at));
    const starts = answeredTimes.length ? answeredTimes : times(l.ended.map((e) => e.answeredAt));
    const ends = times(l.ended.map((e) => e.endedAt ?? e.at));
    legs.push({
      legId,
      agent,
      durationSec: durs.length ? Math.max(...durs) : null,
      ...(starts.length ? { start: Math.min(...starts) } : {}),
      ...(ends.length ? { end: Math.max(...ends) } : {}),
    });
  }
  // A leg still open ends after every leg that ended.
  const endOf = (l: { end?: number }): number => l.end ?? Infinity;
  return byTime(
    legs,
    (l) => l.start ?? l.end,
    (a, b) => naturalCompare(a.legId, b.legId),
    (a, b) => endOf(a) - endOf(b),
  ).map(({ legId, agent, durationSec }) => ({ legId, agent, durationSec }));
}

/**
 * A leg that starts with a transfer kind, or follows a leg that ended by transfer, is a transfer.
 */
function foldTransfers(all: CallEvent[], legs: Leg[]): Transfer[] {
  const out: Transfer[] = [];
  for (let i = 1; i < legs.length; i++) {
    const leg = legs[i]!;
    const prev = legs[i - 1]!;
    const kind =
      all.find((e) => e.type === 'answered' && e.legId === leg.legId && e.transferKind)
        ?.transferKind ??
      (all.some((e) => e.type === 'ended' && e.legId === prev.legId && e.transferred)
        ? 'unknown'
        : undefined);
    if (kind) out.push({ kind, fromAgent: prev.agent, toAgent: leg.agent });
  }
  return out;
}
