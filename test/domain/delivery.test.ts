// One rule for how a delivery stands (the console's badges, the API, `callrelay deliveries`).

import { describe, expect, it } from 'vitest';
import { badgeText, deliveryBadge } from '../../src/domain/delivery.js';

describe('deliveryBadge', () => {
  const at = '2026-11-22T10:00:00.000Z';
  it('tells delivered, waiting, retrying and dead apart', () => {
    expect(deliveryBadge({ state: 'done', attempts: 0, dueAt: at })).toEqual({ kind: 'delivered' });
    expect(deliveryBadge({ state: 'due', attempts: 0, dueAt: at })).toEqual({
      kind: 'waiting',
      at,
    });
    expect(deliveryBadge({ state: 'due', attempts: 3, dueAt: at })).toEqual({
      kind: 'retrying',
      at,
      attempts: 3,
    });
    expect(deliveryBadge({ state: 'dead', attempts: 7, dueAt: at })).toEqual({
      kind: 'dead',
      attempts: 7,
    });
  });

  it('says it in a few words', () => {
    expect(badgeText({ kind: 'retrying', at, attempts: 2 })).toBe(
      'retrying (2 failed), next 2026-11-22 10:00:00',
    );
    expect(badgeText({ kind: 'waiting', at })).toBe('waiting until 2026-11-22 10:00:00');
    expect(badgeText({ kind: 'dead', attempts: 7 })).toBe('dead after 7 attempts');
  });
});
