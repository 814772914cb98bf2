// Pacing: keep a target under the CRM's documented request rate (HubSpot 100 per 10 s, Pipedrive
// per 2 s by plan), so that a burst of calls queues here instead of earning 429s there.

import { DeliveryError } from './errors.js';

/**
 * The longest a request waits here. A delivery holds its lease (5 minutes by default) while it
 * waits, and a lease that runs out lets another instance send the same call; so a longer hold-off
 * (HubSpot's daily limit, an account migrating) sends the delivery back to the store, due when
 * the pause ends, instead of keeping every delivery in flight waiting.
 */
export const MAX_WAIT_MS = 60_000;

export class WindowLimiter {
  private readonly stamps: number[] = [];
  private blockedUntil = 0;
  private chain: Promise<void> = Promise.resolve();

  private readonly spanMs: number;

  /**
   * `marginMs` widens the window a little: requests leave here but are counted where they arrive,
   * and transit time varies, so a window kept to the millisecond could look one over over there.
   */
  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
    marginMs = Math.min(250, windowMs * 0.05),
  ) {
    this.spanMs = windowMs + marginMs;
  }

  /**
   * Resolves when one more request fits in the window; callers are served in order. Rejects,
   * retryable after the pause, when that would take longer than `maxWaitMs` from now, the wait
   * for the callers ahead included.
   */
  acquire(maxWaitMs = MAX_WAIT_MS): Promise<void> {
    const deadline = this.now() + maxWaitMs;
    const turn = this.chain.then(() => this.waitForSlot(deadline));
    this.chain = turn.catch(() => {});
    return turn;
  }

  /** The CRM said to hold off (429, remaining = 0): nobody goes before `ms` from now. */
  pause(ms: number): void {
    this.blockedUntil = Math.max(this.blockedUntil, this.now() + ms);
  }

  private async waitForSlot(deadline: number): Promise<void> {
    for (;;) {
      const now = this.now();
      while (this.stamps.length && this.stamps[0]! <= now - this.spanMs) this.stamps.shift();
      const wait = Math.max(
        this.blockedUntil - now,
        this.stamps.length >= this.limit ? this.stamps[0]! + this.spanMs - now : 0,
      );
      if (wait <= 0) {
        this.stamps.push(now);
        return;
      }
      if (wait > deadline - now)
        throw new DeliveryError(
          this.blockedUntil - now >= wait
            ? `the CRM asked the relay to hold off for ${Math.ceil(wait / 1000)} s; trying again then`
            : `the CRM's request window is taken for ${Math.ceil(wait / 1000)} s more by the ` +
                'requests queued ahead; trying again then',
          { retryable: true, retryAfterMs: wait },
        );
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
