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

/**
 * Hand back a slot once its request has been answered (or has failed for good); `unsent`: it
 * never left (another window refused it), so it does not count at all.
 */
export type Release = (unsent?: boolean) => void;

/**
 * A slot taken before the request was built (kit/batcher.ts gathers a batch while it waits for
 * one): when it was asked for, and how to hand it back once the request is answered.
 */
export interface Paced {
  since: number;
  answered: Release;
}

/**
 * A request counted in the window. Until it is answered it counts as sent "now": the CRM counts
 * it when it arrives, which may be well after it left here (a busy event loop, a new connection),
 * and once answered it counts from the answer, the latest the CRM can have counted it. So a burst
 * that left late and arrived bunched never leaves room for one more too soon.
 */
interface Slot {
  at: number;
  open: boolean;
}

export class WindowLimiter {
  private readonly slots: Slot[] = [];
  private blockedUntil = 0;
  private chain: Promise<void> = Promise.resolve();
  /** Woken when an open slot is handed back. */
  private wake: (() => void) | undefined;
  /** Callers between acquire() and their slot (or their refusal). */
  private waiting = 0;

  private readonly spanMs: number;

  /**
   * `marginMs` widens the window a little for the clocks and counting on the CRM's side.
   * `openLimitMs`: a slot nobody hands back counts as answered after this (longer than any
   * request's timeout), so that a caller that forgets can slow the window but never stop it.
   */
  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
    marginMs = Math.min(250, windowMs * 0.05),
    private readonly openLimitMs = 120_000,
  ) {
    this.spanMs = windowMs + marginMs;
  }

  /**
   * Resolves when one more request fits in the window, with the function to call once it has
   * been answered; callers are served in order. Rejects, retryable after the pause, when that would
   * take longer than `maxWaitMs` from now, the wait for the callers ahead included.
   */
  acquire(maxWaitMs = MAX_WAIT_MS): Promise<Release> {
    const deadline = this.now() + maxWaitMs;
    this.waiting++;
    const turn = this.chain.then(() => this.waitForSlot(deadline));
    this.chain = turn.then(
      () => {
        this.waiting--;
      },
      () => {
        this.waiting--;
      },
    );
    return turn;
  }

  /**
   * A slot now, or undefined: never joins the queue, and never goes before a caller waiting in it
   * (a phone system's lookup answers nobody rather than wait behind queued deliveries).
   */
  tryAcquire(): Release | undefined {
    if (this.waiting > 0) return undefined;
    const now = this.now();
    const { paused, roomIn } = this.room(now);
    return Math.max(paused, roomIn) <= 0 ? this.take(now) : undefined;
  }

  /** The CRM said to hold off (429, remaining = 0): nobody goes before `ms` from now. */
  pause(ms: number): void {
    this.blockedUntil = Math.max(this.blockedUntil, this.now() + ms);
  }

  /** When a slot stops counting: its time plus the window; open ones as if answered now. */
  private expiry(s: Slot, now: number): number {
    if (s.open && now - s.at < this.openLimitMs) return now + this.spanMs;
    return s.at + this.spanMs;
  }

  private take(now: number): Release {
    const slot: Slot = { at: now, open: true };
    this.slots.push(slot);
    return (unsent) => {
      if (!slot.open) return;
      if (unsent) {
        const i = this.slots.indexOf(slot);
        if (i >= 0) this.slots.splice(i, 1);
      }
      slot.open = false;
      slot.at = Math.max(slot.at, this.now());
      this.wake?.();
    };
  }

  /** Drops the slots that stopped counting; how long the pause and the window hold a request. */
  private room(now: number): { paused: number; roomIn: number } {
    for (let i = this.slots.length - 1; i >= 0; i--)
      if (this.expiry(this.slots[i]!, now) <= now) this.slots.splice(i, 1);
    const paused = this.blockedUntil - now;
    // How long until a slot is free: Infinity while every slot is a request still under way
    // (only an answer can start its slot's clock).
    const counted = this.slots.filter((s) => !s.open || now - s.at >= this.openLimitMs);
    const roomIn =
      this.slots.length < this.limit
        ? 0
        : counted.length
          ? Math.min(...counted.map((s) => s.at + this.spanMs)) - now
          : Infinity;
    return { paused, roomIn };
  }

  private async waitForSlot(deadline: number): Promise<Release> {
    for (;;) {
      const now = this.now();
      const { paused, roomIn } = this.room(now);
      const wait = Math.max(paused, roomIn);
      if (wait <= 0) return this.take(now);
      const left = deadline - now;
      if (paused > left && (paused >= roomIn || roomIn === Infinity))
        throw new DeliveryError(
          `the CRM asked the relay to hold off for ${Math.ceil(paused / 1000)} s; trying again then`,
          { retryable: true, retryAfterMs: paused },
        );
      if (wait > left && (roomIn !== Infinity || left <= 0)) {
        const after = roomIn === Infinity ? this.spanMs : wait;
        throw new DeliveryError(
          `the CRM's request window is taken for ${Math.ceil(after / 1000)} s more by the ` +
            'requests queued ahead; trying again then',
          { retryable: true, retryAfterMs: after },
        );
      }
      // Only one caller waits at a time (they are chained); handing a slot back wakes it to
      // count again, since the slot then runs from its answer.
      const oldestOpen = Math.min(...this.slots.filter((s) => s.open).map((s) => s.at));
      const ms =
        roomIn === Infinity
          ? Math.max(1, Math.min(left, oldestOpen + this.openLimitMs - now))
          : wait;
      await new Promise<void>((r) => {
        const go = (): void => {
          clearTimeout(timer);
          this.wake = undefined;
          r();
        };
        const timer = setTimeout(go, ms);
        this.wake = go;
      });
    }
  }
}
