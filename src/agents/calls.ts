// Which calls are an agent's, and what their page says of one: the one rule behind the ringing
// card, the live stream and "My calls" (an agent sees nothing else), and the card's words. Pure:
// no store, no clock of its own, so that it is tested alone.

import type { CallRecord } from '../domain/model.js';
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import type { AgentEntry } from './types.js';

/**
 * Whose calls: the agent's extension and the queues and ring groups they answer, on the sources
 * (PBXs) they are on: two PBXs may both have an extension 101.
 */
export type AgentScope = Pick<AgentEntry, 'extension' | 'groups' | 'sources'>;

type Involved = Pick<CallRecord, 'agent' | 'legs' | 'rang'> & Partial<Pick<CallRecord, 'source'>>;

/** Whether the call came in through one of the agent's sources (no sources: every one). */
const onTheirSource = (r: Involved, a: AgentScope): boolean =>
  !a.sources?.length || (r.source !== undefined && a.sources.includes(r.source));

/**
 * A call is the agent's when it came through one of their sources and was handled by, rang, or
 * had a leg at their extension or one of their groups. A group's call is every member's, whoever
 * answered it.
 */
export function isAgentsCall(r: Involved, a: AgentScope): boolean {
  if (!onTheirSource(r, a)) return false;
  const mine = new Set([a.extension, ...(a.groups ?? [])]);
  const is = (x: string | null): boolean => x !== null && mine.has(x);
  return is(r.agent) || r.legs.some((l) => is(l.agent)) || r.rang.some(is);
}

/**
 * Whether the agent themselves was on the call (it was theirs last, or a leg was theirs): only
 * then are its recording and CRM record theirs to open. A call that only rang them or their group
 * and a colleague took is not.
 */
export function handledBy(r: Involved, a: AgentScope): boolean {
  if (!onTheirSource(r, a)) return false;
  return r.agent === a.extension || r.legs.some((l) => l.agent === a.extension);
}

/** A number as people read it ("+420 601 123 456"); what was sent when it is no valid one. */
export function shownNumber(r: Pick<CallRecord, 'externalE164' | 'externalNumber'>): string {
  const e164 = r.externalE164;
  const parsed = e164 ? parsePhoneNumberFromString(e164) : undefined;
  if (parsed?.isValid()) return parsed.formatInternational();
  return e164 ?? r.externalNumber ?? 'unknown number';
}

/** Someone of the PBX by name: the directory's, else the one the webhooks gave, else the number. */
export function personName(
  extension: string | null,
  directory: readonly AgentEntry[],
  given?: string | null,
): string | null {
  if (extension === null) return given ?? null;
  const entry = directory.find((a) => a.extension === extension);
  return entry?.name ?? given ?? extension;
}

/** Where a call stands, as the card shows it. */
export type CardState = 'ringing' | 'answered' | 'transferred' | 'ended';

export interface CardStatus {
  state: CardState;
  /** "Ringing", "Answered by Bob", "Transferred to Bob", "Ended: missed". */
  text: string;
}

export function cardStatus(
  r: Pick<CallRecord, 'status' | 'outcome' | 'agent' | 'agentName' | 'transfers' | 'direction'>,
  me: AgentScope,
  directory: readonly AgentEntry[],
): CardStatus {
  const who = personName(r.agent, directory, r.agentName);
  if (r.status === 'ringing')
    return { state: 'ringing', text: r.direction === 'outbound' ? 'Calling' : 'Ringing' };
  if (r.status === 'in-progress') {
    const last = r.transfers.at(-1);
    // Handed on to someone else: this agent is no longer on it.
    if (last && r.agent !== me.extension) {
      const to = personName(last.toAgent ?? r.agent, directory, r.agentName);
      return { state: 'transferred', text: to ? `Transferred to ${to}` : 'Transferred' };
    }
    return { state: 'answered', text: who ? `Answered by ${who}` : 'Answered' };
  }
  if (r.outcome === 'answered')
    return { state: 'ended', text: who ? `Ended (answered by ${who})` : 'Ended (answered)' };
  return { state: 'ended', text: r.outcome ? `Ended: ${r.outcome}` : 'Ended' };
}

/** An earlier call with the same number, as a card lists it: nothing more of others' calls. */
export interface PastCall {
  at: string;
  direction: string | null;
  outcome: string | null;
  answeredBy: string | null;
}

export function pastCall(
  r: Pick<CallRecord, 'startedAt' | 'direction' | 'outcome' | 'agent' | 'agentName'>,
  directory: readonly AgentEntry[],
): PastCall {
  return {
    at: r.startedAt,
    direction: r.direction,
    outcome: r.outcome,
    answeredBy: r.outcome === 'answered' ? personName(r.agent, directory, r.agentName) : null,
  };
}
