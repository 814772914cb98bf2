// Delivery outcomes as data, backoff, Retry-After, and pacing.

import { describe, expect, it } from 'vitest';
import { WindowLimiter } from '../../src/targets/kit/limiter.js';
import { backoffMs } from '../../src/delivery/backoff.js';
import { classify, retryAfterMs } from '../../src/targets/kit/policy.js';
import { dueTargets } from '../../src/domain/routing.js';
import type { CallRecord } from '../../src/domain/model.js';

describe('retry policy', () => {
  it('2xx ok; 408, 425, 429, 5xx retry; other 4xx dead; a target may override', () => {
    expect(classify(201, {}, undefined)).toEqual({ kind: 'ok' });
    for (const s of [408, 425, 429, 500, 502, 503, 504])
      expect(classify(s, {}, undefined).kind).toBe('retry');
    for (const s of [400, 401, 403, 404, 409, 422])
      expect(classify(s, {}, undefined)).toEqual({ kind: 'dead' });
    expect(classify(423, {}, undefined, { statuses: { 423: 'retry' } }).kind).toBe('retry');
    expect(classify(409, {}, undefined, { statuses: { 409: 'ok' } })).toEqual({ kind: 'ok' });
  });

  it("honours Retry-After (seconds or date), else a target's own pause", () => {
    expect(classify(429, { 'retry-after': '3' }, undefined)).toEqual({
      kind: 'retry',
      afterMs: 3000,
    });
    expect(
      classify(
        429,
        {},
        { policyName: 'TEN_SECONDLY_ROLLING' },
        { pause: (_s, _h, b) => ((b as { policyName?: string }).policyName ? 10_000 : undefined) },
      ),
    ).toEqual({ kind: 'retry', afterMs: 10_000 });
    expect(retryAfterMs('Wed, 21 Oct 2026 07:28:05 GMT', Date.parse('2026-10-21T07:28:00Z'))).toBe(
      5000,
    );
    expect(retryAfterMs('soon')).toBeUndefined();
  });

  it('backs off exponentially with jitter, capped, never sooner than asked', () => {
    const o = { baseMs: 1000, maxMs: 60_000 };
    expect(backoffMs(0, undefined, o, () => 0)).toBe(500);
    expect(backoffMs(0, undefined, o, () => 1)).toBe(1000);
    expect(backoffMs(3, undefined, o, () => 1)).toBe(8000);
    expect(backoffMs(20, undefined, o, () => 1)).toBe(60_000);
    expect(backoffMs(0, 30_000, o, () => 0)).toBe(30_000);
  });
});

describe('pacing', () => {
  it('lets at most `limit` requests through per window, in order', async () => {
    let now = 0;
    const l = new WindowLimiter(3, 1000, () => now, 0);
    const order: number[] = [];
    const all = [0, 1, 2, 3, 4].map((i) => l.acquire().then(() => order.push(i)));
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual([0, 1, 2]);
    now = 1000;
    await Promise.all(all);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });

  it('holds everyone after a pause', async () => {
    let now = 0;
    const l = new WindowLimiter(100, 1000, () => now, 0);
    l.pause(500);
    let passed = false;
    const p = l.acquire().then(() => (passed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(passed).toBe(false);
    now = 500;
    await p;
    expect(passed).toBe(true);
  });

  it('keeps a safety margin on the window', async () => {
    let now = 0;
    const l = new WindowLimiter(1, 1000, () => now, 50);
    await l.acquire();
    let passed = false;
    const p = l.acquire().then(() => (passed = true));
    now = 1000;
    await new Promise((r) => setTimeout(r, 20));
    expect(passed).toBe(false);
    now = 1050;
    await p;
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
