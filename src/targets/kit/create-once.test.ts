// createOnce: the intent outlives only a create that may have gone through.

import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../telemetry/log.js';
import type { DeliveryContext } from '../types.js';
import { createOnce, type PendingCreate } from './create-once.js';
import { DeliveryError } from './errors.js';

function context(): { ctx: DeliveryContext; saved: unknown[] } {
  const saved: unknown[] = [];
  const ctx = {
    job: {} as DeliveryContext['job'],
    save: async (r: unknown) => void saved.push(structuredClone(r)),
    log: silentLogger,
  };
  return { ctx, saved };
}

describe('createOnce', () => {
  const failing = (e: DeliveryError) => async (): Promise<string> => {
    throw e;
  };

  it.each([
    ['a DNS failure (never sent)', new DeliveryError('ENOTFOUND', { retryable: true })],
    ['a 429', new DeliveryError('429', { retryable: true, status: 429 })],
    ['a 400', new DeliveryError('400', { retryable: false, status: 400 })],
  ])('forgets the intent after %s: the next attempt creates without looking', async (_n, e) => {
    const { ctx } = context();
    const remote: { pendingCreate?: PendingCreate } = {};
    let looked = 0;
    const find = async () => void looked++;
    const o = { ctx, remote, crm: 'CRM', what: 'creating', searchLagMs: 60_000, find };
    await expect(createOnce({ ...o, create: failing(e) })).rejects.toBe(e);
    expect(remote.pendingCreate).toBeUndefined();
    await expect(createOnce({ ...o, create: async () => '7' })).resolves.toEqual({
      id: '7',
      adopted: false,
    });
    expect(looked).toBe(0);
  });

  it.each([
    ['a lost answer', new DeliveryError('ECONNRESET', { retryable: true, ambiguous: true })],
    ['a 502', new DeliveryError('502', { retryable: true, status: 502 })],
    [
      'a 200 its review called an error',
      new DeliveryError('200', { retryable: true, status: 200 }),
    ],
  ])('keeps the intent after %s, and looks before creating again', async (_n, e) => {
    const { ctx } = context();
    const remote: { pendingCreate?: PendingCreate } = {};
    const o = { ctx, remote, crm: 'CRM', what: 'creating', find: async () => '5' };
    await expect(createOnce({ ...o, create: failing(e) })).rejects.toBe(e);
    expect(remote.pendingCreate).toBeDefined();
    await expect(createOnce({ ...o, create: async () => '9' })).resolves.toEqual({
      id: '5',
      adopted: true,
    });
  });
});
