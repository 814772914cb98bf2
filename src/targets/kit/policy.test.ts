// Which HTTP answers mean done, retry (and when) or dead letter, and how Retry-After is read.

import { describe, expect, it } from 'vitest';
import { classify, retryAfterMs } from './policy.js';

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
});
