// Pacing: at most so many requests per window, in order, held by a pause, with a safety margin.

import { describe, expect, it } from 'vitest';
import { WindowLimiter } from './limiter.js';

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
