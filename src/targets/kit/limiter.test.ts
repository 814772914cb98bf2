// Pacing: at most so many requests per window, in order, held by a pause, with a safety margin.

import { describe, expect, it } from 'vitest';
import { DeliveryError } from './errors.js';
import { WindowLimiter } from './limiter.js';

describe('pacing', () => {
  it('lets at most `limit` requests through per window, in order', async () => {
    let now = 0;
    const l = new WindowLimiter(3, 1000, () => now, 0);
    const order: number[] = [];
    const all = [0, 1, 2, 3, 4].map((i) =>
      l.acquire().then((answered) => {
        order.push(i);
        answered();
      }),
    );
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
    (await l.acquire())();
    let passed = false;
    const p = l.acquire().then(() => (passed = true));
    now = 1000;
    await new Promise((r) => setTimeout(r, 20));
    expect(passed).toBe(false);
    now = 1050;
    await p;
  });

  it('sends a caller back rather than holding it past the longest wait', async () => {
    let now = 0;
    const l = new WindowLimiter(100, 10_000, () => now, 0);
    l.pause(3_600_000); // HubSpot's daily limit
    const err = await l.acquire(60_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DeliveryError);
    expect(err).toMatchObject({ retryable: true, retryAfterMs: 3_600_000 });
    expect((err as Error).message).toMatch(/hold off for 3600 s/);
    // A short pause is still waited out.
    now = 3_600_000;
    await l.acquire(60_000);
  });

  it('counts the wait behind the callers ahead in the longest wait', async () => {
    // One request per 50 ms, both callers asking at 0 with 80 ms to spare: when the second's turn
    // comes at 50, its slot would come at 100, past its limit, though 50 ms alone would be fine.
    let now = 0;
    const l = new WindowLimiter(1, 50, () => now, 0);
    (await l.acquire())();
    const both = Promise.allSettled([l.acquire(80).then((answered) => answered()), l.acquire(80)]);
    now = 50;
    const [first, second] = await both;
    expect(first.status).toBe('fulfilled');
    expect(second.status).toBe('rejected');
    const err = (second as PromiseRejectedResult).reason as DeliveryError;
    expect(err).toMatchObject({ retryable: true, retryAfterMs: 50 });
    expect(err.message).toMatch(/window is taken for 1 s more by the requests queued ahead/);
  });

  it('counts a request from its answer, and one under way as just sent', async () => {
    // Two a second. Two requests leave at 0 but are answered at 900 (they arrived late, bunched):
    // the CRM may have counted them as late as 900, so the third waits until 1900, not 1000.
    let now = 0;
    const l = new WindowLimiter(2, 1000, () => now, 0);
    const first = await l.acquire();
    const second = await l.acquire();
    let passed = false;
    const third = l.acquire().then((answered) => {
      passed = true;
      return answered;
    });
    now = 1000; // both still under way: no room however long it has been
    await new Promise((r) => setTimeout(r, 20));
    expect(passed).toBe(false);
    now = 900;
    first();
    second();
    now = 1899;
    await new Promise((r) => setTimeout(r, 20));
    expect(passed).toBe(false);
    now = 1900;
    (await third)();
    expect(passed).toBe(true);
  });

  it('never stops for a slot nobody hands back', async () => {
    let now = 0;
    const l = new WindowLimiter(1, 1000, () => now, 0, 5000);
    await l.acquire(); // never answered
    const next = l.acquire(60_000);
    now = 6000; // past the open limit (5 s) and its window
    await new Promise((r) => setTimeout(r, 20));
    await expect(next).resolves.toBeTypeOf('function');
  });

  it('says hold off when the CRM asked for it, even while every slot is under way', async () => {
    const now = 0;
    const l = new WindowLimiter(1, 1000, () => now, 0);
    await l.acquire(); // under way
    l.pause(120_000);
    const err = await l.acquire(60_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ retryable: true, retryAfterMs: 120_000 });
    expect((err as Error).message).toMatch(/hold off for 120 s/);
  });

  it('tryAcquire: a slot only when one is free now and nobody waits; never joins the queue', async () => {
    let now = 0;
    const l = new WindowLimiter(2, 1000, () => now, 0);
    const first = l.tryAcquire();
    expect(first).toBeTypeOf('function');
    first!();
    l.tryAcquire()!(); // two in the window now
    expect(l.tryAcquire()).toBeUndefined(); // full: no wait, no queue
    // A caller queued for the next slot goes first, even once the window has room again.
    const queued = l.acquire(60_000);
    now = 1000;
    expect(l.tryAcquire()).toBeUndefined();
    (await queued)();
    now = 2000;
    // Nobody waits and there is room: taken at once. A pause holds it off like anyone.
    expect(l.tryAcquire()).toBeTypeOf('function');
    now = 5000;
    l.pause(500);
    expect(l.tryAcquire()).toBeUndefined();
    now = 5500;
    expect(l.tryAcquire()).toBeTypeOf('function');
  });
});
