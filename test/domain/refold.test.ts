// Which events that name only a leg join a call when it is refolded (domain/refold.ts): the one
// rule both stores follow, whatever rows their SQL hands over.

import { describe, expect, it } from 'vitest';
import { eventKey } from '../../src/domain/fold.js';
import type { CallEvent } from '../../src/domain/model.js';
import { joinsByLeg, legsOf, refoldCall, type EventRow } from '../../src/domain/refold.js';
import type { Routing } from '../../src/domain/routing.js';

const routing: Routing = { targets: {}, routes: [] };
let n = 0;
const row = (event: CallEvent): EventRow => ({
  inboxId: ++n,
  idx: 0,
  provider: 'p',
  receivedAt: new Date(Date.parse('2026-01-01T00:00:00Z') + n * 1000).toISOString(),
  key: eventKey(event),
  event,
});
const refold = (events: EventRow[], joined: EventRow[]) =>
  refoldCall(
    {
      source: 's',
      callId: 'c',
      events,
      origins: [],
      joined,
      truncated: false,
      previous: undefined,
    },
    routing,
    new Date('2026-01-01T01:00:00Z'),
  );
const rec = (legId: string, extra: Partial<CallEvent> = {}): CallEvent => ({
  type: 'recording',
  legId,
  recordings: [`https://r/${legId}`],
  ...extra,
});

describe('events joined by leg', () => {
  const own = [
    row({ type: 'ringing', callId: 'c', legId: 'c-0', agent: '100' }),
    row({ type: 'ended', callId: 'c', legId: 'c-1', outcome: 'answered' }),
  ];

  it('are recordings and analyses with a leg and no call', () => {
    expect(joinsByLeg(rec('x'))).toBe(true);
    expect(joinsByLeg({ type: 'analysis', legId: 'x', ai: { summary: 'hi' } })).toBe(true);
    expect(joinsByLeg(rec('x', { callId: 'c' }))).toBe(false);
    expect(joinsByLeg({ type: 'recording', recordings: ['https://r/1'] })).toBe(false);
    expect(joinsByLeg({ type: 'originated', channelId: 'ch', legId: 'x' })).toBe(false);
  });

  it("are looked up on the legs the call's own events name", () => {
    expect(legsOf([...own, row(rec('elsewhere'))])).toEqual(['c-0', 'c-1']);
  });

  it('join the call when one of its own events has their leg, and only then', () => {
    const d = refold(own, [
      row(rec('c-1')),
      row({ type: 'analysis', legId: 'c-0', ai: { summary: 'fine' } }),
      // A store may hand over more than joins: another leg, an origin on the same leg.
      row(rec('other-leg')),
      row({ type: 'originated', channelId: 'ch', legId: 'c-0', originatedBy: 'x' }),
    ]);
    expect(d.kind).toBe('write');
    if (d.kind !== 'write') return;
    expect(d.record.recordings).toEqual(['https://r/c-1']);
    expect(d.record.ai).toMatchObject({ summary: 'fine' });
    expect(d.record.originatedBy).toBeNull();
    expect(d.record.events.map((e) => e.type)).toEqual([
      'ringing',
      'ended',
      'recording',
      'analysis',
    ]);
  });

  it('never make a call of their own', () => {
    expect(refold([], [row(rec('c-1'))])).toEqual({ kind: 'delete' });
    const closed = [row({ type: 'closed', callId: 'c' })];
    expect(refold(closed, [row(rec('c-1'))])).toEqual({ kind: 'delete' });
  });
});
