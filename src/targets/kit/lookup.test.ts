// sameNumber: a stored number counts as the caller's only when it is the same full number. A
// look-alike from another country (same national digits, other country code) never does. When
// several records share a number, the one made first is chosen and the others are named.

import { describe, expect, it } from 'vitest';
import { sameNumber, SingleFlight } from './lookup.js';
import { firstMade, PhoneLookup } from './phone-lookup.js';
import { UserLookup } from './user-lookup.js';
import { othersLine } from './summary.js';

describe('sameNumber', () => {
  it('matches the caller written any way a CRM stores a number', () => {
    for (const stored of [
      '+420 774 852 629',
      '+420774852629',
      '00420 774 852 629',
      '420774852629',
      '774 852 629', // national, no country code: read in the caller's country
    ])
      expect(sameNumber(stored, '+420774852629'), stored).toBe(true);
    expect(sameNumber('062 975 9787', '+381629759787')).toBe(true);
    expect(sameNumber('(415) 555-2671', '+14155552671')).toBe(true);
  });

  it('never matches the same national digits under another country code', () => {
    // Serbia +381 and Slovenia +386 share these national digits.
    expect(sameNumber('+386 62 975 9787', '+381629759787')).toBe(false);
    expect(sameNumber('00386629759787', '+381629759787')).toBe(false);
    expect(sameNumber('+421 774 852 629', '+420774852629')).toBe(false);
    expect(sameNumber('+44 774 852 629', '+420774852629')).toBe(false);
  });

  it('never matches a different or too short number', () => {
    expect(sameNumber('+420 774 852 620', '+420774852629')).toBe(false);
    expect(sameNumber('852629', '+420774852629')).toBe(false);
    expect(sameNumber('', '+420774852629')).toBe(false);
    expect(sameNumber(null, '+420774852629')).toBe(false);
  });
});

describe('the shared-number rule', () => {
  it('picks the record made first whatever order a search returns, then by numeric id', () => {
    const a = { id: '900', numbers: [], createdAt: '2021-01-01T00:00:00Z' };
    const b = { id: '100', numbers: [], createdAt: '2024-01-01T00:00:00Z' };
    const c = { id: '20', numbers: [] };
    const d = { id: '3', numbers: [] };
    expect([b, a].sort(firstMade).map((x) => x.id)).toEqual(['900', '100']);
    expect([a, b].sort(firstMade).map((x) => x.id)).toEqual(['900', '100']);
    // Without creation times, ids as numbers ("3" before "20").
    expect([c, d].sort(firstMade).map((x) => x.id)).toEqual(['3', '20']);
  });

  it('names at most five others, then how many more', () => {
    const others = Array.from({ length: 7 }, (_, i) => ({ id: i + 1, name: `P${i + 1}` }));
    expect(othersLine(others)).toBe(
      'P1 (id 1), P2 (id 2), P3 (id 3), P4 (id 4), P5 (id 5) and 2 more',
    );
    expect(othersLine([{ id: 9 }])).toBe('id 9');
    expect(othersLine([])).toBeUndefined();
  });
});

describe('lookups running together', () => {
  it('share one search, and make one contact, for deliveries of the same unknown caller', async () => {
    let searches = 0;
    let made = 0;
    const lookup = new PhoneLookup<string>({
      ttlMs: 60_000,
      search: async () => {
        searches++;
        await new Promise((r) => setTimeout(r, 20));
        return [];
      },
      otherwise: async () => `new-${++made}`,
    });
    const found = await Promise.all(Array.from({ length: 5 }, () => lookup.find('+420774852629')));
    expect(found.map((f) => f?.id)).toEqual(Array(5).fill('new-1'));
    expect([searches, made]).toEqual([1, 1]);
  });

  it('ask the CRM once about an agent email, however many calls want it at once', async () => {
    let asked = 0;
    const users = new UserLookup<string>({
      agents: { '101': 'jana@example.com' },
      ttlMs: 60_000,
      fromNumber: (id) => id,
      byEmail: async () => {
        asked++;
        await new Promise((r) => setTimeout(r, 20));
        return '77';
      },
    });
    expect(await Promise.all([1, 2, 3].map(() => users.forAgent('101')))).toEqual([
      '77',
      '77',
      '77',
    ]);
    expect(asked).toBe(1);
  });

  it('share a failed lookup with those waiting for it, and ask afresh after it', async () => {
    const flight = new SingleFlight<string>();
    let asked = 0;
    const failing = async (): Promise<string> => {
      asked++;
      await new Promise((r) => setTimeout(r, 10));
      throw new Error('searching contacts: 503');
    };
    const together = await Promise.allSettled([1, 2, 3].map(() => flight.run('k', failing)));
    expect(together.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(asked).toBe(1);
    // A failure is not remembered: the next delivery asks the CRM again, and gets its answer.
    expect(await flight.run('k', async () => `ok after ${++asked - 1}`)).toBe('ok after 1');
    expect(asked).toBe(2);
  });
});
