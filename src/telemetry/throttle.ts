// A line that could repeat many times a second (every webhook refused, every fold tick failing
// while the store is down) is logged at most once a minute per key, with how many were held back,
// so that an outage leaves a readable log instead of a flood.

import type { Logger } from './log.js';

export class ThrottledLog {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly log: Logger,
    private readonly everyMs = 60_000,
  ) {}

  /** Log `msg` unless the same key was logged less than `everyMs` ago. */
  write(
    level: 'warn' | 'error',
    key: string,
    fields: Record<string, unknown>,
    msg: string,
    now = Date.now(),
  ): void {
    const seen = this.last.get(key);
    if (seen && now - seen.at < this.everyMs) {
      seen.held++;
      return;
    }
    // Keys may come from requests; the map must not grow without bound.
    if (this.last.size > 1000) this.last.clear();
    this.last.set(key, { at: now, held: 0 });
    this.log[level]({ ...fields, ...(seen?.held ? { heldBack: seen.held } : {}) }, msg);
  }
}
