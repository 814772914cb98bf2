// Token buckets: `burst` uses at once, refilled at `perSecond`. One bucket guards one thing (a
// source's webhooks); KeyedBuckets guards many (each dial link, each agent, each recording link)
// in bounded memory: past `maxKeys` the longest-idle key is forgotten, which only ever lets that
// key start afresh, never refuses anyone else.

export class Bucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
  }

  /** The milliseconds until a use may go, taking nothing (0: now). */
  wait(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }

  /** 0 when a use may go now (and takes it); otherwise the milliseconds until one may. */
  take(now: number): number {
    const wait = this.wait(now);
    if (!wait) this.tokens -= 1;
    return wait;
  }
}

export class KeyedBuckets {
  private readonly buckets = new Map<string, Bucket>();

  /** `perMinute` uses a minute, `burst` at once (default: the minute's worth). */
  constructor(
    private readonly perMinute: number,
    private readonly burst = perMinute,
    private readonly maxKeys = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  private bucket(key: string, now: number): Bucket {
    let b = this.buckets.get(key);
    if (b) this.buckets.delete(key);
    else b = new Bucket(this.perMinute / 60, this.burst, now);
    // Re-inserted: the map's order is least recently used first.
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    return b;
  }

  /** 0 when `key` may go now (the use is counted); otherwise the milliseconds to wait. */
  take(key: string): number {
    return this.takeAll([key]);
  }

  /**
   * 0 when every key may go now, and then a use is counted against each; otherwise the longest
   * wait, and nothing is counted (a refused use costs no key its allowance).
   */
  takeAll(keys: readonly string[]): number {
    const now = this.now();
    const buckets = keys.map((k) => this.bucket(k, now));
    const wait = Math.max(0, ...buckets.map((b) => b.wait(now)));
    if (!wait) for (const b of buckets) b.take(now);
    return wait;
  }

  /**
   * The longest wait of `keys`, counting nothing: with `takeAll`, one decision across buckets of
   * different rates (a link's and its agent's), so that neither pays for the other's refusal.
   */
  waitAll(keys: readonly string[]): number {
    const now = this.now();
    return Math.max(0, ...keys.map((k) => this.bucket(k, now).wait(now)));
  }

  get size(): number {
    return this.buckets.size;
  }
}
