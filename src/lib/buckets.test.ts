import { describe, expect, it } from 'vitest';
import { Bucket, KeyedBuckets } from './buckets.js';

describe('Bucket', () => {
  it('lets a burst through, then refills at its rate', () => {
    const b = new Bucket(1, 2, 0);
    expect(b.take(0)).toBe(0);
    expect(b.take(0)).toBe(0);
    expect(b.take(0)).toBe(1000);
    expect(b.take(500)).toBe(500);
    expect(b.take(1000)).toBe(0);
  });
});

describe('KeyedBuckets', () => {
  it('counts each key apart, a few uses a minute', () => {
    let now = 0;
    const k = new KeyedBuckets(3, 3, 100, () => now);
    expect([k.take('a'), k.take('a'), k.take('a')]).toEqual([0, 0, 0]);
    expect(k.take('a')).toBe(20_000);
    expect(k.take('b')).toBe(0);
    now = 20_000;
    expect(k.take('a')).toBe(0);
  });

  it('takeAll counts nothing when any key has to wait', () => {
    const k = new KeyedBuckets(1, 1, 100, () => 0);
    expect(k.take('agent')).toBe(0);
    expect(k.takeAll(['link', 'agent'])).toBe(60_000);
    // The refused use did not spend the link's allowance.
    expect(k.take('link')).toBe(0);
  });

  it('waitAll tells the longest wait and counts nothing', () => {
    const k = new KeyedBuckets(2, 2, 100, () => 0);
    expect(k.take('agent')).toBe(0);
    expect(k.take('agent')).toBe(0);
    expect(k.waitAll(['link', 'agent'])).toBe(30_000);
    expect(k.waitAll(['link'])).toBe(0);
    expect(k.waitAll(['link'])).toBe(0);
    expect(k.waitAll([])).toBe(0);
  });

  it('keeps at most maxKeys keys, forgetting the longest idle', () => {
    const k = new KeyedBuckets(1, 1, 2, () => 0);
    k.take('a');
    k.take('b');
    k.take('a');
    k.take('c');
    expect(k.size).toBe(2);
    // b was forgotten (it starts afresh); a was used recently and is still counted.
    expect(k.take('b')).toBe(0);
    expect(k.take('c')).toBeGreaterThan(0);
  });
});
