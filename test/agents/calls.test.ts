// Which calls are an agent's (the one rule behind their card, stream and list) and how a card
// words a call: handled, rang or had a leg at their extension or one of their groups, nothing else.

import { describe, expect, it } from 'vitest';
import {
  cardStatus,
  handledBy,
  isAgentsCall,
  pastCall,
  shownNumber,
} from '../../src/agents/calls.js';
import type { CallRecord } from '../../src/domain/model.js';

type Part = Pick<
  CallRecord,
  | 'agent'
  | 'agentName'
  | 'legs'
  | 'rang'
  | 'status'
  | 'outcome'
  | 'transfers'
  | 'direction'
  | 'startedAt'
>;

const call = (over: Partial<Part> = {}): Part => ({
  agent: null,
  agentName: null,
  legs: [],
  rang: [],
  status: 'ringing',
  outcome: null,
  transfers: [],
  direction: 'inbound',
  startedAt: '2026-12-06T10:00:00.000Z',
  ...over,
});

const alice = { extension: '101', groups: ['800'] };
const bob = { extension: '102' };
const directory = [
  { extension: '101', name: 'Alice' },
  { extension: '102', name: 'Bob' },
];

describe("an agent's calls", () => {
  it('are those handled, rung or with a leg at their extension', () => {
    expect(isAgentsCall(call({ agent: '101' }), alice)).toBe(true);
    expect(isAgentsCall(call({ rang: ['205', '101'] }), alice)).toBe(true);
    expect(
      isAgentsCall(call({ legs: [{ legId: 'a', agent: '101', durationSec: 3 }] }), alice),
    ).toBe(true);
    expect(isAgentsCall(call({ agent: '101' }), bob)).toBe(false);
  });

  it("include their groups' calls, whoever answered, and nobody else's", () => {
    const queued = call({ rang: ['800', '102'], agent: '102', status: 'in-progress' });
    expect(isAgentsCall(queued, alice)).toBe(true);
    expect(isAgentsCall(queued, bob)).toBe(true);
    expect(isAgentsCall(call({ rang: ['801', '103'], agent: '103' }), alice)).toBe(false);
    // An agent without groups: only their extension counts.
    expect(isAgentsCall(call({ rang: ['800'] }), bob)).toBe(false);
    // A group's number as another agent's extension prefix is no match.
    expect(isAgentsCall(call({ agent: '1010', rang: ['80'] }), alice)).toBe(false);
    expect(isAgentsCall(call(), alice)).toBe(false);
  });
});

describe('two PBXs with the same extension numbers', () => {
  it("keep each person to their own PBX's calls when the directory names its sources", () => {
    const prague = { extension: '101', sources: ['prague', 'prague-journal'] };
    const anywhere = { extension: '101' };
    expect(isAgentsCall({ ...call({ agent: '101' }), source: 'prague' }, prague)).toBe(true);
    expect(isAgentsCall({ ...call({ rang: ['101'] }), source: 'prague-journal' }, prague)).toBe(
      true,
    );
    expect(isAgentsCall({ ...call({ agent: '101' }), source: 'brno' }, prague)).toBe(false);
    expect(isAgentsCall({ ...call({ rang: ['101'] }), source: 'brno' }, prague)).toBe(false);
    expect(handledBy({ ...call({ agent: '101' }), source: 'brno' }, prague)).toBe(false);
    // No sources: every source's ext-101 calls, as before.
    expect(isAgentsCall({ ...call({ agent: '101' }), source: 'brno' }, anywhere)).toBe(true);
  });
});

describe('a call the agent handled', () => {
  it('is one they were on (last, or a leg of it), not one that only rang them or their group', () => {
    expect(handledBy(call({ agent: '101' }), alice)).toBe(true);
    const handedOn = call({ agent: '102', legs: [{ legId: 'a', agent: '101', durationSec: 30 }] });
    expect(handledBy(handedOn, alice)).toBe(true);
    expect(handledBy(call({ rang: ['800', '101'], agent: '102' }), alice)).toBe(false);
    expect(handledBy(call({ rang: ['101'] }), alice)).toBe(false);
  });
});

describe("a card's words", () => {
  it('say ringing, answered by whom, transferred, and how it ended', () => {
    expect(cardStatus(call(), alice, directory)).toEqual({ state: 'ringing', text: 'Ringing' });
    expect(cardStatus(call({ direction: 'outbound' }), alice, directory).text).toBe('Calling');
    expect(cardStatus(call({ status: 'in-progress', agent: '102' }), alice, directory)).toEqual({
      state: 'answered',
      text: 'Answered by Bob',
    });
    const handedOn = call({
      status: 'in-progress',
      agent: '102',
      transfers: [{ kind: 'blind', fromAgent: '101', toAgent: '102' }],
    });
    expect(cardStatus(handedOn, alice, directory)).toEqual({
      state: 'transferred',
      text: 'Transferred to Bob',
    });
    // Transferred to this agent: theirs to talk on.
    expect(cardStatus(handedOn, bob, directory).state).toBe('answered');
    expect(
      cardStatus(
        call({ status: 'ended', outcome: 'answered', agent: '103', agentName: 'Eva' }),
        alice,
        directory,
      ).text,
    ).toBe('Ended (answered by Eva)');
    expect(cardStatus(call({ status: 'ended', outcome: 'missed' }), alice, directory)).toEqual({
      state: 'ended',
      text: 'Ended: missed',
    });
  });

  it('show an earlier call with who answered it by name, and nothing more', () => {
    const past = pastCall(call({ status: 'ended', outcome: 'answered', agent: '102' }), directory);
    expect(past).toEqual({
      at: '2026-12-06T10:00:00.000Z',
      direction: 'inbound',
      outcome: 'answered',
      answeredBy: 'Bob',
    });
    expect(
      pastCall(call({ status: 'ended', outcome: 'missed', agent: '102' }), directory).answeredBy,
    ).toBeNull();
  });

  it('write numbers as people read them', () => {
    expect(shownNumber({ externalE164: '+420601123456', externalNumber: '601123456' })).toBe(
      '+420 601 123 456',
    );
    expect(shownNumber({ externalE164: null, externalNumber: '123' })).toBe('123');
    expect(shownNumber({ externalE164: null, externalNumber: null })).toBe('unknown number');
  });
});
