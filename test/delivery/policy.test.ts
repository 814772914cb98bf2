// The delivery schedule's backoff, and which targets a call is routed to (and when).

import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../src/delivery/backoff.js';
import { dueTargets } from '../../src/domain/routing.js';
import type { CallRecord } from '../../src/domain/model.js';

describe('backoff', () => {
  it('backs off exponentially with jitter, capped, never sooner than asked', () => {
    const o = { baseMs: 1000, maxMs: 60_000 };
    expect(backoffMs(0, undefined, o, () => 0)).toBe(500);
    expect(backoffMs(0, undefined, o, () => 1)).toBe(1000);
    expect(backoffMs(3, undefined, o, () => 1)).toBe(8000);
    expect(backoffMs(20, undefined, o, () => 1)).toBe(60_000);
    expect(backoffMs(0, 30_000, o, () => 0)).toBe(30_000);
  });
});

describe('routing', () => {
  const rec = (o: Partial<CallRecord>): CallRecord =>
    ({
      source: '3cx',
      status: 'ended',
      direction: 'inbound',
      outcome: 'answered',
      durationSec: 10,
      agent: '117',
      endedAt: '2026-01-01T00:00:00.000Z',
      ...o,
    }) as CallRecord;
  const routing = {
    targets: {
      crm: { deliverOn: 'ended' as const, settleSec: 60 },
      hook: { deliverOn: 'change' as const, settleSec: 0 },
    },
    routes: [
      {
        targets: ['crm'],
        filter: {
          direction: ['inbound' as const],
          outcome: ['answered' as const],
          minDurationSec: 5,
        },
      },
      { sources: ['other'], targets: ['hook'] },
    ],
  };
  const now = new Date('2026-01-01T00:00:10.000Z');

  it('sends only what the filters let through, after the settle window from the end', () => {
    expect(dueTargets(rec({}), routing, now)).toEqual([
      { target: 'crm', dueAt: '2026-01-01T00:01:00.000Z' },
    ]);
    expect(dueTargets(rec({ durationSec: 3 }), routing, now)).toEqual([]);
    expect(dueTargets(rec({ outcome: 'missed' }), routing, now)).toEqual([]);
    expect(dueTargets(rec({ status: 'in-progress' }), routing, now)).toEqual([]);
    expect(dueTargets(rec({ source: 'other', status: 'ringing' }), routing, now)).toEqual([
      { target: 'hook', dueAt: now.toISOString() },
    ]);
  });

  it('filters on the agent who handled the call', () => {
    const byAgent = {
      targets: routing.targets,
      routes: [{ targets: ['crm'], filter: { agents: ['117', '204'] } }],
    };
    expect(dueTargets(rec({ agent: '204' }), byAgent, now).map((d) => d.target)).toEqual(['crm']);
    expect(dueTargets(rec({ agent: '102' }), byAgent, now)).toEqual([]);
    expect(dueTargets(rec({ agent: null }), byAgent, now)).toEqual([]);
  });
});
