// sameNumber: a stored number counts as the caller's only when it is the same full number. A
// look-alike from another country (same national digits, other country code) never does.

import { describe, expect, it } from 'vitest';
import { sameNumber } from './lookup.js';

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
